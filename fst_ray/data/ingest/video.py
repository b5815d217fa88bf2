"""One group of videos, no Ray: decode K frames, align, write the video's Parquet file; face detection and re-encoding of one video; the watchdog."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import threading
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from fst_ray import datasets, frames, storage, tables, video
from fst_ray.data import align, decode
from fst_ray.data.config import PrepareConfig
from fst_ray.data.landmarks import LandmarkError, VideoLandmarks, detected_sidecar, face_detector, read_sidecar
from fst_ray.data.manifest import ManifestRow, error
from fst_ray.tables import write_parquet
from fst_ray.data.ingest.files import DETECT_ERROR, FRAME_ERROR, MASK_ERROR, VIDEO_ERROR


STORAGE = "storage"  # a status row's stage when the store failed: the job stops, nothing is recorded


@dataclass
class VideoResult:
    """Status row of one video, as the pipeline reports it to the driver."""

    video_id: str
    ok: bool
    frames: int = 0
    strategy: str = ""
    stage: str = ""
    reason: str = ""

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def _scan(uri: str, cfg: PrepareConfig, want: int | list[int] | np.ndarray, on_frame) -> tuple[np.ndarray, str, int]:
    """Decode frames of a video, ``want``: K uniformly spaced or explicit increasing indices (those beyond
    the video are skipped), calling ``on_frame(index, frame)`` for each in order. Returns
    ``(indices decoded, strategy, the video's frame count)``."""
    with storage.local_file(uri) as path:
        video = decode.open_video(path, cfg.decode_threads)
        if isinstance(want, int):
            indices = decode.sample_indices(video.n_frames, want)
        else:
            indices = np.asarray(want, dtype=np.int64)
            indices = indices[indices < video.n_frames]
            if not len(indices):
                raise decode.DecodeError(f"video has {video.n_frames} frames, none of the {len(want)} asked "
                                         f"(from frame {int(want[0])})")
        strategy = cfg.decode if cfg.decode != "auto" else decode.choose_strategy(indices, video.keyframes)
        for i, frame in video.frames(indices, strategy):
            on_frame(i, frame)
    return indices, strategy, video.n_frames


class VideoGroup:
    """One video name of one method at every compression: they share the landmark sidecar and (fakes)
    the mask video, so both are read once and each mask frame is decoded and aligned once."""

    def __init__(self, method: str, video: str, mask_uri: str | None, landmarks_uri: str, detect_uri: str | None,
                 cfg: PrepareConfig, output: str):
        self.method, self.video, self.mask_uri = method, video, mask_uri
        self.landmarks_uri, self.detect_uri = landmarks_uri, detect_uri
        self.cfg, self.output = cfg, output
        self.template = align.template(cfg.size, cfg.margin, cfg.alignment)
        self._locate: VideoLandmarks | None = None
        self._transforms: dict[int, np.ndarray] = {}
        self._masks: dict[int, bytes] = {}
        self.mask_error: str | None = None

    @property
    def stem(self) -> str:
        return f"{self.method}.{self.video}"

    def locator(self) -> VideoLandmarks:
        """The group's landmarks, read once; :class:`LandmarkError` if there are none."""
        if self._locate is None:
            if self.detect_uri is not None and not storage.exists(self.landmarks_uri):
                raise LandmarkError(f"face detection on {self.detect_uri} gave no landmarks (errors: stage detect)")
            self._locate = read_sidecar(self.landmarks_uri, self.cfg.min_face_share)
        return self._locate

    def transform(self, index: int, frame: np.ndarray) -> np.ndarray:
        """Similarity of frame ``index`` onto the template, computed once per group (the locator still
        checks every video's frame); raises :class:`LandmarkError` / :class:`AlignError`."""
        points = self.locator()(index, frame)
        if index not in self._transforms:
            self._transforms[index] = align.similarity(points, self.template)
        return self._transforms[index]

    def masks(self, indices: np.ndarray) -> list[bytes | None]:
        """Aligned masks (S*S uint8 bytes) of the given frames, ``None`` each when the mask is unusable
        (reported once per group in ``errors/mask.*``)."""
        if self.mask_uri is None:
            return [None] * len(indices)
        missing = [int(i) for i in indices if i not in self._masks]
        if missing and self.mask_error is None:
            def add(i: int, frame: np.ndarray) -> None:
                binary = np.where(frame[..., 0] > 127, 255, 0).astype(np.uint8)
                self._masks[i] = frames.encode(align.warp(binary, self._transforms[i], self.cfg.size, nearest=True))

            try:
                _scan(self.mask_uri, self.cfg, missing, add)
            except OSError:  # the store's fault, not the mask's: the job stops, a re-run retries
                raise
            except Exception as e:  # noqa: BLE001 - a bad mask loses the mask, not the frames
                self.mask_error = str(e) if isinstance(e, decode.DecodeError) else f"{type(e).__name__}: {e}"
                write_parquet(pa.Table.from_pylist([error(self.mask_uri, "mask", self.mask_error)],
                                                   schema=tables.ERRORS),
                              storage.join(self.output, "errors", f"{MASK_ERROR}{self.stem}.parquet"))
        return [None if self.mask_error else self._masks[int(i)] for i in indices]

    def ingest(self, row: ManifestRow) -> VideoResult:
        """Decode, align and write one video's frames file; bad input becomes an ``errors/video.*`` file.
        Never raises for bad data."""
        crops: list[bytes] = []

        def add(i: int, frame: np.ndarray) -> None:
            crops.append(frames.encode(align.warp(frame, self.transform(i, frame), self.cfg.size)))

        try:
            want = self.locator().frames
            indices, strategy, n_frames = _scan(row.uri, self.cfg, self.cfg.frames_per_video if want is None else want,
                                                add)
        except LandmarkError as e:
            return video_failed(row, self.output, "landmarks", str(e))
        except align.AlignError as e:
            return video_failed(row, self.output, "align", str(e))
        except decode.DecodeError as e:
            return video_failed(row, self.output, "decode", str(e))
        except OSError:  # the store's fault, not the input's: never recorded as bad input
            raise
        except Exception as e:  # noqa: BLE001 - an unexpected failure of one input must not stop the others
            return video_failed(row, self.output, "ingest", f"{type(e).__name__}: {e}")
        n = len(crops)
        table = pa.Table.from_pydict({
            "key": [frames.key(row.method, row.compression, row.video, int(i)) for i in indices],
            "image": crops,
            "size": [self.cfg.size] * n,
            "video": [row.video] * n,
            "frame_index": [int(i) for i in indices],
            "method": [row.method] * n,
            "compression": [row.compression] * n,
            "det_label": [row.det_label] * n,
            "source_id": [row.source_id] * n,
            "target_id": [row.target_id] * n,
            "split": [row.split] * n,
            "mask": self.masks(indices),
        }, schema=frames.SCHEMA)
        if want is not None and len(indices) < len(want):  # a fake a few frames shorter than its source
            write_parquet(pa.Table.from_pylist(
                [error(row.uri, "decode", f"video has {n_frames} frames; its landmarks' frame is beyond it", int(i))
                 for i in want[len(indices):]], schema=tables.ERRORS),
                storage.join(self.output, "errors", f"{FRAME_ERROR}{row.stem}.parquet"))
        write_parquet(table, storage.join(self.output, "frames", f"{row.stem}.parquet"), self.cfg.parquet_compression)
        return VideoResult(row.video_id, True, frames=n, strategy=strategy)


def ingest_group(rows: list[ManifestRow], cfg: PrepareConfig, output: str) -> list[VideoResult]:
    """Ingest videos of one ``(method, video)`` (any of its compressions), sharing sidecar and mask."""
    r = rows[0]
    group = VideoGroup(r.method, r.video, r.mask_uri, r.landmarks_uri, r.detect_uri, cfg, output)
    return [group.ingest(row) for row in rows]


def detect_one(landmarks_uri: str, detect_uri: str, cfg: PrepareConfig, output: str) -> VideoResult:
    """Detect the face in the K sampled frames of ``detect_uri`` and write the sidecar ``landmarks_uri``; the
    frames without a face (or a failed decode) go to ``errors/detect.*``. Never raises for bad data."""
    detector = face_detector(cfg.detector)
    found: list[tuple[int, list]] = []
    size = [None]
    reduction = align.PRESETS[cfg.alignment].points

    def add(i: int, frame: np.ndarray) -> None:
        found.append((int(i), detector.faces(frame, reduction)))
        size[0] = (frame.shape[1], frame.shape[0])

    stem = _detect_stem(landmarks_uri)
    errors_uri = storage.join(output, "errors", f"{DETECT_ERROR}{stem}.parquet")
    try:
        _scan(detect_uri, cfg, cfg.frames_per_video, add)
    except OSError:
        raise
    except Exception as e:  # noqa: BLE001 - one bad video must not stop the others
        reason = str(e) if isinstance(e, decode.DecodeError) else f"{type(e).__name__}: {e}"
        write_parquet(pa.Table.from_pylist([error(detect_uri, "detect", reason)], schema=tables.ERRORS), errors_uri)
        return VideoResult(detect_uri, False, stage="detect", reason=reason)
    text, missing = detected_sidecar(stem.split(".", 1)[1], detector.name, found, size[0])
    write_parquet(pa.Table.from_pylist([error(detect_uri, "detect", "no face found", i) for i in missing],
                                       schema=tables.ERRORS), errors_uri)
    storage.write_bytes(landmarks_uri, text.encode())
    return VideoResult(detect_uri, True, frames=len(found) - len(missing))


def detect_failed(row: ManifestRow, output: str, reason: str) -> None:
    write_parquet(pa.Table.from_pylist([error(row.detect_uri, "detect", reason)], schema=tables.ERRORS),
                  storage.join(output, "errors", f"{DETECT_ERROR}{_detect_stem(row.landmarks_uri)}.parquet"))


def _detect_stem(landmarks_uri: str) -> str:
    """``{group}.{video}`` of a detector sidecar's URI (``.../{group}/landmarks/{video}.json``: FF++'s
    ``youtube`` is ``original``)."""
    group, _, file = landmarks_uri.rsplit("/", 3)[-3:]
    return f"{datasets.ORIGINAL if group == 'youtube' else group}.{file[: -len('.json')]}"


def reencode_one(row: ManifestRow, output: str) -> VideoResult:
    """Write ``row.uri``: the raw video ``row.reencoded_from`` re-encoded at ``row.compression``. A raw video that
    does not decode becomes a video error of ``row``; a storage fault raises (the job stops)."""
    data = storage.read_bytes(row.reencoded_from)
    out = io.BytesIO()
    try:
        info = video.transcode(io.BytesIO(data), out, row.compression)
    except Exception as e:  # noqa: BLE001 - one bad video must not stop the others
        return video_failed(row, output, "reencode", f"{type(e).__name__}: {e}")
    storage.write_bytes(row.uri, out.getvalue())
    return VideoResult(row.video_id, True, frames=info["frames"])


def video_failed(row: ManifestRow, output: str, stage: str, reason: str) -> VideoResult:
    write_parquet(pa.Table.from_pylist([error(row.uri, stage, reason)], schema=tables.ERRORS),
                  storage.join(output, "errors", f"{VIDEO_ERROR}{row.stem}.parquet"))
    return VideoResult(row.video_id, False, stage=stage, reason=reason)


@contextlib.contextmanager
def watchdog(seconds: float):
    """Kill this process (SIGKILL) if the block runs longer than ``seconds``: a hung decoder becomes a
    dead worker, which Ray retries a bounded number of times."""
    timer = threading.Timer(seconds, lambda: os.kill(os.getpid(), signal.SIGKILL))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()

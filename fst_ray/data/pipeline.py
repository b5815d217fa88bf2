"""The ingest as a streaming Ray Data pipeline: manifest rows grouped by ``(method, video)`` -> tasks of a
few groups (per video: decode K frames, align, write its Parquet file) -> small status rows back to the
driver -> FST pairs. A group's compressions share one sidecar read and one mask decode.

Output layout under ``output`` (every file name derives from a video key, so re-runs replace, never append)::

    frames/{method}.{compression}.{video}.parquet    # one file per video (FRAMES schema), written last
    frames/part-{n}.parquet                          # after the run, the per-video files compacted (compact)
    errors/video.{method}.{compression}.{video}.parquet  # a video that could not be used
    errors/mask.{method}.{video}.parquet              # a fake whose mask could not be used (frames kept)
    errors/frame.{method}.{compression}.{video}.parquet  # frames of a kept video that could not be used
    errors/detect.{method}.{video}.parquet            # sampled frames without a face; a failed detection
    landmarks/{sequence}/landmarks/{video}.json       # a face detector's landmarks (fst_ray.data.landmarks)
    errors/manifest.parquet, errors/pairs.parquet    # rewritten by every run
    fst_pairs/fst_pairs.parquet                      # rewritten by every run
    manifest.parquet, _ingest.json (parameters)
    _SUCCESS.json  # written last, only by a run that succeeded: verdict, counts, parameters

With detected landmarks a first pass detects each face once (per source original, or per video), writes
the sidecars under ``landmarks/`` and skips those already there; the ingest then aligns the frames the
sidecar holds. Memory stays bounded: a task holds one decoded frame plus its video's S x S crops, and only status rows
(no pixels) travel through Ray's object store;
Ray Data's streaming executor bounds the tasks in flight. A video is finished when its frames file or its
``errors/video.*`` file exists; a re-run skips finished videos (resume) and deletes files of videos no
longer in the manifest. A worker that dies (decoder crash, or the watchdog's kill after ``video_timeout_s``
per video) loses its task's videos; they are redone one video per task with ``max_retries`` retries, and
a video that still kills its worker is quarantined into ``errors``.

At the end of a run (``compact``, the default) the per-video frames files are compacted into shards of about
``shard_mib`` MiB (a row group per video; the videos each holds named in its footer), so that readers open a
few large files instead of one per video (about 19k for FF++ at 32 frames); a shard's videos count as
finished for the resume, and a video leaving the manifest is cut out of its shard.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import re
import signal
import threading
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fst_ray import datasets, frames, lease, storage, tables, video
from fst_ray.config import UserError
from fst_ray.data import align, decode
from fst_ray.data.config import PrepareConfig
from fst_ray.data.landmarks import LandmarkError, VideoLandmarks, detected_sidecar, face_detector, read_sidecar
from fst_ray.data.manifest import (ManifestRow, build_manifest, error, list_tree, manifest_table, reencoded_rows,
                                   resolve_layout)
from fst_ray.data.pairs import build_fst_pairs
from fst_ray.data.views import read_table
from fst_ray.tables import write_parquet

log = logging.getLogger(__name__)

VIDEO_ERROR, MASK_ERROR, FRAME_ERROR, DETECT_ERROR = "video.", "mask.", "frame.", "detect."
PARAMS_FILE, SUCCESS_FILE = "_ingest.json", "_SUCCESS.json"
SUCCEEDED = "succeeded"
STORAGE = "storage"  # a status row's stage when the store failed: the job stops, nothing is recorded


# -- files ---------------------------------------------------------------------------------------------

def write_json(uri: str, doc: dict) -> None:
    storage.write_bytes(uri, json.dumps(doc, indent=1, sort_keys=True).encode())


def _stems(output: str, table: str, prefix: str = "") -> dict[str, str]:
    """``stem -> URI`` of the per-video Parquet files in a table folder (``prefix`` stripped; shards not
    included)."""
    out = {}
    for uri, _ in storage.list_files(storage.join(output, table)):
        name = uri.rsplit("/", 1)[-1]
        if name.startswith(prefix) and name.endswith(".parquet") and not name.startswith(SHARD):
            out[name[len(prefix):-len(".parquet")]] = uri
    return out


SHARD, SHARD_VIDEOS, SHARD_ROWS = "part-", b"fst_ray.videos", b"fst_ray.rows"


def _shard_damage(uri: str) -> tuple[list[str], str | None]:
    """The video stems a shard's footer names, and what is wrong with it (``None``: it holds exactly those videos,
    a row group each, with the row counts its footer records). A damaged footer names no videos."""
    fs, path = storage.resolve(uri)
    try:
        meta = pq.read_metadata(path, filesystem=fs)
    except (pa.ArrowInvalid, OSError) as e:
        if not storage.exists(uri):
            raise
        return [], tables.damage(e)
    kv = meta.metadata or {}
    stems = json.loads(kv.get(SHARD_VIDEOS, b"[]"))
    rows = json.loads(kv[SHARD_ROWS]) if SHARD_ROWS in kv else None  # shards of an older fst-ray record none
    if meta.num_row_groups != len(stems) or (rows is not None and len(rows) != len(stems)):
        return stems, f"{meta.num_row_groups} row groups for {len(stems)} videos"
    key = meta.schema.names.index("key")
    for i, stem in enumerate(stems):
        group = meta.row_group(i)
        if rows is not None and group.num_rows != rows[i]:
            return stems, f"video {stem}: {group.num_rows} rows, {rows[i]} written"
        stats = group.column(key).statistics
        prefix = stem.replace(".", "/", 2) + "/"
        if group.num_rows and not (stats is not None and stats.has_min_max and str(stats.min).startswith(prefix)
                                   and str(stats.max).startswith(prefix)):
            return stems, f"row group {i} does not hold video {stem}"
    return stems, None


def _shards(output: str) -> dict[str, list[str]]:
    """``shard URI -> the video stems it holds``, of the shards that hold what their footers say; a damaged shard
    (a partial upload of an older fst-ray, a truncated file) is deleted, its videos no longer finished unless
    their own files are still there, so the run redoes them."""
    out = {}
    for uri, _ in storage.list_files(storage.join(output, "frames")):
        if uri.rsplit("/", 1)[-1].startswith(SHARD) and uri.endswith(".parquet"):
            stems, damage = _shard_damage(uri)
            if damage is None:
                out[uri] = stems
            else:
                log.warning("frames shard %s is damaged (%s): deleted, its videos are redone", uri, damage)
                _delete(uri)
    return out


def _finished_frames(output: str) -> dict[str, str]:
    """``stem -> URI`` of every video with frames: its own file, or the (verified) shard holding it. A per-video
    file whose video is also in a shard (a compaction interrupted before its deletes) is deleted."""
    own = _stems(output, "frames")
    held = {stem: uri for uri, stems in _shards(output).items() for stem in stems}
    for stem in [s for s in own if s in held]:
        _delete(own.pop(stem))
    return {**own, **held}


def _cut_from_shards(output: str, stems: set[str], compression: str) -> None:
    """Rewrite each shard holding any of ``stems`` without their rows (delete it when nothing is left)."""
    for uri, held in _shards(output).items():
        if not stems & set(held):
            continue
        keep = [s for s in held if s not in stems]
        fs, path = storage.resolve(uri)
        table = pq.read_table(path, filesystem=fs, schema=frames.SCHEMA)
        prefixes = pc.binary_join_element_wise(table["method"], table["compression"], table["video"], "/")
        parts = [table.filter(pc.equal(prefixes, s.replace(".", "/", 2))) for s in keep]
        if keep:
            _write_shard(uri, parts, keep, compression)
        else:
            _delete(uri)


def _write_shard(uri: str, parts, stems: list[str], compression: str) -> None:
    """Write ``parts`` (one table of the frames schema per video of ``stems``) as one shard, a row group each,
    atomically; its footer names the videos and their row counts, and it is checked against them
    (:func:`_shard_damage`) before it takes its name."""
    schema = frames.SCHEMA.with_metadata({**(frames.SCHEMA.metadata or {}), SHARD_VIDEOS: json.dumps(stems)})
    rows = []
    with storage.atomic_path(uri) as (fs, tmp):
        with pq.ParquetWriter(tmp, schema, filesystem=fs, compression=compression) as writer:
            for part in parts:
                writer.write_table(part.replace_schema_metadata(schema.metadata))
                rows.append(part.num_rows)
            writer.add_key_value_metadata({SHARD_ROWS: json.dumps(rows)})
        written, damage = _shard_damage(("s3://" if storage.is_remote(uri) else "") + tmp)
        if damage or written != stems:
            raise OSError(f"the shard written for {uri} does not read back as written ({damage}): re-run")


def compact_frames(output: str, shard_mib: float, compression: str = "snappy") -> int:
    """Compact the per-video frames files into shards of about ``shard_mib`` MiB (written before the
    per-video files are deleted, so an interruption loses nothing). Returns the shards written."""
    files = sorted((uri, size) for uri, size in storage.list_files(storage.join(output, "frames"))
                   if uri.endswith(".parquet") and not uri.rsplit("/", 1)[-1].startswith(SHARD))
    if not files:
        return 0
    numbers = [int(u.rsplit("/", 1)[-1][len(SHARD):-len(".parquet")]) for u in _shards(output)]
    groups, size = [[]], 0
    for uri, n in files:
        if groups[-1] and size + n > shard_mib * 2 ** 20:
            groups.append([])
            size = 0
        groups[-1].append(uri)
        size += n
    for k, group in enumerate(groups, start=max(numbers, default=-1) + 1):
        stems = [u.rsplit("/", 1)[-1][: -len(".parquet")] for u in group]

        def parts(group=group):
            for u in group:
                fs, path = storage.resolve(u)
                yield pq.read_table(path, filesystem=fs, schema=frames.SCHEMA)

        _write_shard(storage.join(output, "frames", f"{SHARD}{k:05d}.parquet"), parts(), stems, compression)
        for u in group:
            _delete(u)
    return len(groups)


def _delete(uri: str) -> None:
    fs, path = storage.resolve(uri)
    with contextlib.suppress(FileNotFoundError):
        fs.delete_file(path)


# -- one group of videos (no Ray) ---------------------------------------------------------------------

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
            return _fail(row, self.output, "landmarks", str(e))
        except align.AlignError as e:
            return _fail(row, self.output, "align", str(e))
        except decode.DecodeError as e:
            return _fail(row, self.output, "decode", str(e))
        except OSError:  # the store's fault, not the input's: never recorded as bad input
            raise
        except Exception as e:  # noqa: BLE001 - an unexpected failure of one input must not stop the others
            return _fail(row, self.output, "ingest", f"{type(e).__name__}: {e}")
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


def _detect_failed(row: ManifestRow, output: str, reason: str) -> None:
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
        return _fail(row, output, "reencode", f"{type(e).__name__}: {e}")
    storage.write_bytes(row.uri, out.getvalue())
    return VideoResult(row.video_id, True, frames=info["frames"])


def _fail(row: ManifestRow, output: str, stage: str, reason: str) -> VideoResult:
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


class _IngestFn:
    """The Ray Data UDF: one group of manifest rows (JSON) in, one status row per video out."""

    def __init__(self, cfg: PrepareConfig, output: str):
        self.cfg, self.output = cfg, output

    def __call__(self, item: dict) -> list[dict]:
        rows = [ManifestRow(**r) for r in json.loads(item["group"])]
        try:
            with watchdog(self.cfg.video_timeout_s * len(rows)):
                if "detect" in item:
                    results = [detect_one(r.landmarks_uri, r.detect_uri, self.cfg, self.output) for r in rows]
                elif "reencode" in item:
                    results = [reencode_one(r, self.output) for r in rows]
                else:
                    results = ingest_group(rows, self.cfg, self.output)
        except OSError as e:  # a storage fault that outlasted the retries: reported to the driver, which stops
            results = [VideoResult(r.video_id, False, stage=STORAGE, reason=f"{r.uri}: {type(e).__name__}: {e}")
                       for r in rows]
        return [r.to_dict() for r in results]


# -- the job ---------------------------------------------------------------------------------------------

@dataclass
class IngestSummary:
    """What a run produced (the whole output, not only this run's share)."""

    output: str
    videos: int
    videos_ok: int
    videos_skipped: int
    frames: int
    frames_this_run: int
    pairs: int
    errors: int
    inputs: int
    bad_inputs: int
    seconds: float
    pipeline_seconds: float
    left_out: int = 0  # videos in no split: identity-disjoint splits leave them out (no error)
    errors_by_reason: dict[str, int] = field(default_factory=dict)
    strategies: dict[str, int] = field(default_factory=dict)

    @property
    def frames_per_s(self) -> float:
        return self.frames_this_run / self.pipeline_seconds if self.pipeline_seconds > 0 else 0.0

    @property
    def top_reason(self) -> str:
        """The commonest reason inputs were unusable (``-`` when none were)."""
        return max(self.errors_by_reason.items(), key=lambda kv: kv[1], default=("-", 0))[0]

    @property
    def error_share(self) -> float:
        return self.bad_inputs / self.inputs if self.inputs else 1.0

    def exit_code(self, max_error_share: float) -> int:
        """0 when frames came out and the error share is within the limit, else 1."""
        return int(self.frames == 0 or self.error_share > max_error_share)

    def __str__(self) -> str:
        lines = [
            "ingest summary",
            f"  output        {self.output}",
            f"  videos        {self.videos_ok} ok of {self.videos} in the manifest "
            f"({self.videos_skipped} finished earlier, skipped)"
            + (f"; {self.left_out} in no split (identities straddle two; encoders only)" if self.left_out else ""),
            f"  frames        {self.frames} ({self.frames_this_run} this run, {self.frames_per_s:.1f} frames/s, "
            f"decode: {', '.join(f'{k} {v}' for k, v in sorted(self.strategies.items())) or '-'})",
            f"  fst pairs     {self.pairs}",
            f"  errors        {self.errors} rows; {self.bad_inputs} of {self.inputs} inputs unusable "
            f"({100 * self.error_share:.1f}%)",
        ]
        for reason, n in sorted(self.errors_by_reason.items(), key=lambda kv: (-kv[1], kv[0]))[:12]:
            lines.append(f"    {n:6d}  {reason}")
        if len(self.errors_by_reason) > 12:
            lines.append(f"    ... {len(self.errors_by_reason) - 12} more reasons (see errors/)")
        lines.append(f"  time          {self.seconds:.1f} s")
        return "\n".join(lines)


def _reason_class(stage: str, reason: str) -> str:
    """A short, countable form of an error: stage and the reason's first clause (numbers dropped)."""
    head = reason.split(":")[0].split(" at ")[0]
    head = re.sub(r"\s(/|s3://)\S*", "", head)  # a path names one input, not a kind of error
    head = re.sub(r"\b\d+(\.\d+)?\b", "#", head)  # numbers, not the digits of a name (Face2Face)
    return f"{stage}: {head.strip()[:90]}"


def _params(cfg: PrepareConfig, root: str, output: str, layout: datasets.Layout) -> dict:
    """What the output's content depends on: its input (relative to the output), dataset, frame and split
    parameters, and the settings of each re-encoded compression."""
    return {"input": storage.relative(root, output), "dataset": layout.name,
            **cfg.output_params(), "reencode": {c: video.h264_settings(c) for c in cfg.reencode}}


#: the parameters an ingest recorded before fst-ray read other datasets: it was an FF++ tree, none re-encoded
BEFORE_DATASETS = {"dataset": "ffpp", "split_seed": 0, "reencode": {}}


def _check_params(cfg: PrepareConfig, root: str, output: str, layout: datasets.Layout) -> None:
    """Record the output's parameters, or refuse to resume an output made with different ones."""
    uri = storage.join(output, PARAMS_FILE)
    want = _params(cfg, root, output, layout)
    if storage.exists(uri):
        # recorded by an earlier fst-ray: an absolute input, none of the dataset parameters
        have = {**BEFORE_DATASETS, **json.loads(storage.read_bytes(uri))}
        if have.get("input") == root:
            have["input"] = want["input"]
        if have != want:
            raise UserError(f"{output} was made with {have}, this run asks {want}: "
                             "use a new output or overwrite: true")
    else:
        write_json(uri, want)


def _run_pass(groups: list[list[ManifestRow]], cfg: PrepareConfig, output: str, groups_per_task: int,
              max_retries: int, progress: bool = True, detect: bool = False, reencode: bool = False) -> list[dict]:
    """One streaming Ray Data pass: groups -> tasks of ``groups_per_task`` groups -> status rows (``detect``:
    face detection, each row naming the sidecar to write and the video to detect on; ``reencode``: re-encoding,
    each row naming the video to write and its raw video). A task whose worker dies is retried ``max_retries``
    times, then dropped (its videos are not reported)."""
    import ray

    mode = {"detect": True} if detect else {"reencode": True} if reencode else {}
    items = [{"group": json.dumps([r.to_dict() for r in g]), **mode} for g in groups]
    gpus = {"num_gpus": face_detector(cfg.detector).num_gpus} if detect and face_detector(cfg.detector).num_gpus else {}
    ds = ray.data.from_items(items, override_num_blocks=math.ceil(len(items) / groups_per_task))
    ds.context.max_errored_blocks = -1  # a lost block is handled by the caller
    with warnings.catch_warnings():
        # Ray 2.60 deprecates **ray_remote_args but names no other way to bound a map task's retries
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
        ds = ds.flat_map(_IngestFn(cfg, output), num_cpus=cfg.cpus_per_video, max_retries=max_retries, **gpus)
    from tqdm import tqdm

    videos = sum(len(g) for g in groups)
    desc = "faces" if detect else "re-encode" if reencode else "ingest"
    with tqdm(total=videos, desc=desc, unit="video", disable=not progress) as bar:
        out = []
        for row in ds.iter_rows():
            if row["stage"] == STORAGE:
                raise OSError(row["reason"])
            out.append(row)
            bar.update(1)
    return out


def _pass_each(rows: list[ManifestRow], cfg: PrepareConfig, output: str, mode: str, reported_as, fail) -> None:
    """A pass of one row per task with ``max_retries`` retries (``mode``: ``detect`` or ``reencode``);
    ``fail(row, reason)`` records a row whose worker died every time (``reported_as(row)``: its status row's id)."""
    from fst_ray.runtime import init_ray

    init_ray()
    done = {r["video_id"] for r in _run_pass([[r] for r in rows], cfg, output, cfg.groups_per_task,
                                            max_retries=cfg.max_retries, **{mode: True})}
    what = {"detect": "detector", "reencode": "re-encoder"}[mode]
    for r in rows:
        if reported_as(r) not in done:
            fail(r, f"{what} process died on each of {cfg.max_retries + 1} attempts")


def run_ingest(cfg: PrepareConfig) -> IngestSummary:
    """Run the ingest on the current Ray cluster (started if needed), holding the output's lease; see the module
    doc."""
    root = storage.canonical(cfg.input)
    if not storage.exists(root):
        raise UserError(f"input {root} does not exist")
    with lease.hold(cfg.output, "ingest"):
        return _ingest(cfg, root, storage.canonical(cfg.output))


def _ingest(cfg: PrepareConfig, root: str, output: str) -> IngestSummary:
    from fst_ray.runtime import init_ray

    start = time.perf_counter()
    if cfg.overwrite:
        for uri, _ in storage.list_files(output, temporary=True):
            if uri.rsplit("/", 1)[-1] != lease.LEASE_FILE:
                _delete(uri)
    listing = list_tree(root)
    layout = resolve_layout(cfg.dataset, {p for p, _ in listing})
    shipped = [c for c in cfg.reencode if c in layout.compressions]
    if shipped:
        raise UserError(f"{layout.title} ships {shipped}: reencode makes compressions a dataset does not ship")
    _check_params(cfg, root, output, layout)
    _delete(storage.join(output, SUCCESS_FILE))

    compressions = [c for c in cfg.compressions if c not in cfg.reencode] + (["raw"] if cfg.reencode else [])
    rows, manifest_errors = build_manifest(
        root, listing, cfg.methods, sorted(set(compressions)), cfg.exclude, cfg.landmarks, output, cfg.detect_per,
        cfg.splits, layout, cfg.split_seed)
    made = reencoded_rows(rows, root, output, [c for c in cfg.reencode if c in cfg.compressions])
    rows = sorted([r for r in rows if r.compression in cfg.compressions] + made, key=lambda r: r.video_id)
    write_parquet(manifest_table(rows), storage.join(output, "manifest.parquet"))
    write_parquet(pa.Table.from_pylist(manifest_errors, schema=tables.ERRORS),
                  storage.join(output, "errors", "manifest.parquet"))

    # resume: finished videos are skipped; files of videos no longer in the manifest are removed
    stems = {r.stem for r in rows}
    frames_done = _finished_frames(output)
    _cut_from_shards(output, {s for s in frames_done if s not in stems and frames_done[s].rsplit("/", 1)[-1]
                              .startswith(SHARD)}, cfg.parquet_compression)
    video_errors = _stems(output, "errors", VIDEO_ERROR)
    for files in (frames_done, video_errors):
        for stem in [s for s in files if s not in stems or (cfg.retry_errors and files is video_errors)]:
            uri = files.pop(stem)
            if not uri.rsplit("/", 1)[-1].startswith(SHARD):
                _delete(uri)
    group_stems = {f"{r.method}.{r.video}" for r in rows}
    for stem, uri in _stems(output, "errors", MASK_ERROR).items():
        if stem not in group_stems or cfg.retry_errors:
            _delete(uri)
    for table in ("frames", "errors"):  # files an interrupted run left half-written (this run holds the lease)
        for uri, _ in storage.list_files(storage.join(output, table), temporary=True):
            if uri.rsplit("/", 1)[-1].startswith(storage.TMP_PREFIX):
                _delete(uri)
    todo = [r for r in rows if r.stem not in frames_done and r.stem not in video_errors]

    results: list[dict] = []
    t0 = time.perf_counter()
    detect = {r.landmarks_uri: r for r in todo if r.detect_uri is not None}
    detect = [r for uri, r in sorted(detect.items()) if not storage.exists(uri)]  # the same face is never detected twice
    if detect:
        _pass_each(detect, cfg, output, "detect", lambda r: r.detect_uri,
                   lambda r, reason: _detect_failed(r, output, reason))
    encode = [r for r in todo if r.reencoded_from is not None and not storage.exists(r.uri)]
    if encode:
        _pass_each(encode, cfg, output, "reencode", lambda r: r.video_id,
                   lambda r, reason: _fail(r, output, "reencode", reason))
        video_errors = _stems(output, "errors", VIDEO_ERROR)
        todo = [r for r in todo if r.stem not in video_errors]
    if todo:
        init_ray()
        groups: dict[tuple[str, str], list[ManifestRow]] = {}
        for r in todo:
            groups.setdefault((r.method, r.video), []).append(r)
        results = _run_pass(list(groups.values()), cfg, output, cfg.groups_per_task, max_retries=0)
        reported = {r["video_id"] for r in results}
        lost = [r for r in todo if r.video_id not in reported]
        if lost:  # a worker died: redo those videos one per task, with bounded retries, then quarantine
            storage.exists(storage.join(output, PARAMS_FILE))  # not while the store is down (OSError: job stops)
            results += _run_pass([[r] for r in lost], cfg, output, 1, max_retries=cfg.max_retries)
            reported = {r["video_id"] for r in results}
            reason = (f"decoder process died on each of {cfg.max_retries + 2} attempts (crash, or killed after "
                      f"{cfg.video_timeout_s:.0f} s); quarantined")
            results += [_fail(r, output, "decode", reason).to_dict() for r in lost if r.video_id not in reported]
    if cfg.compact:
        compact_frames(output, cfg.shard_mib, cfg.parquet_compression)
    pipeline_seconds = time.perf_counter() - t0

    index = _read_index(output)
    pairs, pair_errors = build_fst_pairs(index, {r.video_id: r.uri for r in rows})
    write_parquet(pairs, storage.join(output, "fst_pairs", "fst_pairs.parquet"))
    write_parquet(pa.Table.from_pylist(pair_errors, schema=tables.ERRORS), storage.join(output, "errors", "pairs.parquet"))

    errors = _read_errors(output)
    inputs = {r.uri for r in rows} | {e["path"] for e in manifest_errors if e["stage"] != "splits"}
    summary = IngestSummary(
        output=output, videos=len(rows), left_out=sum(r.split == datasets.NO_SPLIT for r in rows),
        videos_ok=len(_finished_frames(output)),
        videos_skipped=len(rows) - len(todo), frames=len(index),
        frames_this_run=sum(r["frames"] for r in results), pairs=len(pairs), errors=len(errors["path"]),
        inputs=len(inputs), bad_inputs=len({p for p, f in zip(errors["path"], errors["frame"]) if f is None} & inputs),
        seconds=time.perf_counter() - start, pipeline_seconds=pipeline_seconds,
        errors_by_reason=dict(Counter(_reason_class(s, r) for s, r in zip(errors["stage"], errors["reason"]))),
        strategies=dict(Counter(r["strategy"] for r in results if r["ok"])),
    )
    if summary.exit_code(cfg.max_error_share):
        return summary  # no completion marker: a consumer must not take a failed ingest for a finished one
    write_json(storage.join(output, SUCCESS_FILE), {
        "verdict": SUCCEEDED, "videos": summary.videos, "videos_ok": summary.videos_ok, "frames": summary.frames,
        "fst_pairs": summary.pairs, "errors": summary.errors, "inputs": summary.inputs,
        "bad_inputs": summary.bad_inputs, "errors_by_reason": summary.errors_by_reason,
        "params": _params(cfg, root, output, layout),
    })
    return summary


def finished_ingest(output: str) -> dict | None:
    """The completion marker of a succeeded ingest at ``output`` (its counts and ``params``), ``None`` when
    there is none (never finished, failed, or still running)."""
    uri = storage.join(output, SUCCESS_FILE)
    if not storage.exists(uri):
        return None
    marker = json.loads(storage.read_bytes(uri))
    return marker if marker.get("verdict") == SUCCEEDED else None


def ingest_params(output: str) -> dict:
    """How the frames at ``output`` were made (``_ingest.json`` without the input's path; empty where there is
    none, as for hand-written tables): what caches of results made from them record."""
    uri = storage.join(output, PARAMS_FILE)
    params = json.loads(storage.read_bytes(uri)) if storage.exists(uri) else {}
    params.pop("input", None)
    return params


def ingest_dataset(output: str) -> str:
    """The dataset layout (:mod:`fst_ray.datasets`) the frames at ``output`` were ingested from (FF++ where the
    ingest predates other datasets or the tables were written by hand)."""
    return ingest_params(output).get("dataset", BEFORE_DATASETS["dataset"])


def _read_index(output: str) -> pa.Table:
    if not _finished_frames(output):
        return pa.Table.from_pylist([], schema=pa.schema([frames.SCHEMA.field(c) for c in frames.INDEX_COLUMNS]))
    return frames.read_index(output)


def _read_errors(output: str) -> dict[str, list]:
    return read_table(output, "errors").to_pydict()

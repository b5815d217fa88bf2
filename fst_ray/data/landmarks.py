"""Where a frame's 5 face landmarks come from: a sidecar, or a face detector whose landmarks are cached as one.

Every video's landmarks are read from a sidecar (:func:`read_sidecar`, format :func:`fst_ray.ffpp.landmarks_to_json`):
the corpus's own (the synthetic corpus has them), or one a face detector wrote under the ingest's output
(:func:`detected_sidecar`). A detector's sidecar holds the sampled frames with a face; the frames it looked at
without finding one are listed as ``sampled`` and reported in ``errors``.

Detectors register in :data:`DETECTORS` under the name a config selects (:func:`register_detector`); one
that needs a GPU sets ``num_gpus`` and Ray places its tasks on GPU nodes. Built in: ``dlib``, dlib's HOG
frontal face detector and its 68-point shape predictor (the model file ships in the
``face_recognition_models`` package; trained on iBUG 300-W, research use only), reduced to 5 points as the
authors' release does. Pure numpy (and the detector's library); no Ray.
"""

from __future__ import annotations

import importlib.util
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from fst_ray import ffpp, storage

__all__ = ["LandmarkError", "VideoLandmarks", "read_sidecar", "Face", "FaceDetector", "DETECTORS",
           "register_detector", "face_detector", "five_from_68", "pick_faces", "detected_sidecar"]


class LandmarkError(ValueError):
    """No usable landmarks for a video or a frame (missing or malformed sidecar, frame out of range, too few
    faces)."""


@dataclass(frozen=True)
class VideoLandmarks:
    """One video's landmarks: ``frames`` the indices to ingest (``None``: any, the ingest samples K
    uniformly) and a locator ``(index, frame [H, W, 3]) -> [5, 2]`` pixels (:data:`fst_ray.ffpp.LANDMARK_NAMES`)."""

    sidecar: ffpp.Sidecar
    uri: str

    @property
    def frames(self) -> np.ndarray | None:
        return None if self.sidecar.sampled is None else self.sidecar.frames

    def __call__(self, index: int, frame: np.ndarray) -> np.ndarray:
        s = self.sidecar
        k = int(np.searchsorted(s.frames, index))
        if k == len(s.frames) or s.frames[k] != index:
            raise LandmarkError(f"sidecar {self.uri} has no landmarks for frame {index} "
                                f"({len(s.frames)} frames)")
        if s.size is not None and (frame.shape[1], frame.shape[0]) != s.size:
            raise LandmarkError(f"sidecar is for {s.size[0]}x{s.size[1]} frames, the video's are "
                                f"{frame.shape[1]}x{frame.shape[0]}")
        return s.landmarks[k]


def read_sidecar(uri: str, min_face_share: float = 0.0) -> VideoLandmarks:
    """Open the sidecar at ``uri``; :class:`LandmarkError` if it is missing or malformed, or if a detector
    found a face in less than ``min_face_share`` of the frames it sampled."""
    try:
        text = storage.read_bytes(uri)
    except FileNotFoundError as e:  # any other OSError is the store's fault: the job stops, a re-run retries
        raise LandmarkError(f"missing landmark sidecar {uri}: {e}") from e
    try:
        sidecar = ffpp.landmarks_from_json(text)
    except ValueError as e:
        raise LandmarkError(str(e)) from e
    if sidecar.sampled is not None:
        found, looked = len(sidecar.frames), len(sidecar.sampled)
        if looked == 0 or found < min_face_share * looked:
            raise LandmarkError(f"a face in {found} of {looked} sampled frames, fewer than the "
                                f"{min_face_share:.0%} asked")
    return VideoLandmarks(sidecar, uri)


# -- face detectors ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Face:
    """One detected face in frame pixels: ``box`` (x0, y0, x1, y1), the detector's ``score`` and 5 ``points``
    ``[5, 2]``."""

    box: np.ndarray
    score: float
    points: np.ndarray

    @property
    def centre(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2])


class FaceDetector(ABC):
    """Finds faces and their 5 landmarks in one frame."""

    name: str = ""
    num_gpus: float = 0.0  # > 0: the detector runs on GPU nodes

    @abstractmethod
    def faces(self, frame: np.ndarray, reduction: str = "eye-means") -> list[Face]:
        """Every face in ``frame`` (``[H, W, 3]`` uint8 RGB), any order; ``reduction``: how a detector of more
        than 5 points picks the 5 (:func:`five_from_68`)."""


DETECTORS: dict[str, type[FaceDetector]] = {}


def register_detector(cls: type[FaceDetector]) -> type[FaceDetector]:
    """Class decorator: make ``cls`` selectable as ``detector: {cls.name}``."""
    DETECTORS[cls.name] = cls
    return cls


_LOADED: dict[str, FaceDetector] = {}


def face_detector(name: str) -> FaceDetector:
    """The registered detector ``name``, loaded once per process."""
    if name not in DETECTORS:
        raise ValueError(f"unknown face detector {name!r}; known: {sorted(DETECTORS)}")
    if name not in _LOADED:
        _LOADED[name] = DETECTORS[name]()
    return _LOADED[name]


def five_from_68(points: np.ndarray, reduction: str = "eye-means") -> np.ndarray:
    """The project's 5 points ``[5, 2]`` from the 68 of iBUG 300-W ``[68, 2]``. ``eye-means``, as the authors'
    release reduces them: eye centres (means of points 36–41 and 42–47), nose tip 30, mouth corners 48 and 54;
    ``deepfakebench``: points 37, 44, 30, 49 and 55, as DeepfakeBench picks them."""
    p = np.asarray(points, dtype=np.float64)
    if p.shape != (68, 2):
        raise ValueError(f"expected [68, 2] points, got {p.shape}")
    if reduction == "deepfakebench":
        return p[[37, 44, 30, 49, 55]]
    if reduction != "eye-means":
        raise ValueError(f"unknown reduction {reduction!r}: eye-means or deepfakebench")
    return np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]])


@register_detector
class DlibDetector(FaceDetector):
    """dlib's HOG frontal face detector and 68-point shape predictor (CPU). Frames whose long side exceeds
    ``max_side`` are detected on a downscaled copy (the landmarks are fitted at full resolution). A frame
    whose best face scores below ``confident`` is detected again upsampled once (a finer scale pyramid: a
    face between two of the coarse pyramid's scales gets a loose box, and the 68 points follow the box), and
    the better-scoring detection is kept."""

    name = "dlib"
    max_side = 960
    confident = 1.0

    def __init__(self):
        import dlib

        spec = importlib.util.find_spec("face_recognition_models")  # not imported: it needs pkg_resources
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError("the dlib detector needs the face_recognition_models package (pip install "
                               "face_recognition_models)")
        model = os.path.join(spec.submodule_search_locations[0], "models", "shape_predictor_68_face_landmarks.dat")
        self._dlib = dlib
        self._detect = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(model)

    def faces(self, frame: np.ndarray, reduction: str = "eye-means") -> list[Face]:
        from PIL import Image

        frame = np.ascontiguousarray(frame)
        scale = min(1.0, self.max_side / max(frame.shape[:2]))
        small = frame if scale == 1.0 else np.asarray(Image.fromarray(frame).resize(
            (round(frame.shape[1] * scale), round(frame.shape[0] * scale)), Image.Resampling.BILINEAR))
        rects, scores = [], []
        for upsample in (0, 1):
            found, score, _ = self._detect.run(small, upsample, 0.0)
            if len(found) and (not scores or max(score) > max(scores)):
                rects, scores = list(found), list(score)
            if scores and max(scores) >= self.confident:
                break
        out = []
        for r, score in zip(rects, scores):
            box = np.array([r.left(), r.top(), r.right(), r.bottom()], dtype=np.float64) / scale
            rect = self._dlib.rectangle(*(int(round(v)) for v in box))
            shape = self._shape(frame, rect)
            points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
            out.append(Face(box, float(score), five_from_68(points, reduction)))
        return out


def pick_faces(candidates: Iterable[list[Face]], close: float = 0.1) -> list[Face | None]:
    """One face per frame, kept consistent across a video's frames: the highest-scoring face, unless another
    scores within ``close`` of it; then, of those, the one nearest the previous frame's choice. ``None``
    for a frame without a face."""
    chosen: list[Face | None] = []
    previous: Face | None = None
    for faces in candidates:
        if not faces:
            chosen.append(None)
            continue
        best = max(f.score for f in faces)
        near = [f for f in faces if f.score >= best - close]
        if previous is not None and len(near) > 1:
            pick = min(near, key=lambda f: float(np.linalg.norm(f.centre - previous.centre)))
        else:
            pick = max(near, key=lambda f: f.score)
        chosen.append(pick)
        previous = pick
    return chosen


def detected_sidecar(name: str, detector: str, found: list[tuple[int, list[Face]]], size: tuple[int, int] | None,
                     close: float = 0.1) -> tuple[str, list[int]]:
    """The sidecar JSON of a detector's faces ``found`` per sampled frame ``(index, faces)`` in frames of
    ``size`` (width, height): one face per frame (:func:`pick_faces`), the frames without one left out and
    listed in ``sampled`` only. Returns ``(json, the indices without a face)``."""
    picked = pick_faces([faces for _, faces in found], close)
    keep = [(i, f) for (i, _), f in zip(found, picked) if f is not None]
    text = ffpp.landmarks_to_json(
        name, np.array([f.box for _, f in keep]).reshape(-1, 4), np.array([f.points for _, f in keep]).reshape(-1, 5, 2),
        size or (0, 0), frames=[i for i, _ in keep], sampled=[i for i, _ in found], scores=[f.score for _, f in keep],
        detector=detector)
    return text, [i for (i, _), f in zip(found, picked) if f is None]

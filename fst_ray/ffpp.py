"""FaceForensics++ (FF++) layout and naming, in the paper's words.

A fake video ``A_B.mp4`` has **source = A** (the video whose frames were manipulated: background, hair,
pose, clothing) and **target = B** (the video that gave the face representation: identity for face
swaps, expression for reenactments). An original ``A.mp4`` has source = target = A. FF++'s own
documentation calls A the "target"; fst-ray uses the paper's words everywhere.

Tree (relative to the dataset root)::

    original_sequences/youtube/{raw,c23,c40}/videos/{A}.mp4
    manipulated_sequences/{method}/{raw,c23,c40}/videos/{A}_{B}.mp4
    manipulated_sequences/{method}/masks/videos/{A}_{B}.mp4
    splits/{train,val,test}.json                  # [["A", "B"], ...] pairs

and, outside the ``videos/`` folders, one landmark sidecar per video (:func:`landmarks_path`), in the
format of :func:`landmarks_to_json`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np

ORIGINAL = "original"
METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter")
FACE_SWAPS = ("Deepfakes", "FaceSwap", "FaceShifter")
REENACTMENTS = ("Face2Face", "NeuralTextures")
COMPRESSIONS = ("raw", "c23", "c40")
SPLITS = ("train", "val", "test")
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
LANDMARKS_FORMAT = "fst-ray-landmarks/1"

_VIDEO_RE = re.compile(r"^(\d+)(?:_(\d+))?$")


def video_name(source: str, target: str | None = None) -> str:
    """``A`` for an original, ``A_B`` for a fake."""
    return source if target is None or target == source else f"{source}_{target}"


def parse_video_name(name: str) -> tuple[str, str]:
    """``(source, target)`` ids of a video name (without ``.mp4``); raises ``ValueError`` if it does not parse."""
    m = _VIDEO_RE.match(name)
    if not m:
        raise ValueError(f"video name {name!r} is neither 'A' nor 'A_B' with numeric ids")
    source, target = m.group(1), m.group(2)
    return source, (target if target is not None else source)


def _sequence_dir(method: str) -> str:
    if method == ORIGINAL:
        return "original_sequences/youtube"
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected {ORIGINAL!r} or one of {METHODS}")
    return f"manipulated_sequences/{method}"


def video_path(method: str, compression: str, name: str) -> str:
    """Relative path of a video in the FF++ tree."""
    if compression not in COMPRESSIONS:
        raise ValueError(f"unknown compression {compression!r}; expected one of {COMPRESSIONS}")
    return f"{_sequence_dir(method)}/{compression}/videos/{name}.mp4"


def mask_path(method: str, name: str) -> str:
    """Relative path of a fake's manipulation-mask video (where FF++ keeps its masks)."""
    if method == ORIGINAL:
        raise ValueError("originals have no manipulation mask")
    return f"{_sequence_dir(method)}/masks/videos/{name}.mp4"


def landmarks_path(method: str, name: str) -> str:
    """Relative path of a video's landmark sidecar: beside ``videos/`` trees, shared by all compressions
    (compression does not move the face)."""
    return f"{_sequence_dir(method)}/landmarks/{name}.json"


def split_path(split: str) -> str:
    return f"splits/{split}.json"


@dataclass(frozen=True)
class VideoRef:
    """A video located in the FF++ tree."""

    method: str
    compression: str
    name: str

    @property
    def source_id(self) -> str:
        return parse_video_name(self.name)[0]

    @property
    def target_id(self) -> str:
        return parse_video_name(self.name)[1]

    @property
    def det_label(self) -> int:
        """1 = fake, 0 = real."""
        return int(self.method != ORIGINAL)

    @property
    def path(self) -> str:
        return video_path(self.method, self.compression, self.name)


def parse_video_path(relpath: str) -> VideoRef:
    """Inverse of :func:`video_path`; raises ``ValueError`` for paths outside the FF++ video layout."""
    parts = relpath.strip("/").split("/")
    if len(parts) != 5 or parts[3] != "videos" or not parts[4].endswith(".mp4"):
        raise ValueError(f"{relpath!r} is not a FF++ video path")
    top, group, compression, _, file = parts
    if top == "original_sequences" and group == "youtube":
        method = ORIGINAL
    elif top == "manipulated_sequences" and group in METHODS:
        method = group
    else:
        raise ValueError(f"{relpath!r}: unknown sequence folder {top}/{group}")
    if compression not in COMPRESSIONS:
        raise ValueError(f"{relpath!r}: unknown compression {compression!r}")
    name = file[: -len(".mp4")]
    parse_video_name(name)
    if (method == ORIGINAL) == ("_" in name):
        raise ValueError(f"{relpath!r}: originals are named 'A', fakes 'A_B'")
    return VideoRef(method, compression, name)


# -- landmark sidecars -------------------------------------------------------------------------------

def landmarks_to_json(name: str, boxes: np.ndarray, landmarks: np.ndarray, size: tuple[int, int],
                      frames: np.ndarray | None = None, sampled: np.ndarray | None = None,
                      scores: np.ndarray | None = None, detector: str | None = None) -> str:
    """Serialise per-frame face boxes ``[T, 4]`` (x0, y0, x1, y1) and 5 landmarks ``[T, 5, 2]`` (x, y)
    in pixels of a ``size = (width, height)`` frame. Landmark order: :data:`LANDMARK_NAMES`, where
    left/right mean the image's left/right (the order RetinaFace and MTCNN report).

    A sidecar of every frame has ``frames = 0..T-1`` (the default). A face detector's sidecar holds the
    sampled frames in which it found a face (``frames``, their indices in the video), lists every frame it
    looked at (``sampled``; the others had no face) with the detector's ``scores`` and its name."""
    boxes = np.asarray(boxes, dtype=float)
    landmarks = np.asarray(landmarks, dtype=float)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or landmarks.shape != (len(boxes), 5, 2):
        raise ValueError(f"expected boxes [T,4] and landmarks [T,5,2], got {boxes.shape}, {landmarks.shape}")
    frames = np.arange(len(boxes)) if frames is None else np.asarray(frames)
    doc = {
        "format": LANDMARKS_FORMAT,
        "video": name,
        "width": int(size[0]),
        "height": int(size[1]),
        "landmark_names": list(LANDMARK_NAMES),
        "frames": [
            {"frame": int(i), "box": [round(v, 2) for v in b], "landmarks": [[round(x, 2), round(y, 2)] for x, y in lm]}
            | ({} if scores is None else {"score": round(float(scores[k]), 4)})
            for k, (i, b, lm) in enumerate(zip(frames, boxes, landmarks))
        ],
    }
    if sampled is not None:
        doc["sampled"] = [int(i) for i in sampled]
    if detector is not None:
        doc["detector"] = detector
    return json.dumps(doc, separators=(",", ":"))


@dataclass(frozen=True)
class Sidecar:
    """A parsed landmark sidecar: ``frames [T]`` video frame indices (increasing), ``boxes [T, 4]``,
    ``landmarks [T, 5, 2]``, the frame ``size`` (width, height) if declared, and for a detector's sidecar
    the ``sampled`` indices it looked at (``None``: the sidecar covers frames 0..T-1)."""

    frames: np.ndarray
    boxes: np.ndarray
    landmarks: np.ndarray
    size: tuple[int, int] | None = None
    sampled: np.ndarray | None = None
    detector: str | None = None


def landmarks_from_json(text: str | bytes) -> Sidecar:
    """Parse a sidecar (:func:`landmarks_to_json`). Raises ``ValueError`` with a readable reason for
    anything malformed."""
    try:
        doc = json.loads(text)
        if doc.get("format") != LANDMARKS_FORMAT:
            raise ValueError(f"format is {doc.get('format')!r}, expected {LANDMARKS_FORMAT!r}")
        frames = sorted(doc["frames"], key=lambda f: f["frame"])
        index = np.array([int(f["frame"]) for f in frames], dtype=np.int64)
        sampled = None if doc.get("sampled") is None else np.array(doc["sampled"], dtype=np.int64)
        if sampled is None and not np.array_equal(index, np.arange(len(frames))):
            raise ValueError("frame indices are not 0..T-1 (and no 'sampled' list says which were looked at)")
        if sampled is not None and not set(index.tolist()) <= set(sampled.tolist()):
            raise ValueError("frames outside the 'sampled' list")
        boxes = np.array([f["box"] for f in frames], dtype=np.float32).reshape(len(frames), 4)
        landmarks = np.array([f["landmarks"] for f in frames], dtype=np.float32).reshape(len(frames), 5, 2)
        w, h = doc.get("width"), doc.get("height")
        size = (int(w), int(h)) if w is not None and h is not None else None
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"malformed landmark sidecar: {type(e).__name__}: {e}") from e
    if not np.isfinite(landmarks).all() or not np.isfinite(boxes).all():
        raise ValueError("malformed landmark sidecar: non-finite coordinates")
    return Sidecar(index, boxes, landmarks, size, sampled, doc.get("detector"))


# -- splits ------------------------------------------------------------------------------------------

def splits_to_json(pairs: list[tuple[str, str]]) -> str:
    """FF++'s split format: a JSON list of ``[A, B]`` string pairs."""
    return json.dumps([[a, b] for a, b in pairs])


def splits_from_json(text: str | bytes) -> list[tuple[str, str]]:
    """The ``(A, B)`` pairs of a split file (FF++'s ``[["A", "B"], ...]``); ``ValueError`` naming the first bad
    entry (not a pair of two distinct ids) or the JSON error."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ValueError(f"not JSON ({e})") from None
    if not isinstance(doc, list):
        raise ValueError(f"a split file is a JSON list of [A, B] pairs, not a {type(doc).__name__}")
    for i, p in enumerate(doc):
        if not (isinstance(p, list) and len(p) == 2 and all(isinstance(v, (str, int)) and str(v) for v in p)
                and str(p[0]) != str(p[1])):
            raise ValueError(f"entry {i} ({json.dumps(p)}) is not a pair of two different video ids")
    return [(str(a), str(b)) for a, b in doc]


def split_of_ids(splits: dict[str, list[tuple[str, str]]]) -> dict[str, str]:
    """Map each original id to the split of the pairs it belongs to; ``ValueError`` for an id in two splits
    (FF++'s splits are identity-disjoint)."""
    out: dict[str, str] = {}
    for split, pairs in splits.items():
        for pair in pairs:
            for v in pair:
                if out.setdefault(v, split) != split:
                    raise ValueError(f"id {v} is in both the {out[v]} and the {split} split (pair {list(pair)})")
    return out

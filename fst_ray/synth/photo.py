"""Real-face test videos: a photo that ships with matplotlib (Grace Hopper) moved by a known per-frame motion,
written as an FF++-layout tree without landmark sidecars, so the true 5 points of every frame are known.

Used by the tests and ``bench/faces.py`` to exercise the face detector on a real face (nothing is downloaded;
the photo is matplotlib's sample data, not a dataset).
"""

from __future__ import annotations

import os

import matplotlib
import numpy as np
from PIL import Image

from fst_ray import ffpp, storage, video

# the photo's 5 points (image-left eye centre, image-right eye centre, nose tip, mouth corners), annotated on
# the still and checked by eye against the photo
PHOTO_POINTS = np.array([[223.7, 192.3], [305.3, 189.2], [267.0, 238.0], [233.0, 281.0], [300.0, 277.0]])
BACKGROUND = 90  # grey of the canvas, and of a frame that shows no face


def photo() -> np.ndarray:
    """The photo ``[600, 512, 3]`` uint8 RGB."""
    path = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    return np.asarray(Image.open(path).convert("RGB"))


def frame(vid: str, t: int, width: int = 320, height: int = 240) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``t`` ``[height, width, 3]`` of original ``vid`` (digits) and its true 5 points ``[5, 2]``: the
    photo scaled with the frame's height and drifting and zooming slowly with ``t``."""
    k, t, unit = int(vid) % 2, t + int(vid) // 2, height / 240
    scale, offset = (0.55 + 0.01 * t + 0.03 * k) * unit, np.array([-40.0 + 3 * t - 20 * k, -60.0 + 2 * t + 5 * k]) * unit
    src = photo()
    small = np.asarray(Image.fromarray(src).resize((round(src.shape[1] * scale), round(src.shape[0] * scale)),
                                                   Image.Resampling.BILINEAR))
    canvas = np.full((height, width, 3), BACKGROUND, np.uint8)
    x0, y0 = int(offset[0]), int(offset[1])
    ys, xs = slice(max(0, y0), min(height, y0 + small.shape[0])), slice(max(0, x0), min(width, x0 + small.shape[1]))
    canvas[ys, xs] = small[ys.start - y0: ys.stop - y0, xs.start - x0: xs.stop - x0]
    real_scale = np.array([small.shape[1] / src.shape[1], small.shape[0] / src.shape[0]])
    return canvas, PHOTO_POINTS * real_scale + np.array([x0, y0])


def fake(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """A crude manipulation of the face region (the colour channels of a box around the eyes, nose and mouth
    reversed) in place of a real method: the frame keeps its geometry."""
    out = image.copy()
    (x0, y0), (x1, y1) = points.min(0).astype(int) - 4, points.max(0).astype(int) + 4
    out[y0:y1, x0:x1] = out[y0:y1, x0:x1, ::-1]
    return out


def write_tree(root: str, compressions: dict[str, tuple[str, ...]], frames: int = 12, width: int = 320,
               height: int = 240, no_face: dict[str, tuple[int, ...]] | None = None, shorter: int = 2,
               pairs: int = 1, train_pairs: int = 0) -> dict[str, np.ndarray]:
    """Originals ``000``, ``001`` (and, with ``pairs`` > 1, ``002``, ``003``, ...) and the FaceSwap fakes
    ``000_001``, ``002_003``, ... (``shorter`` frames fewer than their source) at ``compressions[video]``
    (a fake's entry is ``000_001``'s; originals beyond 001 take 000's or 001's), FF++'s split files (the first
    ``train_pairs`` pairs in train, the others in test), no sidecars. Frames listed in
    ``no_face[video]`` show only the canvas. Returns the true points ``[frames, 5, 2]`` of each original."""
    truth = {}
    ids = [f"{k:03d}" for k in range(2 * pairs)]
    for vid in ids:
        shots = [frame(vid, t, width, height) for t in range(frames)]
        pixels = np.stack([f for f, _ in shots])
        for t in (no_face or {}).get(vid, ()):
            pixels[t] = BACKGROUND
        truth[vid] = np.stack([p for _, p in shots])
        for c in compressions.get(vid if vid in compressions else ids[int(vid) % 2], ()):
            storage.write_bytes(storage.join(root, ffpp.video_path(ffpp.ORIGINAL, c, vid)), video.encode(pixels, c))
        if int(vid) % 2 == 0:
            name = ffpp.video_name(vid, ids[int(vid) + 1])
            fakes = np.stack([fake(f, p) for f, p in shots[: frames - shorter]])
            for c in compressions.get("000_001", ()):
                storage.write_bytes(storage.join(root, ffpp.video_path("FaceSwap", c, name)), video.encode(fakes, c))
    both = [(ids[2 * k], ids[2 * k + 1]) for k in range(pairs)]
    for split, split_pairs in (("train", both[:train_pairs]), ("val", []), ("test", both[train_pairs:])):
        storage.write_bytes(storage.join(root, ffpp.split_path(split)), ffpp.splits_to_json(split_pairs).encode())
    return truth

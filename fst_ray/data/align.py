"""Face alignment: a similarity transform of 5 landmarks onto a canonical 5-point template.

Landmark order is :data:`fst_ray.ffpp.LANDMARK_NAMES` (image-left eye, image-right eye, nose, mouth
left, mouth right), in pixels ``(x, y)``. Templates (:data:`PRESETS`, named by ``alignment`` in the ingest's
config and recorded in ``_ingest.json``):

- ``arcface`` (fst-ray's default): the 5-point ArcFace template (112 x 112) shrunk about the crop centre by
  ``1 / margin`` (``margin = 1.3``: the crop shows 1.3x the template's face, the usual context for deepfake
  detection), then scaled to ``S x S``; eyes are the means of the six eye points of the 68.
- ``deepfakebench``: DeepfakeBench's crop — the same ArcFace template and margin 1.3 (its ``scale``, which
  works out to the same shrink about the centre), 256 px, 32 frames, but its 5 points are single points of
  the 68: 37 and 44 (upper eyelids), nose tip 30, 49 and 55 (beside the mouth corners).
- ``fst-matching``: the authors' release (``align_5p`` of their code): their mean face, a face width of 80
  in a 224 canvas at scale 0.9, vertical placement putting the eyes at 1 : 1.42 of the way down; eyes as
  the means of the six eye points (as ``arcface``).

Pure numpy + Pillow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

# ArcFace / InsightFace 5-point template in a 112 x 112 crop, (x, y) pixels
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
)


# the authors' mean face (fst-matching preset), in units of their canvas about its centre
FST_MEAN_FACE = np.array([[-0.17607, -0.172844], [0.1736, -0.17356], [-0.00182, 0.0357164],
                          [-0.14617, 0.20185], [0.14496, 0.19943]])


class AlignError(ValueError):
    """Landmarks that do not define a usable transform (degenerate, non-finite)."""


def template(size: int, margin: float = 1.3, preset: str = "arcface") -> np.ndarray:
    """The canonical 5 points ``[5, 2]`` in pixels of an ``size x size`` crop (``margin``: ``arcface``
    only; the other presets fix their own)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown alignment {preset!r}; known: {sorted(PRESETS)}")
    if preset == "fst-matching":
        ratio = 80 / (224 * 0.34967)  # face width 80 of a 224 canvas
        mf = FST_MEAN_FACE * 0.9
        down = (mf[0, 1] * ratio + 0.5) * (1 + 1.42)  # eyes : bottom = 1 : 1.42
        return np.column_stack([(mf[:, 0] * ratio + 0.5), (mf[:, 1] * ratio + 0.5) / down]) * size
    margin = PRESETS[preset].margin or margin
    if margin <= 0:
        raise ValueError(f"margin must be positive, got {margin}")
    unit = ARCFACE_112 / 112.0
    return ((unit - 0.5) / margin + 0.5) * size


@dataclass(frozen=True)
class Preset:
    """An alignment preset: its 68-to-5 point reduction (``eye-means`` or ``deepfakebench``), a fixed margin
    (``None``: the config's), and the crop side and frames per video its authors use (defaults of the
    ingest when the preset is chosen; ``None``: fst-ray's)."""

    points: str
    margin: float | None = None
    size: int | None = None
    frames_per_video: int | None = None


PRESETS = {
    "arcface": Preset("eye-means"),
    "deepfakebench": Preset("deepfakebench", margin=1.3, size=256, frames_per_video=32),
    "fst-matching": Preset("eye-means", size=224),
}


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) mapping ``src``
    points ``[N, 2]`` onto ``dst`` ``[N, 2]`` (Umeyama 1991). Returns the ``[2, 3]`` forward matrix."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise AlignError(f"expected two [N>=2, 2] point sets, got {src.shape} and {dst.shape}")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise AlignError("non-finite landmarks")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s ** 2).sum() / len(src)
    if var_s < 1e-6:
        raise AlignError("degenerate landmarks: all points coincide")
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    e = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[1, 1] = -1.0
    rot = u @ e @ vt
    scale = (sig * np.diag(e)).sum() / var_s
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map points ``[..., 2]`` through a ``[2, 3]`` affine matrix."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def warp(image: np.ndarray, matrix: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    """Warp ``image`` (``[H, W, 3]`` or ``[H, W]`` uint8) by the forward ``matrix`` into ``size x size``;
    outside the frame is black. Bilinear, after a box pre-filter when shrinking by 2x or more (so large
    faces do not alias); nearest (no pre-filter) for masks."""
    img = Image.fromarray(image)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if not nearest and scale < 0.5:
        f = int(1.0 / scale)
        img = img.reduce(f)  # reduced pixel j averages pixels f*j .. f*j+f-1: its centre is f*j + (f-1)/2
        matrix = np.hstack([matrix[:, :2] * f, (matrix[:, :2] @ np.full(2, (f - 1) / 2) + matrix[:, 2])[:, None]])
    inv = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
    # points are pixel indices (pixel i's centre at i); Pillow puts centres at i + 0.5
    c = inv[:, 2] + 0.5 - inv[:, :2] @ np.array([0.5, 0.5])
    coeffs = (inv[0, 0], inv[0, 1], c[0], inv[1, 0], inv[1, 1], c[1])
    resample = Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR
    return np.asarray(img.transform((size, size), Image.Transform.AFFINE, coeffs, resample=resample))


def align_face(frame: np.ndarray, landmarks: np.ndarray, size: int, margin: float = 1.3,
               mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Aligned ``[S, S, 3]`` crop of one frame (and its ``[S, S]`` mask, nearest-sampled) from its 5
    landmarks ``[5, 2]``."""
    m = similarity(landmarks, template(size, margin))
    return warp(frame, m, size), (None if mask is None else warp(mask, m, size, nearest=True))

"""Does a map point at what it should? Attributions scored against ground-truth regions (docs/design.md
§1, "Ground truth"). Pure numpy, no Ray, no models: the model evaluations of the deletion/insertion curves are
made by the caller on the coalitions built here (:func:`curve_coalitions`).

Maps are ``[N, G²]`` (row-major cells, raw or unit-norm: every score here is scale-free); a region is given
per image as its *cell coverage* ``[N, G²]``, the share of each cell's pixels inside it
(:func:`cell_coverage`), with the same pixel-to-cell map as the Shapley game (:func:`fst_ray.shapley.game.cell_index`).

- :func:`mass_share`: the share of a map's positive mass inside the region (a cell partly inside counts in
  proportion to its pixels inside, as if its value were spread evenly over them); with a map that ignores the
  region it equals the region's area share (:func:`area_share`), which is its chance level.
- :func:`pointing`: the share of the top-k cells that lie inside the region (coverage ≥ ½); chance is the share
  of such cells among all.
- deletion / insertion: the explained value as cells are removed from the image (deletion) or added to the
  baseline (insertion) in the map's order, most positive first, against a random order; a faithful map's
  deletion curve falls faster (smaller area) and its insertion curve rises faster (larger area).
- :func:`face_region`: where the face is in an aligned crop, from the alignment template: φ_s and φ_t's mass on
  the face against the scene measures the target encoder's scene shortcut.
"""

from __future__ import annotations

import numpy as np

__all__ = ["cell_coverage", "area_share", "mass_share", "pointing", "pointing_chance", "curve_coalitions",
           "curve_area", "random_order", "map_order", "face_ellipse", "face_region", "INSIDE", "CURVE_STEPS"]

INSIDE = 0.5  # a cell is inside a region when at least half of its pixels are
CURVE_STEPS = 8  # points of a deletion/insertion curve after its start (or every cell, when fewer)


def _cells(size: int, grid: int) -> np.ndarray:
    """The grid row (or column) of each of ``size`` pixel rows, as the game cuts them."""
    return np.arange(size) * grid // size


def cell_coverage(mask: np.ndarray, grid: int) -> np.ndarray:
    """``[G²]`` share of each cell's pixels inside ``mask`` (``[S, S]``, bool or uint8 with 255 = inside;
    ``[N, S, S]`` gives ``[N, G²]``)."""
    m = np.asarray(mask)
    m = (m > 127) if m.dtype == np.uint8 else m.astype(bool)
    rows, cols = _cells(m.shape[-2], grid), _cells(m.shape[-1], grid)
    onehot_r = np.eye(grid)[rows]  # [S, G]
    onehot_c = np.eye(grid)[cols]
    counts = np.einsum("...hw,hi,wj->...ij", m.astype(np.float64), onehot_r, onehot_c)
    area = np.outer(onehot_r.sum(0), onehot_c.sum(0))
    return (counts / area).reshape(*m.shape[:-2], grid * grid)


def area_share(coverage: np.ndarray) -> np.ndarray:
    """``[N]`` the region's share of the image (the chance level of :func:`mass_share`)."""
    return np.atleast_2d(coverage).mean(axis=1)


def mass_share(phi: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """``[N]`` share of each map's positive mass Σ relu(φ) that lies inside the region (NaN where a map has
    no positive value)."""
    pos = np.maximum(np.atleast_2d(phi), 0.0)
    total = pos.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (pos * np.atleast_2d(coverage)).sum(axis=1) / total, np.nan)


def pointing(phi: np.ndarray, coverage: np.ndarray, k: int = 1) -> np.ndarray:
    """``[N]`` share of each map's ``k`` highest cells that lie inside the region (coverage ≥ :data:`INSIDE`);
    NaN for an image whose region has no such cell (nothing to point at)."""
    phi, inside = np.atleast_2d(phi), np.atleast_2d(coverage) >= INSIDE
    top = np.argsort(-phi, axis=1, kind="stable")[:, :k]
    hits = np.take_along_axis(inside, top, axis=1).mean(axis=1)
    return np.where(inside.any(axis=1), hits, np.nan)


def pointing_chance(coverage: np.ndarray) -> np.ndarray:
    """``[N]`` the pointing score of a random order: the share of cells inside the region."""
    inside = np.atleast_2d(coverage) >= INSIDE
    return np.where(inside.any(axis=1), inside.mean(axis=1), np.nan)


def random_order(n: int, seed) -> np.ndarray:
    """A seeded random order of ``n`` cells (the reference order of the curves)."""
    return np.random.default_rng(seed).permutation(n)


def map_order(phi: np.ndarray) -> np.ndarray:
    """Cells by decreasing φ (ties by cell index)."""
    return np.argsort(-np.asarray(phi), kind="stable")


def curve_coalitions(order: np.ndarray, kind: str, steps: int = CURVE_STEPS) -> np.ndarray:
    """``bool [P, n]`` coalitions (True = the cell shows the image) of a deletion or insertion curve along
    ``order`` (cells, first = most important): point p has removed (deletion) or added (insertion) the first
    ``round(p·n/(P−1))`` cells, P = min(steps, n) + 1. Point 0 is the whole image (deletion) or the baseline
    alone (insertion); the last point is the other."""
    order = np.asarray(order)
    n = len(order)
    counts = np.round(np.linspace(0, n, min(steps, n) + 1)).astype(int)
    rank = np.empty(n, dtype=int)
    rank[order] = np.arange(n)
    changed = rank[None, :] < counts[:, None]  # [P, n]: the cell is among the first `count` of the order
    if kind == "deletion":
        return ~changed
    if kind == "insertion":
        return changed
    raise ValueError(f"unknown curve {kind!r}: deletion or insertion")


def curve_area(values: np.ndarray) -> np.ndarray:
    """Area under curves ``[..., P]`` whose points are evenly spaced over the share of cells 0..1 (trapezoid):
    the mean explained value along the curve, in the game's value units."""
    v = np.asarray(values, dtype=np.float64)
    return (v[..., 1:] + v[..., :-1]).sum(axis=-1) / (2 * (v.shape[-1] - 1))


def face_ellipse(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The face (forehead to chin, cheek to cheek) as an ellipse ``(centre [2], semi-axes [2], axes [2, 2])``
    from 5 landmarks ``[5, 2]`` (eyes, nose, mouth corners; :data:`fst_ray.ffpp.LANDMARK_NAMES`).

    With e the eyes' midpoint, m the mouth's, d the distance between the eyes and h = |m − e|: centre
    e + 0.25 (m − e), semi-axes 1.2 d across and 1.45 h along the eye-to-mouth axis. These are human face
    proportions (face width ≈ 2.2 × the distance between the pupils, eyes about two fifths of the way down
    from the hairline to the chin), which the synthetic renderer's mean face also follows (its face ellipse
    has semi-axes 1.29 d and 1.48 h about e + 0.24 (m − e))."""
    p = np.asarray(points, dtype=np.float64)
    e, m = (p[0] + p[1]) / 2, (p[3] + p[4]) / 2
    down = m - e
    h = float(np.hypot(*down))
    d = float(np.hypot(*(p[1] - p[0])))
    v = down / h
    u = np.array([v[1], -v[0]])
    return e + 0.25 * down, np.array([1.2 * d, 1.45 * h]), np.stack([u, v])


def face_region(points: np.ndarray, size: int) -> np.ndarray:
    """``bool [S, S]``: the pixels of an ``S x S`` crop inside :func:`face_ellipse` of ``points`` (for an aligned
    crop: the template's points, :func:`fst_ray.data.align.template`)."""
    centre, radii, axes = face_ellipse(points)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    rel = np.stack([x - centre[0], y - centre[1]], axis=-1)
    a, b = rel @ axes[0], rel @ axes[1]
    return (a / radii[0]) ** 2 + (b / radii[1]) ** 2 <= 1.0

"""Planted artifacts: fakes whose only evidence is one artifact put where and how the config says, so that
the answer to a hypothesis follows from how the corpus is built (``bench/known_answers.py``). Pure numpy.

With ``synthetic.plant`` set, every fake is made as its method makes it (a swap draws the target's face
interior with the source's expression, a reenactment the source's face with the target's expression) but
*clean*: the re-rendered face goes through the source video's capture (optics and a fresh draw of the same
sensor noise), is colour-matched to the source frame and blended with a feathered edge, so nothing of the
method's own artifacts (:mod:`fst_ray.synth.methods`) tells it from the original. Then the planted artifact
is added, in one region (:data:`REGIONS`), with one pattern (:data:`PATTERNS`):

- regions: ``seam``, a ring ``width`` px either side of the blend boundary (face rim and jaw: neither the
  scene the source encoder reads nor the face features the target encoder reads); ``features``, the eyes
  and nose of the face drawn (in a swap: the target's identity); ``frame``, every pixel (no cell holds more
  of it than another); ``patch``, a disc at a place drawn per video independently of the face (uniform over the
  aligned face crop of fst-ray's default alignment, :func:`patch_spot`): a null for where the evidence lies, since
  its cells are as likely to be any as any other whatever the face shows.
- patterns: ``fine``, diagonal stripes of period 4 px and amplitude ``strength`` (H.264 at c40 removes them;
  the face alignment's resampling keeps about two thirds of their amplitude, where it keeps a third of a
  period-2 checkerboard's); ``coarse``, a colour cast of ``strength`` that varies smoothly over the region (it
  survives c40; inside a small region such as the features it can only be told from a person's own colours at
  the region's edge); ``blotches``, a sinusoidal grid of period ``blotch`` px and amplitude ``strength`` (a
  pattern no face or scene has, that H.264 at c40 keeps about two thirds of).

What is left besides the plant (stated so that it can be checked): the feathered blend mixes two noise draws,
so the noise in the feather band is a little weaker; a swap puts another person's face shape in the frame.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field
from scipy import ndimage

from fst_ray.config import StrictModel
from fst_ray.data.align import similarity, template
from fst_ray.synth.capture import Capture, optics, sensor
from fst_ray.synth.methods import SPECS, manipulated_face
from fst_ray.synth.render import Canvas, Identity, Scene, ellipse, eye_u, landmarks, nose_v, pose_at, region_alpha

__all__ = ["REGIONS", "PATTERNS", "Plant", "patch_spot", "plant_region", "plant_pattern", "clean_blend",
           "planted_fake_frame"]

REGIONS = ("seam", "features", "frame", "patch")
PATTERNS = ("fine", "coarse", "blotches")
_COAST = np.array([1.0, -0.6, 0.4])  # the coarse cast's colour direction (red up, green down)


class Plant(StrictModel):
    """One planted artifact (sizes in pixels of a 128 px frame, scaled with the frame's side)."""

    region: Literal[REGIONS] = Field(description="where: seam (ring at the blend edge), features (eyes, nose), "
                                                 "frame (everywhere), patch (a disc placed at random per video)")
    pattern: Literal[PATTERNS] = Field(description="fine (period-4 stripes, gone at c40), coarse (smooth colour "
                                                   "cast, survives c40) or blotches (a coarse grid, survives c40)")
    blotch: float = Field(24.0, ge=8, le=128, description="blotches: the grid's period")
    strength: float = Field(0.08, gt=0, le=0.5, description="amplitude in intensity (0..1)")
    width: float = Field(3.0, gt=0, le=16, description="seam: the ring's half-width")
    feather: float = Field(2.0, ge=0, le=16, description="Gaussian σ of the clean blend's edge")
    patch: float = Field(0.1, gt=0, le=0.25, description="patch: the disc's radius, a fraction of the aligned face "
                                                         "crop's side")


def _scaled(px: float, size: int) -> float:
    return px * size / 128


def patch_spot(plant: Plant, rng: np.random.Generator) -> tuple[float, float]:
    """A video's ``patch`` centre ``(x, y)`` in fractions of the aligned crop, uniform over the part of the crop
    that holds the whole disc; drawn from ``rng`` alone, so independent of the face and the scene."""
    lo, hi = plant.patch, 1.0 - plant.patch
    x, y = rng.uniform(lo, hi, size=2)
    return float(x), float(y)


def plant_region(plant: Plant, canvas: Canvas, scene: Scene, face: Identity, t: int, region: str,
                 expr: dict[str, float] | None, spot: tuple[float, float] | None = None) -> np.ndarray:
    """Coverage ``[S, S]`` in 0..1 of the plant in frame ``t``; ``region``/``expr``: the method's region
    (``inner``, ``mouth``) and the expression drawn, whose blend edge the ``seam`` follows; ``spot``: the
    ``patch``'s centre (:func:`patch_spot`), which follows the face's landmarks from frame to frame."""
    S = canvas.size
    if plant.region == "frame":
        return np.ones((S, S), np.float32)
    if plant.region == "patch":
        if spot is None:
            raise ValueError("a patch plant needs its spot (patch_spot)")
        lm, _ = landmarks(face, expr or scene.expression.at(t), pose_at(scene, t))
        to_frame = similarity(template(1), lm)  # the unit crop's points -> this frame's pixels
        cx, cy = to_frame @ np.array([spot[0], spot[1], 1.0])
        r = plant.patch * np.sqrt(abs(np.linalg.det(to_frame[:, :2])))
        return (((canvas.x - cx) ** 2 + (canvas.y - cy) ** 2) <= r * r).astype(np.float32)
    if plant.region == "seam":
        hard = region_alpha(canvas, scene, face, t, region, expr=expr) > 0.5
        w = max(int(round(_scaled(plant.width, S))), 1)
        ring = ndimage.binary_dilation(hard, iterations=w) & ~ndimage.binary_erosion(hard, iterations=w)
        return ring.astype(np.float32)
    cx, cy, scale, roll, yaw = pose_at(scene, t)
    u, v = canvas.face_coords(cx, cy, scale, roll)
    eyes = [ellipse(u, v, eye_u(face, side, yaw), face.eye_v, face.eye_rx * 1.5, face.eye_ry * 2.2, scale)
            for side in (-1, 1)]
    nose = ellipse(u, v, 1.15 * (0.22 * yaw), nose_v(face), face.nose_w * 1.1, face.nose_len * 0.75, scale)
    return np.maximum.reduce([*eyes, nose]).astype(np.float32)


def plant_pattern(plant: Plant, size: int) -> np.ndarray:
    """The additive pattern ``[S, S, 3]`` before its region's coverage."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    if plant.pattern == "fine":  # diagonal stripes, period 4 px
        return (plant.strength * np.sin(np.pi * (xx + yy) / 2)[..., None] * np.ones(3, np.float32)).astype(np.float32)
    if plant.pattern == "blotches":
        period = _scaled(plant.blotch, size)
        grid = np.sin(2 * np.pi * xx / period) * np.sin(2 * np.pi * yy / period)
        return (plant.strength * grid[..., None] * np.ones(3, np.float32)).astype(np.float32)
    wave = 0.75 + 0.25 * np.cos(2 * np.pi * (xx + yy) / size)  # smooth: no edge inside the region
    return (plant.strength * wave[..., None] * _COAST).astype(np.float32)


def clean_blend(manipulated: np.ndarray, source_frame: np.ndarray, hard: np.ndarray, plant: Plant,
                capture: Capture, noise_sigma: float, rng: np.random.Generator) -> np.ndarray:
    """The clean fake ``[S, S, 3]``: ``manipulated`` (rendered, noiseless) through ``capture``, colour-matched
    to ``source_frame`` inside ``hard`` (the method's region) and feather-blended into it."""
    face = sensor(optics(manipulated, capture), capture, noise_sigma, rng)
    w = hard[..., None]
    total = max(float(hard.sum()), 1e-6)
    face = face + ((source_frame * w).sum((0, 1)) - (face * w).sum((0, 1))) / total
    sigma = _scaled(plant.feather, source_frame.shape[0])
    alpha = (np.clip((ndimage.gaussian_filter(hard, sigma) - 0.5) * 2.0, 0.0, 1.0) * hard if sigma else hard)
    a3 = alpha[..., None]
    return (source_frame * (1 - a3) + face * a3).astype(np.float32)


def planted_fake_frame(plant: Plant, method: str, canvas: Canvas, scene_a: Scene, scene_b: Scene, id_a: Identity,
                       id_b: Identity, t: int, source_frame: np.ndarray, capture: Capture,
                       rng: np.random.Generator,
                       spot: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``t`` of fake ``A_B`` made clean by ``method`` plus the plant: ``(frame, coverage)``, float32
    ``[S, S, 3]`` in 0..1 and ``[S, S]``. ``source_frame``: A's original frame ``t``; ``capture``: A's;
    ``rng``: the fresh sensor noise; ``spot``: the video's ``patch`` centre."""
    manipulated, face_id, expr = manipulated_face(method, canvas, scene_a, scene_b, id_a, id_b, t, relight=False)
    region = SPECS[method].region
    hard = region_alpha(canvas, scene_a, face_id, t, region, expr=expr)
    fake = clean_blend(manipulated, source_frame, hard, plant, capture, scene_a.noise_sigma, rng)
    cover = plant_region(plant, canvas, scene_a, face_id, t, region, expr, spot)
    return np.clip(fake + cover[..., None] * plant_pattern(plant, canvas.size), 0.0, 1.0), cover

"""The five FF++ manipulation methods, each with its own physically motivated artifacts. Pure numpy/scipy.

A fake ``A_B`` keeps A's scene, pose and motion (its frames are A's noisy original frames outside the
manipulated region) and takes from B what its method takes:

- face swaps (Deepfakes, FaceSwap, FaceShifter) draw B's face interior (identity) with A's expression;
- reenactments (Face2Face, NeuralTextures) keep A's identity and draw B's expression (Face2Face: the
  whole inner face, eyes and mouth; NeuralTextures: the mouth region only).

The manipulated face is then degraded as the method would and blended into A's frame. Artifacts, each
with a strength drawn per video (ranges in :data:`ARTIFACT_RANGES`):

- **Deepfakes** — an autoencoder decoding at low resolution: the face is rendered at 1/``down`` scale and
  upsampled (blur, no sensor noise inside the face); a partial colour transfer toward A's skin leaves a
  colour mismatch (``colour``: share of the mean-colour gap removed); a feathered blend (``feather`` px,
  Gaussian σ) whose mask jitters per frame (``jitter``), so the seam flickers.
- **FaceSwap** — graphics-based: B's face as lit in B's own video (lighting inconsistency), weak colour
  correction, a landmark-fitting misalignment (``shift`` px) and an almost hard blend edge: a visible
  seam with a double contour.
- **FaceShifter** — a high-fidelity GAN: mild blur (half resolution), near-complete colour matching, a
  wide feather, and a faint checkerboard from transposed-convolution upsampling (``checker``, amplitude).
- **Face2Face** — a re-rendered 3-D face model carrying B's expression: smoothed texture (half
  resolution, no sensor noise) and a smooth geometric warp of the texture (``warp`` px).
- **NeuralTextures** — a neural renderer re-draws the mouth with B's mouth motion: blur and a periodic
  grid texture in the re-rendered mouth (``grid``, amplitude; period 4 px).

No artifact touches pixels outside the method's region, and none shifts the colour of the whole frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from fst_ray.synth.capture import Capture, optics
from fst_ray.synth.render import Canvas, Identity, Scene, region_alpha, render_frame

ARTIFACT_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "Deepfakes": {"down": (3.0, 5.0), "colour": (0.2, 0.7), "feather": (1.5, 3.0), "jitter": (0.01, 0.03)},
    "FaceSwap": {"colour": (0.0, 0.5), "shift": (0.6, 1.8), "feather": (0.4, 0.9)},
    "FaceShifter": {"colour": (0.75, 1.0), "feather": (2.5, 4.5), "checker": (0.006, 0.018)},
    "Face2Face": {"warp": (0.6, 1.6), "feather": (1.5, 2.5)},
    "NeuralTextures": {"grid": (0.012, 0.035), "feather": (1.0, 2.0)},
}


@dataclass(frozen=True)
class MethodSpec:
    kind: str  # "swap" or "reenact"
    region: str  # "inner" or "mouth"


SPECS = {
    "Deepfakes": MethodSpec("swap", "inner"),
    "FaceSwap": MethodSpec("swap", "inner"),
    "FaceShifter": MethodSpec("swap", "inner"),
    "Face2Face": MethodSpec("reenact", "inner"),
    "NeuralTextures": MethodSpec("reenact", "mouth"),
}


def sample_artifacts(method: str, rng: np.random.Generator) -> dict[str, float]:
    """Per-video artifact strengths, uniform in :data:`ARTIFACT_RANGES`; also a random warp phase."""
    params = {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in ARTIFACT_RANGES[method].items()}
    params["phase"] = float(rng.uniform(0, 2 * np.pi))
    params["angle"] = float(rng.uniform(0, 2 * np.pi))
    return params


def _lowres(img: np.ndarray, factor: float) -> np.ndarray:
    """Render-at-low-resolution blur: area-downsample by ``factor``, bilinear upsample back."""
    h, w = img.shape[:2]
    small = (max(int(round(w / factor)), 1), max(int(round(h / factor)), 1))
    out = np.empty_like(img)
    for c in range(img.shape[2]):
        channel = Image.fromarray(np.ascontiguousarray(img[..., c], dtype=np.float32), mode="F")
        out[..., c] = np.asarray(channel.resize(small, Image.BOX).resize((w, h), Image.BILINEAR))
    return out


def _colour_transfer(face: np.ndarray, src: np.ndarray, alpha: np.ndarray, strength: float) -> np.ndarray:
    """Move the face's mean colour inside ``alpha`` toward the source's by ``strength`` (0..1)."""
    w = alpha[..., None]
    total = max(float(w.sum()), 1e-6)
    gap = (src * w).sum((0, 1)) / total - (face * w).sum((0, 1)) / total
    return face + strength * gap


def _shift(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    return ndimage.shift(img, (dy, dx, 0), order=1, mode="nearest")


def _warp(img: np.ndarray, amplitude: float, phase: float) -> np.ndarray:
    """A smooth sinusoidal displacement field of ``amplitude`` pixels."""
    S = img.shape[0]
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32)
    k = 2 * np.pi / (S / 3)
    dy = amplitude * np.sin(k * xx + phase)
    dx = amplitude * np.cos(k * yy + phase * 0.7)
    coords = [yy + dy, xx + dx]
    return np.stack([ndimage.map_coordinates(img[..., c], coords, order=1, mode="nearest") for c in range(3)], -1)


def drawn(method: str, scene_a: Scene, scene_b: Scene, id_a: Identity, id_b: Identity,
          t: int) -> tuple[Identity, dict[str, float] | None]:
    """The face identity and the expression (``None``: A's own) that ``method`` draws in frame ``t`` of ``A_B``."""
    if SPECS[method].kind == "swap":
        return id_b, None
    expr = scene_a.expression.at(t)
    b_expr = scene_b.expression.at(t)
    if method == "Face2Face":
        expr = b_expr
    else:  # NeuralTextures: B's mouth motion only
        expr.update(mouth_open=b_expr["mouth_open"], smile=b_expr["smile"])
    return id_a, expr


def manipulated_face(method: str, canvas: Canvas, scene_a: Scene, scene_b: Scene, id_a: Identity, id_b: Identity,
                     t: int, relight: bool = True) -> tuple[np.ndarray, Identity, dict[str, float] | None]:
    """What ``method`` draws for frame ``t`` of fake ``A_B`` before blending: the rendered frame (float32
    ``[S, S, 3]``, noiseless, no capture) and :func:`drawn`'s identity and expression. ``relight``: FaceSwap's
    face keeps the light of B's video (its lighting artifact)."""
    face, expr = drawn(method, scene_a, scene_b, id_a, id_b, t)
    light = scene_b.light_angle if method == "FaceSwap" and relight else None
    return render_frame(canvas, scene_a, id_a, face, t, expr=expr, light_angle=light), face, expr


def make_fake_frame(method: str, canvas: Canvas, scene_a: Scene, scene_b: Scene, id_a: Identity,
                    id_b: Identity, t: int, source_frame: np.ndarray, params: dict[str, float],
                    rng: np.random.Generator, capture: Capture = Capture()) -> np.ndarray:
    """Frame ``t`` of fake ``A_B`` as float32 [S, S, 3] in [0, 1].

    ``source_frame`` is A's original frame ``t`` (as A's video holds it, capture included); ``params`` come
    from :func:`sample_artifacts`; ``rng`` drives the per-frame randomness (mask jitter); ``capture`` is A's
    (:mod:`fst_ray.synth.capture`): its optics (blur, exposure) apply to the re-rendered face before the
    method's artifacts, its sensor does not."""
    spec = SPECS[method]
    S = canvas.size
    manipulated, face_id, expr = manipulated_face(method, canvas, scene_a, scene_b, id_a, id_b, t)
    manipulated = optics(manipulated, capture)

    grow = 1.0 + (rng.uniform(-params["jitter"], params["jitter"]) if "jitter" in params else 0.0)
    hard = region_alpha(canvas, scene_a, face_id, t, spec.region, expr=expr, grow=grow)
    # feathering must stay inside the region: erode by the feather width first
    inner = ndimage.gaussian_filter(hard, params["feather"])
    alpha = np.clip((inner - 0.5) * 2.0, 0.0, 1.0) * hard

    if method == "Deepfakes":
        manipulated = _lowres(_colour_transfer(manipulated, source_frame, alpha, params["colour"]), params["down"])
    elif method == "FaceSwap":
        manipulated = _colour_transfer(manipulated, source_frame, alpha, params["colour"])
        a = params["angle"]
        manipulated = _shift(manipulated, params["shift"] * np.cos(a), params["shift"] * np.sin(a))
    elif method == "FaceShifter":
        manipulated = _lowres(_colour_transfer(manipulated, source_frame, alpha, params["colour"]), 2)
        yy, xx = np.mgrid[0:S, 0:S]
        manipulated = manipulated + params["checker"] * np.where((yy + xx) % 2 == 0, 1.0, -1.0)[..., None]
    elif method == "Face2Face":
        manipulated = _warp(_lowres(manipulated, 2), params["warp"], params["phase"])
    elif method == "NeuralTextures":
        yy, xx = np.mgrid[0:S, 0:S]
        grid = np.sin(np.pi * xx / 2) * np.sin(np.pi * yy / 2)  # period 4 px
        manipulated = _lowres(manipulated, 2) + params["grid"] * grid[..., None]
    else:
        raise ValueError(f"unknown method {method!r}")

    a3 = alpha[..., None]
    return np.clip(source_frame * (1 - a3) + manipulated * a3, 0.0, 1.0).astype(np.float32)

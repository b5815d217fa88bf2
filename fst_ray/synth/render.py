"""Procedural faces: identities, scenes, motion, and a frame renderer. Pure numpy.

What belongs to whom, as in the paper's FST view of a video:
- :class:`Identity` (the face interior): skin tone, face shape, eye spacing/shape/iris colour, brows,
  nose, mouth shape and lip colour, cheek blush, moles.
- :class:`Scene` (one original video): background, hair, clothing, lighting, sensor noise, the
  head-pose trajectory, and the expression trajectory (blinks, mouth motion, smile, brows, gaze).

Geometry is in *face units*: the face is an ellipse of semi-axes ``(face_rx, face_ry) ≈ (0.75, 1.0)``
centred at the origin, ``v`` pointing down; a pose maps face units to pixels (centre, scale in
pixels per face unit, roll in radians, yaw in [-1, 1] shifting the features sideways).
Colours are RGB floats in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# inner-face region (brows to chin) that face swaps and Face2Face replace, and NeuralTextures' mouth region
INNER_FACE = (0.0, 0.1, 0.64, 0.8)  # centre u, centre v, radius u, radius v (face units)
MOUTH_REGION_PAD = (0.16, 0.2)  # added to the mouth's half-width and lip radius


@dataclass(frozen=True)
class Identity:
    """The face interior of one person."""

    skin: np.ndarray
    face_rx: float
    face_ry: float
    eye_dx: float
    eye_v: float
    eye_rx: float
    eye_ry: float
    iris: np.ndarray
    brow: np.ndarray
    brow_thickness: float
    brow_tilt: float
    nose_len: float
    nose_w: float
    mouth_w: float
    mouth_v: float
    lips: np.ndarray
    lip_thickness: float
    blush: float
    marks: np.ndarray  # [k, 3]: u, v, radius


@dataclass(frozen=True)
class Scene:
    """Everything of one original video that is not the face interior, plus its motion over ``T`` frames."""

    bg_top: np.ndarray
    bg_bottom: np.ndarray
    bg_angle: float
    blobs: np.ndarray  # [k, 6]: x, y, r (fractions of frame), rgb
    hair: np.ndarray
    hair_volume: float
    fringe_v: float
    fringe_wave: float
    clothing: np.ndarray
    stripes: float
    light_angle: float
    light_strength: float
    noise_sigma: float
    # per-frame trajectories, each [T]
    cx: np.ndarray
    cy: np.ndarray
    scale: np.ndarray
    roll: np.ndarray
    yaw: np.ndarray
    expression: "Expression"


@dataclass(frozen=True)
class Expression:
    """Per-frame expression, each [T]: eye openness 0..1, mouth openness 0..1, smile -1..1,
    brow raise 0..1, gaze (u offset in eye radii)."""

    eye_open: np.ndarray
    mouth_open: np.ndarray
    smile: np.ndarray
    brow_raise: np.ndarray
    gaze: np.ndarray

    def at(self, t: int) -> dict[str, float]:
        return {k: float(getattr(self, k)[t]) for k in ("eye_open", "mouth_open", "smile", "brow_raise", "gaze")}


def sample_identity(rng: np.random.Generator) -> Identity:
    """Draw one person's face interior."""
    tone = rng.uniform(0.25, 0.95)  # from dark to light skin
    skin = np.array([0.45 + 0.5 * tone, 0.28 + 0.5 * tone, 0.18 + 0.45 * tone]) * rng.uniform(0.92, 1.05, 3)
    n_marks = rng.integers(0, 4)
    marks = np.column_stack([
        rng.uniform(-0.5, 0.5, n_marks), rng.uniform(-0.1, 0.75, n_marks), rng.uniform(0.025, 0.05, n_marks)])
    return Identity(
        skin=np.clip(skin, 0, 1),
        face_rx=rng.uniform(0.68, 0.82), face_ry=rng.uniform(0.95, 1.08),
        eye_dx=rng.uniform(0.24, 0.34), eye_v=rng.uniform(-0.22, -0.1),
        eye_rx=rng.uniform(0.1, 0.15), eye_ry=rng.uniform(0.045, 0.075),
        iris=rng.choice([[0.35, 0.2, 0.08], [0.15, 0.3, 0.55], [0.2, 0.45, 0.25], [0.1, 0.07, 0.05],
                         [0.5, 0.4, 0.2]]) * rng.uniform(0.8, 1.2),
        brow=skin * rng.uniform(0.15, 0.55), brow_thickness=rng.uniform(0.02, 0.045),
        brow_tilt=rng.uniform(-0.25, 0.25),
        nose_len=rng.uniform(0.16, 0.26), nose_w=rng.uniform(0.06, 0.11),
        mouth_w=rng.uniform(0.17, 0.27), mouth_v=rng.uniform(0.45, 0.58),
        lips=np.clip(np.array([0.75, 0.3, 0.32]) * rng.uniform(0.6, 1.1, 3), 0, 1),
        lip_thickness=rng.uniform(0.025, 0.05),
        blush=rng.uniform(0.0, 0.12),
        marks=marks,
    )


def _smooth_walk(rng: np.random.Generator, T: int, step: float, lo: float, hi: float) -> np.ndarray:
    """A smooth random trajectory in [lo, hi]: a reflected random walk, low-pass filtered."""
    x = np.cumsum(rng.normal(0, step, T + 8)) + rng.uniform(lo, hi)
    x = np.convolve(x, np.ones(5) / 5, mode="valid")[:T]
    span = hi - lo
    x = np.abs((x - lo) % (2 * span) - span)  # reflect into [0, span]
    return lo + (span - x)


def sample_expression(rng: np.random.Generator, T: int, fps: int) -> Expression:
    """Blinks every ~2–5 s, talking mouth motion, slow smile, brow and gaze changes."""
    eye_open = np.ones(T)
    t = rng.uniform(0, 3 * fps)
    while t < T:
        start = int(t)
        for k, v in enumerate((0.5, 0.05, 0.4)):  # a blink lasts three frames
            if start + k < T:
                eye_open[start + k] = v
        t += rng.uniform(2 * fps, 5 * fps)
    talk = np.clip(_smooth_walk(rng, T, 0.25, -0.4, 1.0), 0, 1)
    return Expression(
        eye_open=eye_open,
        mouth_open=talk,
        smile=_smooth_walk(rng, T, 0.05, -0.5, 1.0),
        brow_raise=_smooth_walk(rng, T, 0.06, 0.0, 1.0),
        gaze=_smooth_walk(rng, T, 0.08, -0.35, 0.35),
    )


def sample_scene(rng: np.random.Generator, T: int, size: int, fps: int) -> Scene:
    """Draw one original video's scene, pose trajectory and expression trajectory."""
    tt = np.arange(T) / fps

    def wave(amp: float, lo_f: float = 0.1, hi_f: float = 0.6) -> np.ndarray:
        return amp * np.sin(2 * np.pi * rng.uniform(lo_f, hi_f) * tt + rng.uniform(0, 2 * np.pi))

    n_blobs = rng.integers(2, 6)
    blobs = np.column_stack([rng.uniform(0, 1, n_blobs), rng.uniform(0, 0.8, n_blobs),
                             rng.uniform(0.08, 0.3, n_blobs), rng.uniform(0.05, 0.95, (n_blobs, 3))])
    hair_tone = rng.uniform(0.03, 0.8)
    hair = np.clip(np.array([hair_tone * 1.1, hair_tone * 0.8, hair_tone * 0.55]) * rng.uniform(0.8, 1.2, 3), 0, 1)
    base_scale = size * rng.uniform(0.26, 0.31)
    return Scene(
        bg_top=rng.uniform(0.05, 0.95, 3), bg_bottom=rng.uniform(0.05, 0.95, 3),
        bg_angle=rng.uniform(0, 2 * np.pi), blobs=blobs,
        hair=hair, hair_volume=rng.uniform(1.0, 1.35), fringe_v=rng.uniform(-0.75, -0.45),
        fringe_wave=rng.uniform(0.0, 0.08),
        clothing=rng.uniform(0.05, 0.95, 3), stripes=rng.choice([0.0, rng.uniform(8, 20)]),
        light_angle=rng.uniform(0, 2 * np.pi), light_strength=rng.uniform(0.0, 0.35),
        noise_sigma=rng.uniform(0.004, 0.03),
        cx=size * (0.5 + rng.uniform(-0.04, 0.04)) + size * wave(0.03),
        cy=size * (0.45 + rng.uniform(-0.03, 0.03)) + size * wave(0.02),
        scale=base_scale * (1 + wave(0.04, 0.05, 0.3)),
        roll=rng.uniform(-0.12, 0.12) + wave(0.08),
        yaw=rng.uniform(-0.25, 0.25) + wave(0.12),
        expression=sample_expression(rng, T, fps),
    )


class Canvas:
    """Pixel grid of one frame size, and soft (anti-aliased) shape masks in face units."""

    def __init__(self, size: int):
        self.size = size
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
        self.x, self.y = xx, yy

    def face_coords(self, cx: float, cy: float, scale: float, roll: float) -> tuple[np.ndarray, np.ndarray]:
        """Face-unit coordinates ``(u, v)`` of every pixel for a pose."""
        dx, dy = self.x - cx, self.y - cy
        c, s = np.cos(roll), np.sin(roll)
        return (dx * c + dy * s) / scale, (-dx * s + dy * c) / scale

    def window(self, pose: tuple, cu: float, cv: float, radius: float) -> tuple[slice, slice]:
        """Pixel window (rows, cols) holding the disc of ``radius`` face units around ``(cu, cv)``."""
        cx, cy, scale, roll, _ = pose
        c, s = np.cos(roll), np.sin(roll)
        px, py = cx + scale * (cu * c - cv * s), cy + scale * (cu * s + cv * c)
        r = radius * scale + 2
        clip = lambda a: int(min(max(a, 0), self.size))  # noqa: E731
        return slice(clip(py - r), clip(py + r + 1)), slice(clip(px - r), clip(px + r + 1))


def ellipse(u: np.ndarray, v: np.ndarray, cu: float, cv: float, ru: float, rv: float, scale: float,
            angle: float = 0.0, soft_px: float = 1.0) -> np.ndarray:
    """Soft coverage in [0, 1] of an ellipse in face units; the edge ramps over ``soft_px`` pixels."""
    du, dv = u - cu, v - cv
    if angle:
        c, s = np.cos(angle), np.sin(angle)
        du, dv = du * c + dv * s, -du * s + dv * c
    q = np.sqrt((du / ru) ** 2 + (dv / rv) ** 2)
    dist_px = (q - 1.0) * min(ru, rv) * scale
    return np.clip(0.5 - dist_px / soft_px, 0.0, 1.0)


def _paint(img: np.ndarray, alpha: np.ndarray, colour) -> None:
    a = alpha[..., None]
    img *= 1 - a
    img += a * np.asarray(colour, dtype=np.float32)


def pose_at(scene: Scene, t: int) -> tuple[float, float, float, float, float]:
    return float(scene.cx[t]), float(scene.cy[t]), float(scene.scale[t]), float(scene.roll[t]), float(scene.yaw[t])


def eye_u(face: Identity, side: int, yaw: float) -> float:
    """Face-unit ``u`` of the eye on ``side`` (-1: image-left, 1: image-right) at head yaw ``yaw``."""
    return side * face.eye_dx + 0.22 * yaw


def nose_v(face: Identity) -> float:
    """Face-unit ``v`` of the nose's centre (its shadow)."""
    return face.eye_v + face.nose_len * 0.5 + 0.06


def landmarks(face: Identity, expr: dict[str, float], pose: tuple) -> tuple[np.ndarray, np.ndarray]:
    """The 5 landmarks ``[5, 2]`` (image-left eye, image-right eye, nose tip, mouth corners) and the face
    box ``[4]`` (x0, y0, x1, y1) in pixels, for a face drawn with this identity, expression and pose."""
    cx, cy, scale, roll, yaw = pose
    shift = 0.22 * yaw
    half_mouth = face.mouth_w * (1 + 0.15 * expr["smile"])
    pts = np.array([
        [-face.eye_dx + shift, face.eye_v], [face.eye_dx + shift, face.eye_v],
        [1.3 * shift, face.eye_v + face.nose_len + 0.12],
        [-half_mouth + shift, face.mouth_v], [half_mouth + shift, face.mouth_v],
    ])
    c, s = np.cos(roll), np.sin(roll)
    xy = np.column_stack([cx + scale * (pts[:, 0] * c - pts[:, 1] * s), cy + scale * (pts[:, 0] * s + pts[:, 1] * c)])
    hw = scale * np.hypot(face.face_rx * c, face.face_ry * s)
    hh = scale * np.hypot(face.face_rx * s, face.face_ry * c)
    return xy.astype(np.float32), np.array([cx - hw, cy - hh, cx + hw, cy + hh], dtype=np.float32)


def render_frame(canvas: Canvas, scene: Scene, body: Identity, face: Identity, t: int,
                 expr: dict[str, float] | None = None, light_angle: float | None = None) -> np.ndarray:
    """Render frame ``t`` of ``scene`` without sensor noise, float32 [S, S, 3] in [0, 1].

    ``body`` gives the skin outside the face (neck, ears); ``face`` the face interior (they differ in
    face swaps). ``expr`` overrides the scene's expression at ``t`` (reenactment); ``light_angle``
    overrides the scene's light direction (a face lit as in another video)."""
    S = canvas.size
    cx, cy, scale, roll, yaw = pose_at(scene, t)
    expr = expr or scene.expression.at(t)
    u, v = canvas.face_coords(cx, cy, scale, roll)
    img = np.empty((S, S, 3), dtype=np.float32)

    # background: a tilted two-colour gradient and soft blobs (furniture, windows)
    g = (canvas.x * np.cos(scene.bg_angle) + canvas.y * np.sin(scene.bg_angle)) / S
    g = (g - g.min()) / max(float(np.ptp(g)), 1e-6)
    img[:] = scene.bg_top * (1 - g[..., None]) + scene.bg_bottom * g[..., None]
    for bx, by, br, *rgb in scene.blobs:
        rows = slice(max(int((by - br) * S), 0), max(int((by + br) * S) + 2, 0))
        cols = slice(max(int((bx - br) * S), 0), max(int((bx + br) * S) + 2, 0))
        q = np.hypot(canvas.x[rows, cols] / S - bx, canvas.y[rows, cols] / S - by) / br
        _paint(img[rows, cols], np.clip((1 - q) * 4, 0, 1) * 0.8, rgb)

    # clothing, neck, hair behind the head, ears
    shirt = ellipse(u, v, 0.0, 2.35, 1.7, 1.05, scale, soft_px=1.5)
    shirt_rgb = np.asarray(scene.clothing, np.float32)
    if scene.stripes:
        shirt_rgb = shirt_rgb * (0.82 + 0.18 * (np.sin(u * scene.stripes) > 0))[..., None]
    _paint(img, shirt, shirt_rgb)
    _paint(img, ellipse(u, v, 0.0, 1.0, 0.32, 0.55, scale), body.skin * 0.88)
    hair_back = ellipse(u, v, 0.0, -0.18, face.face_rx * 1.12 * scene.hair_volume, face.face_ry * 1.02, scale)
    _paint(img, hair_back, scene.hair)
    for side in (-1, 1):
        _paint(img, ellipse(u, v, side * face.face_rx * 0.98, 0.05, 0.11, 0.19, scale), body.skin * 0.95)

    # the face: skin with 3-D-looking shading toward the rim
    q = np.sqrt((u / face.face_rx) ** 2 + (v / face.face_ry) ** 2)
    face_a = ellipse(u, v, 0.0, 0.0, face.face_rx, face.face_ry, scale)
    shade = (1.0 - 0.18 * np.clip(q, 0, 1) ** 2)[..., None]
    a = face_a[..., None]
    img *= 1 - a
    img += a * face.skin * shade
    shift = 0.22 * yaw
    pose = (cx, cy, scale, roll, yaw)

    def at(cu: float, cv: float, radius: float):  # small features are drawn inside their own window
        w = canvas.window(pose, cu, cv, radius)
        return img[w], u[w], v[w]

    for side in (-1, 1):
        im, uu, vv = at(side * 0.4 + shift, 0.28, 0.3)
        _paint(im, ellipse(uu, vv, side * 0.4 + shift, 0.28, 0.16, 0.1, scale, soft_px=4.0) * face.blush * 4,
               np.array([0.85, 0.35, 0.35]))
    for mu, mv, mr in face.marks:
        im, uu, vv = at(mu + shift, mv, mr * 1.5)
        _paint(im, ellipse(uu, vv, mu + shift, mv, mr, mr, scale) * 0.85, face.skin * 0.35)

    # eyes, with blinks and gaze, and brows
    for side in (-1, 1):
        eu = eye_u(face, side, yaw)
        im, uu, vv = at(eu, face.eye_v - 0.08, face.eye_rx * 1.4 + 0.12)
        white = ellipse(uu, vv, eu, face.eye_v, face.eye_rx, face.eye_ry * max(expr["eye_open"], 0.05), scale)
        _paint(im, white, np.array([0.94, 0.93, 0.9]))
        iu = eu + expr["gaze"] * face.eye_rx * 0.5
        _paint(im, white * ellipse(uu, vv, iu, face.eye_v, face.eye_ry * 0.95, face.eye_ry * 0.95, scale), face.iris)
        _paint(im, white * ellipse(uu, vv, iu, face.eye_v, face.eye_ry * 0.42, face.eye_ry * 0.42, scale),
               np.array([0.03, 0.03, 0.03]))
        bv = face.eye_v - face.eye_ry - 0.09 - 0.05 * expr["brow_raise"]
        _paint(im, ellipse(uu, vv, eu, bv, face.eye_rx * 1.3, face.brow_thickness, scale,
                           angle=side * face.brow_tilt), face.brow)

    # nose: a soft shadow and nostrils
    nv = nose_v(face)
    im, uu, vv = at(1.15 * shift, nv + 0.05, face.nose_len * 0.6 + 0.12)
    _paint(im, ellipse(uu, vv, 1.15 * shift + 0.03, nv, face.nose_w * 0.6, face.nose_len * 0.55, scale,
                       soft_px=3.0) * 0.5, face.skin * 0.7)
    for side in (-1, 1):
        _paint(im, ellipse(uu, vv, 1.3 * shift + side * face.nose_w * 0.55, face.eye_v + face.nose_len + 0.12,
                           0.03, 0.018, scale), face.skin * 0.35)

    # mouth: lips and, when open, the dark inside
    half = face.mouth_w * (1 + 0.15 * expr["smile"])
    lips_rv = face.lip_thickness + 0.07 * expr["mouth_open"]
    im, uu, vv = at(shift, face.mouth_v, half + 0.05)
    _paint(im, ellipse(uu, vv, shift, face.mouth_v - 0.01 * expr["smile"], half, lips_rv, scale), face.lips)
    if expr["mouth_open"] > 0.05:
        _paint(im, ellipse(uu, vv, shift, face.mouth_v, half * 0.78, 0.065 * expr["mouth_open"], scale),
               np.array([0.25, 0.07, 0.08]))

    # fringe over the forehead: hair in front of the face
    fringe = hair_back * ellipse(u, v, 0.0, -0.25, face.face_rx * 1.05, face.face_ry * 1.0, scale)
    edge = scene.fringe_v + scene.fringe_wave * np.sin(u * 18)
    _paint(img, fringe * np.clip((edge - v) * scale, 0, 1), scene.hair * 0.95)

    # scene lighting: a directional ramp over the whole frame
    angle = scene.light_angle if light_angle is None else light_angle
    ramp = ((canvas.x - S / 2) * np.cos(angle) + (canvas.y - S / 2) * np.sin(angle)) / S
    if light_angle is None:
        img *= (1 + scene.light_strength * ramp)[..., None]
    else:  # relight only the face, as a face cut from a differently lit video would be
        img *= (1 + 0.35 * ramp * face_a)[..., None]
        img *= (1 + scene.light_strength * ramp * (1 - face_a))[..., None]
    return np.clip(img, 0.0, 1.0)


def region_alpha(canvas: Canvas, scene: Scene, face: Identity, t: int, region: str,
                 expr: dict[str, float] | None = None, grow: float = 1.0) -> np.ndarray:
    """Hard-edged coverage [S, S] of the region a method replaces: ``inner`` (brows to chin) or
    ``mouth``; ``grow`` scales it (per-frame mask jitter)."""
    cx, cy, scale, roll, yaw = pose_at(scene, t)
    u, v = canvas.face_coords(cx, cy, scale, roll)
    if region == "inner":
        cu, cv, ru, rv = INNER_FACE
        return ellipse(u, v, cu + 0.22 * yaw * 0.5, cv, ru * face.face_rx / 0.75 * grow, rv * grow, scale)
    expr = expr or scene.expression.at(t)
    half = face.mouth_w * (1 + 0.15 * expr["smile"])
    rv = face.lip_thickness + 0.07 * expr["mouth_open"]
    return ellipse(u, v, 0.22 * yaw, face.mouth_v, (half + MOUTH_REGION_PAD[0]) * grow,
                   (rv + MOUTH_REGION_PAD[1]) * grow, scale)

"""How each original video was captured: the spread of sharpness, noise and brightness that real footage has.

Real originals are not all sharp and noisy: a camera may be out of focus, the subject may move during the
exposure, a room may be dark (little light: a high gain, a dark and noisy image), and phones denoise their
video (smooth skin, no grain). Without that spread the one thing that separates every synthetic original
from every fake is that fakes are smoother, and a detector learns "smooth = fake" (it then calls any removed,
blurred or flat region fake). Each original draws one capture (:data:`CAPTURES`, strengths uniform in
:data:`CAPTURE_RANGES`, pixel sizes for a 128 px frame and scaled with the frame):

- ``sharp``: in focus, sensor noise only (the scene's own ``noise_sigma``);
- ``defocus``: a Gaussian lens blur of ``blur`` px;
- ``motion``: a linear motion blur ``length`` px long at ``angle``;
- ``low_light``: the scene's light times ``exposure`` and its noise times ``gain``;
- ``denoised``: sensor noise then a phone's denoiser (a Gaussian of ``denoise`` px).

What the lens and the light do (:func:`optics`: blur, exposure) applies to everything in front of the
camera, so also to a fake's re-rendered face (a face generator imitates its footage's look); what the
sensor and its processing do (:func:`sensor`: noise, denoising) applies to the recorded original only,
as the methods' faces were drawn after it (:mod:`fst_ray.synth.methods`). No capture touches a method's
planted artifacts, which are added to the manipulated face after :func:`optics`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

__all__ = ["CAPTURES", "CAPTURE_RANGES", "Capture", "sample_capture", "optics", "sensor"]

CAPTURES = ("sharp", "defocus", "motion", "low_light", "denoised")
CAPTURE_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "sharp": {},
    "defocus": {"blur": (0.8, 2.0)},
    "motion": {"length": (3.0, 7.0), "angle": (0.0, np.pi)},
    "low_light": {"exposure": (0.35, 0.6), "gain": (2.0, 4.0)},
    "denoised": {"denoise": (0.8, 1.6)},
}
_PIXEL_SIZES = ("blur", "length", "denoise")  # drawn for a 128 px frame, scaled with the frame's side


@dataclass(frozen=True)
class Capture:
    """One video's capture: its kind and strengths (0 / 1 where a kind has none); sizes in pixels."""

    kind: str = "sharp"
    blur: float = 0.0
    length: float = 0.0
    angle: float = 0.0
    exposure: float = 1.0
    gain: float = 1.0
    denoise: float = 0.0

    def as_dict(self) -> dict[str, float | str]:
        return asdict(self)


def sample_capture(kinds: list[str] | tuple[str, ...], size: int, rng: np.random.Generator) -> Capture:
    """One capture: a kind uniform over ``kinds``, its strengths uniform in :data:`CAPTURE_RANGES`."""
    kind = kinds[int(rng.integers(len(kinds)))]
    params = {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in CAPTURE_RANGES[kind].items()}
    for k in _PIXEL_SIZES:
        if k in params:
            params[k] *= size / 128
    return Capture(kind, **params)


def _motion_kernel(length: float, angle: float) -> np.ndarray:
    """A normalised line of ``length`` px at ``angle`` (radians), anti-aliased by sub-sampling."""
    r = int(np.ceil(length / 2))
    k = np.zeros((2 * r + 1, 2 * r + 1))
    for s in np.linspace(-length / 2, length / 2, 8 * r + 1):
        y, x = r + s * np.sin(angle), r + s * np.cos(angle)
        y0, x0 = int(np.floor(y)), int(np.floor(x))
        fy, fx = y - y0, x - x0
        for dy, dx, w in ((0, 0, (1 - fy) * (1 - fx)), (1, 0, fy * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 1, fy * fx)):
            if 0 <= y0 + dy <= 2 * r and 0 <= x0 + dx <= 2 * r:
                k[y0 + dy, x0 + dx] += w
    return k / k.sum()


def optics(img: np.ndarray, cap: Capture) -> np.ndarray:
    """The lens and the light: ``img`` float32 ``[S, S, 3]`` in 0..1 under the capture's blur and exposure."""
    if cap.kind == "defocus":
        img = ndimage.gaussian_filter(img, (cap.blur, cap.blur, 0), mode="nearest")
    elif cap.kind == "motion":
        k = _motion_kernel(cap.length, cap.angle)
        img = np.stack([ndimage.convolve(img[..., c], k, mode="nearest") for c in range(3)], -1)
    return (img * cap.exposure).astype(np.float32)


def sensor(img: np.ndarray, cap: Capture, noise_sigma: float, rng: np.random.Generator) -> np.ndarray:
    """The sensor and its processing: Gaussian noise of ``noise_sigma`` times the gain, then the denoiser."""
    img = img + rng.normal(0.0, noise_sigma * cap.gain, img.shape).astype(np.float32)
    if cap.kind == "denoised":
        img = ndimage.gaussian_filter(img, (cap.denoise, cap.denoise, 0), mode="nearest")
    return img.astype(np.float32)

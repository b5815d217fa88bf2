"""Training augmentations per role: pure, batched torch on the worker's device (GPU when present).

Input: ``uint8 [B, S, S, 3]`` RGB as stored in ``frames``; output: ``float [B, 3, size, size]`` in 0..1
(the models normalise inside). Policies (:data:`ROLE_AUGMENT`):

- ``source``/``target`` (identity encoders): who is in the picture survives mirroring, reframing and
  lighting changes, so: random resized crop (area 60-100 %), horizontal flip, brightness and contrast
  jitter (+-20 %). These teach the encoder identity, not pixels.
- ``det``/``fst`` (detectors): the evidence is local, high-frequency blending and compression
  artifacts, which resampling, blur or colour shifts would erase or fake. So: horizontal flip and a
  small integer translation (up to 1/16 of the side, reflect padding) only; no resampling beyond the
  fixed resize to ``size`` that evaluation applies too, no blur, no colour jitter. Robustness to
  compression comes from training on the c23/c40 frames themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

__all__ = ["AugmentPolicy", "ROLE_AUGMENT", "to_float", "resize", "augment"]


@dataclass(frozen=True)
class AugmentPolicy:
    """``crop_scale``: area range of a random resized crop (``None``: no crop); ``translate``: max shift as
    a fraction of the side; ``hflip``: flip half the images; ``brightness``/``contrast``: max relative
    jitter."""

    crop_scale: tuple[float, float] | None = None
    translate: float = 0.0
    hflip: bool = True
    brightness: float = 0.0
    contrast: float = 0.0


IDENTITY = AugmentPolicy(crop_scale=(0.6, 1.0), brightness=0.2, contrast=0.2)
ARTIFACT = AugmentPolicy(translate=1 / 16)
ROLE_AUGMENT = {"source": IDENTITY, "target": IDENTITY, "det": ARTIFACT, "fst": ARTIFACT}


def to_float(images: torch.Tensor) -> torch.Tensor:
    """``uint8 [B, H, W, 3]`` -> ``float [B, 3, H, W]`` in 0..1."""
    return images.permute(0, 3, 1, 2).float().div_(255)


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear (antialiased) resize of ``[B, 3, H, W]`` to ``size x size``; a no-op at that size already."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) * (hi - lo) + lo


def _resized_crop(x: torch.Tensor, scale: tuple[float, float], size: int, g: torch.Generator) -> torch.Tensor:
    b, _, h, w = x.shape
    area = _uniform(b, *scale, g, x.device) * h * w
    ratio = torch.exp(_uniform(b, -0.2877, 0.2877, g, x.device))  # aspect 3/4 .. 4/3
    cw = torch.sqrt(area * ratio).clamp(max=w)
    ch = torch.sqrt(area / ratio).clamp(max=h)
    x0 = torch.rand(b, generator=g, device=x.device) * (w - cw)
    y0 = torch.rand(b, generator=g, device=x.device) * (h - ch)
    boxes = torch.stack([torch.arange(b, device=x.device, dtype=x.dtype), x0, y0, x0 + cw, y0 + ch], 1)
    return roi_align(x, boxes.to(x.dtype), output_size=(size, size), spatial_scale=1.0, sampling_ratio=2,
                     aligned=True)


def _translate(x: torch.Tensor, frac: float, g: torch.Generator) -> torch.Tensor:
    b, _, h, w = x.shape
    pad = int(round(frac * min(h, w)))
    if pad == 0:
        return x
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=g, device=x.device)
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=g, device=x.device)
    return _shift(padded, dy, dx, h, w)


def _shift(padded: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Per-sample window ``padded[i, :, dy:dy+h, dx:dx+w]``."""
    b, c = padded.shape[:2]
    ys = (dy.view(b, 1) + torch.arange(h, device=padded.device)).view(b, 1, h, 1).expand(b, c, h, padded.shape[3])
    out = padded.gather(2, ys)
    xs = (dx.view(b, 1) + torch.arange(w, device=padded.device)).view(b, 1, 1, w).expand(b, c, h, w)
    return out.gather(3, xs)


def augment(images: torch.Tensor, policy: AugmentPolicy, size: int, generator: torch.Generator) -> torch.Tensor:
    """Augment a batch of stored frames (``uint8 [B, S, S, 3]``) into model input ``[B, 3, size, size]``."""
    x = to_float(images)
    if len(x) == 0:
        return resize(x, size)
    x = _resized_crop(x, policy.crop_scale, size, generator) if policy.crop_scale else resize(x, size)
    if policy.translate:
        x = _translate(x, policy.translate, generator)
    b = len(x)
    if policy.hflip:
        flip = torch.rand(b, generator=generator, device=x.device) < 0.5
        x = torch.where(flip.view(b, 1, 1, 1), x.flip(-1), x)
    if policy.brightness or policy.contrast:
        bright = _uniform(b, 1 - policy.brightness, 1 + policy.brightness, generator, x.device).view(b, 1, 1, 1)
        contrast = _uniform(b, 1 - policy.contrast, 1 + policy.contrast, generator, x.device).view(b, 1, 1, 1)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mean) * contrast + mean) * bright
    return x.clamp_(0, 1)

"""Training augmentations: pure, batched torch on the worker's device (GPU when present).

Input: ``uint8 [B, S, S, 3]`` RGB as stored in ``frames``; output: ``float [B, 3, size, size]`` in 0..1
(the models normalise inside). Each role's policy, and why, is in :mod:`fst_ray.roles`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from fst_ray.frames import resize, to_float
from fst_ray.roles import AugmentPolicy

__all__ = ["augment"]


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

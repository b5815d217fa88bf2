"""Training augmentations: pure, batched torch on the worker's device (GPU when present).

Input: ``uint8 [B, S, S, 3]`` RGB as stored in ``frames``; output: ``float [B, 3, size, size]`` in 0..1
(the models normalise inside). Each role's policy, and why, is in :mod:`fst_ray.roles`.
"""

from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
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


def _blur_matrix(sigma: torch.Tensor, n: int) -> torch.Tensor:
    """``[N, n, n]``: row ``y`` holds the Gaussian weights (sigma[i] pixels, cut at 3 sigma, reflect border)
    that blur a length-``n`` signal at ``y``."""
    radius = min(max(1, int(3 * float(sigma.max()) + 0.5)), n - 1)
    t = torch.arange(-radius, radius + 1, device=sigma.device)
    k = torch.exp(-0.5 * (t.to(sigma) / sigma[:, None]) ** 2)
    k = k / k.sum(1, keepdim=True)  # [N, 2r+1]
    src = torch.arange(n, device=sigma.device)[:, None] + t  # [n, 2r+1], reflected into 0..n-1
    src = torch.where(src < 0, -src, torch.where(src >= n, 2 * (n - 1) - src, src))
    m = torch.zeros(len(sigma), n, n, device=sigma.device, dtype=sigma.dtype)
    return m.scatter_add_(2, src.expand(len(sigma), n, -1), k[:, None, :].expand(-1, n, -1))


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``x`` (``[N, C, H, W]``) blurred by a Gaussian of ``sigma[i]`` pixels per image (separable, reflect border)."""
    rows, cols = _blur_matrix(sigma, x.shape[2]), _blur_matrix(sigma, x.shape[3])
    return rows[:, None] @ x @ cols[:, None].transpose(-1, -2)


def _jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    """``image`` (``[3, H, W]`` in 0..1) after a JPEG round trip at ``quality`` (Pillow, 4:2:0 chroma)."""
    pixels = (image * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality)
    out = np.asarray(Image.open(buf).convert("RGB"))
    return torch.from_numpy(out.copy()).permute(2, 0, 1).to(image.device, image.dtype) / 255


def _degrade(x: torch.Tensor, policy: AugmentPolicy, g: torch.Generator) -> torch.Tensor:
    """Each image of ``x`` (``[B, 3, H, W]`` in 0..1) blurred with probability ``policy.degrade``, then
    JPEG-compressed with probability ``policy.degrade`` (both per image, as Wang et al. 2020)."""
    b = len(x)
    blur = (torch.rand(b, generator=g, device=x.device) < policy.degrade).nonzero().flatten().tolist()
    sigma = _uniform(b, *policy.blur_sigma, g, x.device).clamp(min=1e-3).tolist()
    jpeg = (torch.rand(b, generator=g, device=x.device) < policy.degrade).nonzero().flatten().tolist()
    quality = torch.randint(policy.jpeg_quality[0], policy.jpeg_quality[1] + 1, (b,), generator=g,
                            device=x.device).tolist()
    if not blur and not jpeg:
        return x
    x = x.clone()
    if blur:
        x[blur] = _gaussian_blur(x[blur], torch.tensor([sigma[i] for i in blur], device=x.device, dtype=x.dtype))
    for i in jpeg:
        x[i] = _jpeg(x[i], quality[i])
    return x


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
    x = x.clamp_(0, 1)
    return _degrade(x, policy, generator) if policy.degrade else x

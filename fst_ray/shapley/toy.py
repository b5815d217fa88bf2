"""A small CNN and images for tests, benchmarks and demos of the Shapley engine (no data needed).

The network's logits depend non-additively on image regions (ReLUs; optionally max pooling and an MLP head),
so its Shapley values are not trivial; it runs at thousands of 64 x 64 images per second on a CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["toy_cnn", "toy_image"]


def toy_cnn(num_classes: int = 10, width: int = 16, seed: int = 0, head: str = "avg") -> nn.Module:
    """A randomly initialised (seeded) 5-conv CNN taking ``[B, 3, H, W]`` raw pixels in 0..1, in eval mode.

    ``head="avg"``: global average pooling and a linear layer, as the project's timm backbones (ResNet,
    EfficientNet); ``head="max"``: global max pooling and a 2-layer MLP, a harder game (interactions
    between distant regions).
    """
    torch.manual_seed(seed)
    w = width
    layers = [
        nn.Conv2d(3, w, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(4 * w, 4 * w, 3, padding=1), nn.ReLU(),
        nn.Conv2d(4 * w, 4 * w, 3, padding=1), nn.ReLU(),
    ]
    if head == "avg":
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, num_classes)]
    elif head == "max":
        layers += [nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(4 * w, 4 * w), nn.ReLU(),
                   nn.Linear(4 * w, num_classes)]
    else:
        raise ValueError(f"unknown head {head!r}: use avg or max")
    return nn.Sequential(*layers).eval()


def toy_image(size: int = 64, seed: int = 0) -> torch.Tensor:
    """A smooth random RGB image ``[3, size, size]`` in 0..1 (low-frequency noise plus a few blobs)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 6, 6, generator=g)
    img = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[0]
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    for _ in range(4):
        cy, cx, r = torch.rand(3, generator=g)
        blob = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (0.01 + 0.02 * r))
        img = img + blob * (torch.rand(3, 1, 1, generator=g) - 0.5)
    return img.clamp(0, 1)

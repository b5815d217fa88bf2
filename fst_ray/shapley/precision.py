"""How the pool's models run: in fp32, or under autocast to bf16 or fp16 (their logits cast back to fp32), with
channels_last inputs, and through ``torch.compile``. The GPU's speed-ups; the error a reduced precision adds to a
map is measured by ``bench/precision.py``. Pure torch: no Ray.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

__all__ = ["PRECISIONS", "NAMES", "Reduced", "prepare"]

#: precision name -> autocast dtype (None: fp32, no autocast)
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
NAMES = tuple(PRECISIONS)


class Reduced(nn.Module):
    """``model`` under autocast to ``precision`` (inputs made channels_last where asked): ``[B, C, H, W]`` ->
    its output as float32."""

    def __init__(self, model: nn.Module, precision: str, channels_last: bool):
        super().__init__()
        self.model, self.dtype, self.channels_last = model, PRECISIONS[precision], channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        cast = torch.autocast(x.device.type, dtype=self.dtype) if self.dtype else contextlib.nullcontext()
        with cast:
            return self.model(x).float()


def prepare(model: nn.Module, precision: str = "fp32", channels_last: bool = False,
            compile: bool = False) -> nn.Module:
    """``model`` (on its device, in eval mode) as the settings run it; fp32 without the others: ``model`` itself."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: one of {list(PRECISIONS)}")
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compile:
        model = torch.compile(model)
    return Reduced(model, precision, channels_last) if precision != "fp32" or channels_last else model

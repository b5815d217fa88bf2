"""Cooperative games whose players are the cells of a G x G image grid.

A game is anything with ``n_players`` and ``__call__(coalitions) -> values``: ``coalitions`` is a bool
tensor ``[m, n]`` (row-major cells, True = the cell keeps its pixels), ``values`` a float64 CPU tensor
``[m]`` (one output) or ``[m, k]`` (k outputs, e.g. the three encoders v_s, v_t, v_d fed the same masked
images). Estimators (``fst_ray.shapley.estimate``) accept any such game; ``ImageGame`` is the one for
images, and ``fst_ray.shapley.pool.PoolGame`` spreads the same evaluation over Ray actors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import torch
from torch import nn

from fst_ray.shapley import baselines

__all__ = ["Game", "ImageGame", "VALUES", "cell_index", "baseline_image", "masked_images"]

VALUES = ("logit", "probability", "log-odds")


class Game(Protocol):
    n_players: int

    def __call__(self, coalitions: torch.Tensor) -> torch.Tensor: ...


def cell_index(size: int, grid: int, device=None) -> torch.Tensor:
    """Grid row (or column) of each of ``size`` pixel rows: ``floor(p * grid / size)``; sizes need not divide."""
    return torch.div(torch.arange(size, device=device) * grid, size, rounding_mode="floor")


def baseline_image(image: torch.Tensor, baseline: str | torch.Tensor, grid: int) -> torch.Tensor:
    """What a removed cell shows, ``[C, H, W]`` like ``image``: a baseline made from the image alone, by name
    (:mod:`fst_ray.shapley.baselines`), or a tensor used as given (broadcast); a ``[K, C, H, W]`` tensor is K
    backgrounds, returned as they are (:class:`ImageGame` averages over them).
    """
    if isinstance(baseline, torch.Tensor):
        if baseline.dim() == 4:
            if baseline.shape[1:] != image.shape:
                raise ValueError(f"backgrounds {tuple(baseline.shape)} do not match the image {tuple(image.shape)}")
            return baseline.to(image)
        return baseline.to(image).expand_as(image)
    spec = baselines.get(baseline)
    if spec.others is not None:
        raise ValueError(f"the {baseline} baseline is made of other frames ({spec.needs}): give them as a tensor")
    return spec.fill(image, grid, [])


def masked_images(image: torch.Tensor, baseline: torch.Tensor, coalitions: torch.Tensor, grid: int,
                  rows: torch.Tensor | None = None, cols: torch.Tensor | None = None,
                  out: torch.Tensor | None = None) -> torch.Tensor:
    """``[m, C, H, W]``: ``image`` where the coalition keeps the cell, ``baseline`` elsewhere (written into
    ``out`` when given: reusing one buffer spares a fresh large allocation per batch).

    When the grid divides H and W the cell mask is expanded by ``repeat_interleave``, otherwise by gathering
    the pixel-to-cell maps ``rows``/``cols`` (``cell_index``).
    """
    _, h, w = image.shape
    keep = coalitions.to(image.device).view(-1, grid, grid)
    if h % grid == 0 and w % grid == 0:
        keep = keep.repeat_interleave(h // grid, 1).repeat_interleave(w // grid, 2)
    else:
        rows = cell_index(h, grid, image.device) if rows is None else rows
        cols = cell_index(w, grid, image.device) if cols is None else cols
        keep = keep[:, rows][:, :, cols]
    if out is None:
        return torch.where(keep[:, None], image, baseline)
    return torch.where(keep[:, None], image, baseline, out=out[:keep.shape[0]])


def _value(logits: torch.Tensor, target: int, value: str) -> torch.Tensor:
    if value == "logit":
        return logits[:, target]
    logp = torch.log_softmax(logits.double(), dim=1)
    if value == "probability":
        return logp[:, target].exp()
    others = torch.cat([logp[:, :target], logp[:, target + 1:]], dim=1)
    return logp[:, target] - torch.logsumexp(others, dim=1)


class ImageGame:
    """The game of one image: players are the ``grid x grid`` cells (row-major); a coalition keeps its cells
    and replaces the others by the baseline; the value is the model's logit (or probability, or log-odds
    ``log p/(1-p)``) of ``target_class``. With K backgrounds (a ``[K, C, H, W]`` baseline) the value is the mean
    over the backgrounds of the value with each (interventional Shapley: the expectation over a background
    set), K forward passes per coalition.

    ``model`` is one ``nn.Module`` or a mapping ``name -> module`` (e.g. ``{"source": v_s, "target": v_t,
    "det": v_d}``); with a mapping, every batch of masked images is built once and fed to each model (common
    random numbers, one masking cost), ``target_class`` is one int for all or a mapping with the same keys,
    and the game returns ``[m, k]`` in the mapping's order (``outputs`` names the columns). With one module it
    returns ``[m]``. ``image`` is ``[C, H, W]`` in the model's input space; H, W need not be multiples of the
    grid. Models are put in eval mode; masked images are built on the (first) model's device in batches of
    ``batch_size`` under ``torch.inference_mode``. One call of the game = one evaluation per coalition,
    whatever the number of models.
    """

    def __init__(self, model: nn.Module | Mapping[str, nn.Module], image: torch.Tensor,
                 target_class: int | Mapping[str, int], grid: int = 16, baseline: str | torch.Tensor = "zero",
                 value: str = "logit", batch_size: int = 256):
        if value not in VALUES:
            raise ValueError(f"unknown value {value!r}: use one of {VALUES}")
        self.models = dict(model) if isinstance(model, Mapping) else {"": model}
        self.outputs = tuple(self.models) if isinstance(model, Mapping) else None
        if isinstance(target_class, Mapping):
            if set(target_class) != set(self.models):
                raise ValueError(f"target_class keys {sorted(target_class)} != model keys {sorted(self.models)}")
            self.targets = {k: int(target_class[k]) for k in self.models}
        else:
            self.targets = {k: int(target_class) for k in self.models}
        params = {k: next(m.eval().parameters(), None) for k, m in self.models.items()}
        self._devices = {k: p.device if p is not None else torch.device("cpu") for k, p in params.items()}
        self.device = next(iter(self._devices.values()))
        first = next(iter(params.values()))
        dtype = first.dtype if first is not None else torch.float32
        if image.dim() != 3:
            raise ValueError(f"image must be [C, H, W], got {tuple(image.shape)}")
        self.grid = int(grid)
        self.n_players = self.grid * self.grid
        self.value = value
        self.batch_size = int(batch_size)
        self.image = image.to(self.device, dtype)
        self.baseline = baseline_image(self.image, baseline, self.grid)
        self._rows = cell_index(self.image.shape[1], self.grid, self.device)
        self._cols = cell_index(self.image.shape[2], self.grid, self.device)

    @torch.inference_mode()
    def __call__(self, coalitions: torch.Tensor) -> torch.Tensor:
        """Values ``[m]`` (one model) or ``[m, k]`` (k models), float64 on the CPU."""
        if coalitions.dim() != 2 or coalitions.shape[1] != self.n_players:
            raise ValueError(f"coalitions must be [m, {self.n_players}], got {tuple(coalitions.shape)}")
        coalitions = coalitions.to(self.device, torch.bool)
        columns: list[list[torch.Tensor]] = [[] for _ in self.models]
        backgrounds = self.baseline if self.baseline.dim() == 4 else self.baseline[None]
        k = backgrounds.shape[0]
        step = max(1, self.batch_size // k)  # coalitions per forward pass: each is masked k times
        buffer = self.image.new_empty(k, min(step, coalitions.shape[0]), *self.image.shape)
        for start in range(0, coalitions.shape[0], step):
            chunk = coalitions[start:start + step]
            for j, b in enumerate(backgrounds):
                masked_images(self.image, b, chunk, self.grid, self._rows, self._cols, out=buffer[j])
            x = buffer[:, :chunk.shape[0]].reshape(-1, *self.image.shape)  # [k * m, C, H, W], background-major
            for column, (name, model) in zip(columns, self.models.items()):
                v = _value(model(x.to(self._devices[name])), self.targets[name], self.value)
                column.append(v.view(k, -1).double().mean(0))
        out = torch.stack([torch.cat(c).double().cpu() if c else torch.empty(0, dtype=torch.float64)
                           for c in columns], 1)
        return out if self.outputs is not None else out[:, 0]

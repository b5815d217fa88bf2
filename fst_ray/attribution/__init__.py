"""Attribution methods beside Shapley, each producing a G x G map of one model's evidence for one class.

One registry and one entry point::

    result = attribute("occlusion", model, image, target=1, grid=4, baseline=torch.zeros_like(image))
    result.values   # [G*G] float64, row-major cells, in the unit of the model's logit (gradient methods: theirs)
    result.model_calls, result.seconds   # what it cost: images through the model (with their backward), wall time

A method is a function ``(model, image [C, H, W], target, grid, baseline [C, H, W], budget, generator) -> [G*G]``
registered with :func:`register_attribution` (its family: ``gradient`` or ``perturbation``); pixel attributions
are summed into cells (:func:`pool_to_cells`). The model takes raw 0..1 pixels ``[B, C, H, W]`` and returns
logits ``[B, classes]``, as the project's models do. Gradient methods come from captum; ``rise`` (random masks on
the cell grid) and ``shapley`` (:mod:`fst_ray.shapley`) are the project's. Pure torch: no Ray.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["Attribution", "AttributionSpec", "ATTRIBUTIONS", "register_attribution", "attribute", "names",
           "pool_to_cells", "attribution_map", "FAMILIES", "BUILTIN"]

FAMILIES = ("gradient", "perturbation")


@dataclass(frozen=True)
class Attribution:
    """One map: ``values`` ``[G*G]`` float64 (row-major cells), the method, and its cost."""

    method: str
    values: torch.Tensor
    model_calls: int
    seconds: float


@dataclass(frozen=True)
class AttributionSpec:
    """A registered method: ``run`` (see the module doc), its ``family``, ``default_budget`` (samples, steps or
    coalitions; ``None``: it takes no budget), whether it draws at ``random`` (its maps carry estimator noise) and
    ``doc``."""

    name: str
    run: Callable[..., torch.Tensor]
    family: str
    default_budget: int | None
    random: bool
    doc: str


ATTRIBUTIONS: dict[str, AttributionSpec] = {}


def register_attribution(name: str, *, family: str, default_budget: int | None = None, random: bool = False):
    """Decorator: register an attribution method under ``name`` (its docstring documents it)."""
    if family not in FAMILIES:
        raise ValueError(f"attribution family {family!r}: use one of {FAMILIES}")

    def add(fn):
        if name in ATTRIBUTIONS:
            raise ValueError(f"attribution method {name!r} is already registered")
        ATTRIBUTIONS[name] = AttributionSpec(name, fn, family, default_budget, random, (fn.__doc__ or "").strip())
        return fn

    return add


def names() -> tuple[str, ...]:
    return tuple(ATTRIBUTIONS)


def pool_to_cells(pixels: torch.Tensor, grid: int) -> torch.Tensor:
    """``[C, H, W]`` or ``[H, W]`` pixel attributions summed over channels and over each cell of a ``grid`` x
    ``grid`` partition (:func:`fst_ray.shapley.game.cell_index`; sizes need not divide): ``[G*G]`` float64."""
    from fst_ray.shapley.game import cell_index

    p = pixels.detach().double()
    p = p.sum(0) if p.dim() == 3 else p
    h, w = p.shape
    cell = cell_index(h, grid, p.device)[:, None] * grid + cell_index(w, grid, p.device)[None, :]
    return torch.zeros(grid * grid, dtype=torch.float64, device=p.device).index_add_(0, cell.reshape(-1),
                                                                                     p.reshape(-1)).cpu()


class _Counted(nn.Module):
    """``model`` counting the images it is given."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.images = model, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.images += x.shape[0]
        return self.model(x)


def attribute(method: str, model: nn.Module, image: torch.Tensor, target: int, grid: int,
              baseline: torch.Tensor | None = None, budget: int | None = None, seed: int = 0) -> Attribution:
    """``method``'s map of ``model``'s logit of class ``target`` on ``image`` (``[C, H, W]``, 0..1) over a
    ``grid`` x ``grid`` partition; removed content shows ``baseline`` (default black: the paper's zero);
    ``budget``: the method's samples, steps or coalitions (default its own); randomness from ``seed`` only."""
    if method not in ATTRIBUTIONS:
        raise ValueError(f"unknown attribution method {method!r}: use one of {names()}")
    spec = ATTRIBUTIONS[method]
    model = _Counted(model.eval())
    param = next(model.parameters(), None)
    device = param.device if param is not None else image.device
    image = image.to(device, torch.float32)
    baseline = torch.zeros_like(image) if baseline is None else baseline.to(image).expand_as(image)
    generator = torch.Generator().manual_seed(int(seed))
    start = time.perf_counter()
    values = spec.run(model, image, int(target), int(grid), baseline,
                      budget if budget is not None else spec.default_budget, generator)
    return Attribution(method, values.double().cpu().reshape(grid * grid), model.images,
                       time.perf_counter() - start)


def attribution_map(method: str, model: nn.Module, image: torch.Tensor, target: int, grid: int,
                    baselines: torch.Tensor, budget: int | None, seed: int, halves: bool = True) -> dict:
    """A map as the map cache stores it (:mod:`fst_ray.shapley.run`): ``phi``, ``stderr``, ``phi_a``/``phi_b``
    and ``n_evals`` (images through the model). ``baselines``: ``[C, H, W]``, or ``[K, C, H, W]`` whose maps are
    averaged. A random method with ``halves`` is the mean of two independent estimates at half the budget each
    (their agreement measures its noise, as for Shapley maps); a deterministic one has no estimator noise: its
    halves are the map itself (noise ceiling 1)."""
    spec = ATTRIBUTIONS[method]
    backgrounds = baselines if baselines.dim() == 4 else baselines[None]
    split = spec.random and halves
    seeds = [seed, seed ^ 0x5EED] if split else [seed]
    each = budget // 2 if split and budget else budget
    parts, calls = [], 0
    for s in seeds:
        runs = [attribute(method, model, image, target, grid, b, each, s) for b in backgrounds]
        parts.append(torch.stack([r.values for r in runs]).mean(0))
        calls += sum(r.model_calls for r in runs)
    phi = sum(parts) / len(parts)
    a, b = (parts if split else (phi, phi)) if halves else (None, None)
    stderr = (a - b).abs() / 2 if split else torch.zeros_like(phi)
    return {"phi": phi, "stderr": stderr, "phi_a": a, "phi_b": b, "n_evals": calls}


#: the built-in families' modules: importing one registers its methods
BUILTIN = ("gradients", "perturbations")
for _module in BUILTIN:
    importlib.import_module(f"{__name__}.{_module}")

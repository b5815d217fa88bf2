"""The estimators' registry and what every estimator shares.

An estimator is a function ``(game, budget, generator) -> (values [n, k], stderr [n, k], n_evals)`` registered
with :func:`register_estimator` under its name, with the fewest evaluations it accepts on n players and its
family; :func:`fst_ray.shapley.estimate` runs it by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["Estimate", "EstimatorSpec", "ESTIMATORS", "FAMILIES", "register_estimator", "get", "names",
           "min_budget", "evaluate", "random_ranks", "mean_stderr", "shapley_weight", "need"]

Estimate = tuple[torch.Tensor, torch.Tensor, int]
#: how an estimator draws its evaluations: all coalitions, permutations of the players, or a weighted regression
FAMILIES = ("exact", "permutation", "regression")


@dataclass(frozen=True)
class EstimatorSpec:
    """One registered estimator: ``run(game, budget, generator)``; ``min_budget(n)``: the fewest evaluations it
    accepts on n players; ``family``: one of :data:`FAMILIES`; ``doc``: its docstring's first line."""

    name: str
    run: Callable[..., Estimate]
    min_budget: Callable[[int], int]
    family: str
    doc: str


ESTIMATORS: dict[str, EstimatorSpec] = {}


def register_estimator(name: str, *, min_budget: Callable[[int], int], family: str):
    """Decorator: register an estimator function under ``name`` (its docstring documents it)."""
    if family not in FAMILIES:
        raise ValueError(f"estimator family {family!r}: use one of {FAMILIES}")

    def add(fn: Callable[..., Estimate]) -> Callable[..., Estimate]:
        if name in ESTIMATORS or name == "auto":
            raise ValueError(f"estimator {name!r} is already registered")
        if not (fn.__doc__ or "").strip():
            raise ValueError(f"estimator {name!r} needs a docstring")
        ESTIMATORS[name] = EstimatorSpec(name, fn, min_budget, family, fn.__doc__.strip().splitlines()[0])
        return fn

    return add


def get(name: str) -> EstimatorSpec:
    if name not in ESTIMATORS:
        raise ValueError(f"unknown estimator {name!r}: use one of {names()}")
    return ESTIMATORS[name]


def names() -> tuple[str, ...]:
    return tuple(ESTIMATORS)


def min_budget(name: str, n: int) -> int:
    """The fewest evaluations estimator ``name`` accepts on n players."""
    return get(name).min_budget(n)


def evaluate(game, coalitions: torch.Tensor) -> torch.Tensor:
    """``[m, k]`` float64 CPU values of ``coalitions`` (a one-output game gives k = 1)."""
    v = torch.as_tensor(game(coalitions), dtype=torch.float64).cpu()
    return v.reshape(coalitions.shape[0], -1)


def shapley_weight(n: int, s: torch.Tensor) -> torch.Tensor:
    """s! (n-s-1)! / n!: the weight of a coalition of size s (not holding i) in phi_i."""
    s = s.double()
    return torch.exp(torch.lgamma(s + 1) + torch.lgamma(n - s) - math.lgamma(n + 1))


def need(ok: bool, estimator: str, budget: int, fewest: int) -> None:
    if not ok:
        raise ValueError(f"{estimator}: budget {budget} is below its minimum {fewest} evaluations for this game")


def random_ranks(rows: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """``[rows, n]`` uniformly random permutations, as each player's position (rank)."""
    return torch.rand(rows, n, generator=generator).argsort(1).argsort(1)


def mean_stderr(units: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard error over the first axis of i.i.d. units."""
    return units.mean(0), units.std(0) / math.sqrt(units.shape[0])

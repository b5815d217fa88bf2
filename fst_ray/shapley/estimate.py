"""``estimate``: one entry point over the estimators, and the ``auto`` choice."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import torch

from fst_ray.shapley import estimators
from fst_ray.shapley.result import ShapleyResult

__all__ = ["estimate", "estimate_maps", "choose", "CHOICES", "AUTO_POLICY", "COALITIONS", "image_seed"]

#: what ``estimator`` may name: ``auto`` or a registered estimator (:mod:`fst_ray.shapley.estimators`)
CHOICES = ("auto", *estimators.names())

#: the rule ``auto`` follows; recorded with cached maps, so that maps of an earlier rule are never taken for its
AUTO_POLICY = "exact, else adjusted, else antithetic, else permutation"

#: how the coalitions of one image's maps are drawn: ``per_model`` (each model its own, so the estimator noise
#: of any two maps is independent, as every statistic that compares maps needs) or ``shared`` (one masked
#: image feeds every model: fewer masked images, but their noises are correlated cell by cell, which biases
#: Q_τ's gap; kept to measure that artefact)
COALITIONS = ("per_model", "shared")


def choose(n: int, budget: int) -> str:
    """The estimator ``auto`` runs for n players and a budget (:data:`AUTO_POLICY`).

    ``exact`` when 2^n evaluations fit the budget; otherwise the first of ``adjusted``, ``antithetic``,
    ``permutation`` whose minimum fits. Measured in bench/shapley.py (a) against an independent reference
    (docs/benchmarks.md): on trained encoders and detectors at G = 16 and G = 8, ``adjusted`` has the lowest
    error per evaluation, then ``antithetic``; the regression estimators (``kernel``, ``leverage``) a higher
    error than even the official estimator's. Those win only on near-additive toy games (the average-pooling
    toy CNN), which are not what the analyses explain.
    """
    if n <= 24 and budget >= 2 ** n:
        return "exact"
    return next(m for m in ("adjusted", "antithetic", "permutation") if budget >= estimators.min_budget(m, n))


def estimate(game, budget: int, estimator: str = "auto", seed: int = 0) -> ShapleyResult:
    """Estimate the Shapley values of ``game`` with at most ``budget`` evaluations.

    The coalitions are drawn from ``seed`` alone (a CPU ``torch.Generator``), so the same seed gives the
    same result whatever evaluates the game. Raises ``ValueError`` when the budget is below the estimator's
    minimum (``estimators.min_budget``).
    """
    if estimator != "auto":
        estimators.get(estimator)  # a clear error for a name not registered
    n = int(game.n_players)
    if n < 2:
        raise ValueError("a game needs at least 2 players")
    estimator = choose(n, budget) if estimator == "auto" else estimator
    generator = torch.Generator().manual_seed(int(seed))
    values, stderr, n_evals = estimators.get(estimator).run(game, int(budget), generator)
    outputs = getattr(game, "outputs", None)
    if outputs is None and values.shape[1] == 1:
        values, stderr = values[:, 0], stderr[:, 0]
    return ShapleyResult(values=values, stderr=stderr, n_evals=int(n_evals), estimator=estimator,
                         outputs=None if outputs is None else tuple(outputs))


def estimate_maps(game_of: Callable[[list[str]], object], seeds: dict[str, int], budget: int, estimator: str = "auto",
                  halves: bool = True) -> tuple[dict[str, dict], int]:
    """Each output's map of one image, drawing coalitions per seed: outputs given the same seed share them.

    ``game_of(names)`` is the image's game over the outputs ``names`` (a multi-output game); ``seeds``: output
    name -> seed. With ``halves`` a map is the mean of two independent estimates of half the budget each, the
    second seeded from the first (``image_seed(seed, "b")``). Returns, per output, ``phi``, ``stderr`` (``[n]``
    float64), ``phi_a``/``phi_b`` (the halves, or ``None``), ``estimator``, ``seed`` and ``n_evals`` (the
    coalitions its map was estimated from), and the number of coalitions evaluated in all.
    """
    groups: dict[int, list[str]] = {}
    for name, seed in seeds.items():
        groups.setdefault(seed, []).append(name)
    out, evaluations = {}, 0
    for seed, names in groups.items():
        game = game_of(names)
        if halves:
            half = budget // 2
            parts = [estimate(game, half, estimator, seed=seed),
                     estimate(game, budget - half, estimator, seed=image_seed(seed, "b"))]
        else:
            parts = [estimate(game, budget, estimator, seed=seed)]
        n_evals = sum(p.n_evals for p in parts)
        evaluations += n_evals
        outputs = [p.by_output() for p in parts]
        for name in names:
            rs = [o[name] for o in outputs]
            out[name] = {"phi": sum(r.values for r in rs) / len(rs),
                         "stderr": sum(r.stderr ** 2 for r in rs).sqrt() / len(rs),
                         "phi_a": rs[0].values if halves else None, "phi_b": rs[1].values if halves else None,
                         "estimator": rs[0].estimator, "seed": seed, "n_evals": n_evals}
    return out, evaluations


def image_seed(seed: int, key: str) -> int:
    """A 62-bit seed from a seed and a key (an image's, a model's; stable across runs and machines)."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{key}".encode()).digest()[:8], "little") >> 2

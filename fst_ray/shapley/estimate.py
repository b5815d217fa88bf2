"""``estimate``: one entry point over the estimators, and the ``auto`` choice."""

from __future__ import annotations

import torch

from fst_ray.shapley.estimators import ESTIMATORS, min_budget
from fst_ray.shapley.result import ShapleyResult

__all__ = ["estimate", "choose", "METHODS", "AUTO_POLICY"]

METHODS = ("auto", *ESTIMATORS)

#: the rule ``auto`` follows; recorded with cached maps, so that maps of an earlier rule are never taken for its
AUTO_POLICY = "exact, else adjusted, else antithetic, else permutation"


def choose(n: int, budget: int) -> str:
    """The estimator ``auto`` runs for n players and a budget (:data:`AUTO_POLICY`).

    ``exact`` when 2^n evaluations fit the budget; otherwise the first of ``adjusted``, ``antithetic``,
    ``permutation`` whose minimum fits. Measured in bench/shapley.py (a) against an independent reference
    (README, "Benchmarks"): on trained encoders and detectors at G = 16 and G = 8, ``adjusted`` has the lowest
    error per evaluation, then ``antithetic``; the regression estimators (``kernel``, ``leverage``) a higher
    error than even the official estimator's. Those win only on near-additive toy games (the average-pooling
    toy CNN), which are not what the analyses explain.
    """
    if n <= 24 and budget >= 2 ** n:
        return "exact"
    return next(m for m in ("adjusted", "antithetic", "permutation") if budget >= min_budget(m, n))


def estimate(game, budget: int, method: str = "auto", seed: int = 0) -> ShapleyResult:
    """Estimate the Shapley values of ``game`` with at most ``budget`` evaluations.

    The coalitions are drawn from ``seed`` alone (a CPU ``torch.Generator``), so the same seed gives the
    same result whatever evaluates the game. Raises ``ValueError`` when the budget is below the method's
    minimum (``estimators.min_budget``).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: use one of {METHODS}")
    n = int(game.n_players)
    if n < 2:
        raise ValueError("a game needs at least 2 players")
    method = choose(n, budget) if method == "auto" else method
    generator = torch.Generator().manual_seed(int(seed))
    values, stderr, n_evals = ESTIMATORS[method](game, int(budget), generator)
    outputs = getattr(game, "outputs", None)
    if outputs is None and values.shape[1] == 1:
        values, stderr = values[:, 0], stderr[:, 0]
    return ShapleyResult(values=values, stderr=stderr, n_evals=int(n_evals), method=method,
                         outputs=None if outputs is None else tuple(outputs))

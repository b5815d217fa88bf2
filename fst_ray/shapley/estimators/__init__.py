"""Shapley value estimators for games on n players (see ``fst_ray.shapley.game``), one file per family,
each registered in :mod:`fst_ray.shapley.estimators.base` (a new estimator: one file, its function decorated
with :func:`register_estimator`, and its module's name in :data:`BUILTIN`, or imported before the configs).

Every estimator takes ``(game, budget, generator)`` and returns ``(values [n, k], stderr [n, k], n_evals)``
with ``n_evals <= budget`` (coalitions evaluated; v(empty) and v(N) count). All randomness comes from the
torch ``generator``: the coalitions are drawn before any evaluation, so a result depends on the seed only,
not on how (or where) the game evaluates them.

- ``exact``: all 2^n coalitions (n <= 24).
- ``official``: the paper's estimator: for each cell separately, M = budget // 2n random permutations;
  the cell's marginal contribution to the cells before it (2 evaluations each); stderr = std / sqrt(M).
- ``permutation``: P random permutations, each a chain of n+1 prefix coalitions giving one marginal
  contribution of every player (v(empty), v(N) evaluated once); stderr = std / sqrt(P). Efficient exactly.
- ``antithetic``: permutations in pairs (pi, reversed pi); the pair mean is the unit (exact for games with
  interactions of order <= 2); stderr = std of pair means / sqrt(pairs). Efficient exactly.
- ``adjusted``: antithetic permutations, regression-adjusted by a cross-fitted model of each marginal
  contribution's deviation from its player's mean given its context (position bin, neighbours already
  present), pooled over players (Witter et al. 2025's regression-adjusted Monte Carlo, with a model made for
  image grids); the model's exact expectation is added back, so it is unbiased; exact on additive games and
  efficient exactly. stderr = std of adjusted pair means / sqrt(pairs).
- ``kernel`` / ``leverage``: paired KernelSHAP: the Shapley values are the solution of the
  Shapley-kernel-weighted least squares fit of v(S) - v(empty) by sum_{i in S} phi_i under the efficiency
  constraint sum phi = v(N) - v(empty) (Lundberg & Lee 2017; Covert & Lee 2021). Coalitions come in
  complementary pairs (S, N \\ S); the sizes are drawn ∝ the kernel's mass (``kernel``) or uniformly
  (``leverage``: leverage-score sampling, Musco & Witter 2025), with importance weights; sizes whose
  expected draws exceed their count are enumerated instead (border trick), and a coalition drawn twice
  is evaluated once. Exact for games with interactions of order <= 2 (pairing). stderr: the sandwich
  (delta-method) variance with the complementary pair as the independent unit and each pair's influence
  scaled by 1 / sqrt(1 - its hat value) (HC2: no under-coverage when pairs are few per player); the
  enumerated sizes add no variance. Calibration (bench/shapley.py, test_shapley_estimators.py): mean
  squared z-score against the truth ~1.

Which is best depends on the game (bench/shapley.py (a); the measured fractions are in docs/benchmarks.md): the
regression estimators need the fewest evaluations on near-additive games (the average-pooling toy CNN), but on
the trained encoders and detectors, whose logits are far from additive in the cells kept, their residual
variance makes them worse than permutation sampling, and ``adjusted`` is the best, then ``antithetic``;
``auto`` follows those measurements (``fst_ray.shapley.estimate.choose``). For the regression estimators,
size distributions ∝ kernel^a were tried for a in [-1, 1] (a = 0 best), as were stratified sizes, block designs
and extra size or local interaction features in the regression (no gain on the toy games).
"""

import importlib

from fst_ray.shapley.estimators.base import (ESTIMATORS, FAMILIES, EstimatorSpec, evaluate, get, min_budget, names,
                                             register_estimator)

#: the built-in families' modules: importing one registers its estimators
BUILTIN = ("exact", "permutation", "adjusted", "regression")
for _module in BUILTIN:
    importlib.import_module(f"{__name__}.{_module}")

__all__ = ["ESTIMATORS", "FAMILIES", "EstimatorSpec", "register_estimator", "get", "names", "min_budget", "evaluate",
           "BUILTIN"]

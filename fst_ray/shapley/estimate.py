"""``estimate``: one entry point over the estimators, and the ``auto`` choice."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import torch

from fst_ray import metrics
from fst_ray.shapley import estimators
from fst_ray.shapley.result import ShapleyResult

__all__ = ["estimate", "estimate_maps", "map_rounds", "choose", "CHOICES", "AUTO_POLICY", "COALITIONS", "image_seed"]

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
                  halves: bool = True, target_ceiling: float | None = None,
                  max_budget: int | None = None) -> tuple[dict[str, dict], int]:
    """Each output's map of one image, drawing coalitions per seed: outputs given the same seed share them.

    ``game_of(names)`` is the image's game over the outputs ``names`` (a multi-output game); ``seeds``: output
    name -> seed. With ``halves`` a map is the mean of two independent estimates of half the budget each, the
    second seeded from the first (``image_seed(seed, "b")``). Returns, per output, ``phi``, ``stderr`` (``[n]``
    float64), ``phi_a``/``phi_b`` (the halves, or ``None``), ``estimator``, ``seed``, ``n_evals`` (the
    coalitions its map was estimated from) and ``ceiling`` (its centred noise ceiling from its halves,
    :func:`fst_ray.metrics.noise_ceiling`, or ``None``), and the number of coalitions evaluated in all.

    With ``target_ceiling`` (halves required) the maps are estimated in rounds of ``budget`` evaluations (half
    to each half; round r > 0 seeded from ``(seed, r)``), each half the mean of its rounds' estimates, until every
    output sharing the coalitions has a ceiling of at least the target, or one more round would pass
    ``max_budget``; ``capped`` then says which maps stopped below the target.
    """
    if target_ceiling is not None and not halves:
        raise ValueError("a target ceiling is measured from the halves: halves=True")
    groups: dict[int, list[str]] = {}
    for name, seed in seeds.items():
        groups.setdefault(seed, []).append(name)
    out, evaluations = {}, 0
    for seed, names in groups.items():
        for k, (maps, spent) in enumerate(map_rounds(game_of(names), names, seed, budget, estimator, halves), 1):
            if target_ceiling is None or all(m["ceiling"] >= target_ceiling for m in maps.values()) or \
                    (k + 1) * budget > (max_budget or budget):
                break
        evaluations += spent
        for name, m in maps.items():
            out[name] = {**m, "seed": seed, "n_evals": spent,
                         "capped": None if target_ceiling is None else m["ceiling"] < target_ceiling}
    return out, evaluations


def map_rounds(game, names: list[str], seed: int, budget: int, estimator: str = "auto", halves: bool = True):
    """Rounds of ``budget`` evaluations of one image's maps under the outputs ``names`` of ``game`` (sharing its
    coalitions): yields, after each round, per output its map so far (``phi``, ``stderr``, ``phi_a``,
    ``phi_b``, ``estimator``, ``ceiling``: see :func:`estimate_maps`) and the coalitions evaluated so far.
    Round 0 draws from ``seed`` (its second half from ``image_seed(seed, "b")``), round r > 0 from
    ``(seed, r)``; each half is the mean of its rounds' estimates."""
    half, rounds, spent = budget // 2, [], 0
    while True:
        r = len(rounds)
        seed_a, seed_b = (seed, image_seed(seed, "b")) if r == 0 else \
            (image_seed(seed, f"a{r}"), image_seed(seed, f"b{r}"))
        parts = [estimate(game, half, estimator, seed=seed_a),
                 estimate(game, budget - half, estimator, seed=seed_b)] if halves else \
            [estimate(game, budget, estimator, seed=seed_a)]
        rounds.append([p.by_output() for p in parts])
        spent += sum(p.n_evals for p in parts)
        yield {name: _combine([[o[name] for o in parts] for parts in rounds], halves) for name in names}, spent


def _combine(rounds: list[list], halves: bool) -> dict:
    """One output's map from its rounds (each ``[half a, half b]`` or ``[whole]`` results): each half the mean of
    its rounds' estimates, the map the mean of the halves."""
    k = len(rounds)
    parts = [sum(r[i].values for r in rounds) / k for i in range(len(rounds[0]))]
    var = [sum(r[i].stderr ** 2 for r in rounds) / k ** 2 for i in range(len(rounds[0]))]
    phi = sum(parts) / len(parts)
    return {"phi": phi, "stderr": sum(var).sqrt() / len(parts), "phi_a": parts[0] if halves else None,
            "phi_b": parts[1] if halves else None, "estimator": rounds[0][0].estimator,
            "ceiling": metrics.noise_ceiling(parts[0][None].numpy(), parts[1][None].numpy(), centred=True)
            if halves else None}


def image_seed(seed: int, key: str) -> int:
    """A 62-bit seed from a seed and a key (an image's, a model's; stable across runs and machines)."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{key}".encode()).digest()[:8], "little") >> 2

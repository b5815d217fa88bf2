"""Permutation sampling: ``official`` (the paper's), ``permutation`` and ``antithetic``."""

from __future__ import annotations

import torch

from fst_ray.shapley.estimators.base import Estimate, evaluate, mean_stderr, min_budget, need, random_ranks, register_estimator

@register_estimator("official", min_budget=lambda n: 4 * n, family="permutation")
def official(game, budget: int, generator: torch.Generator) -> Estimate:
    """The paper's estimator: for each cell separately, M = budget // 2n random permutations and the cell's
    marginal contribution to the cells before it (2 evaluations each); stderr = std / sqrt(M)."""
    n = game.n_players
    m = budget // (2 * n)
    need(m >= 2, "official", budget, min_budget("official", n))
    rank = random_ranks(n * m, n, generator)
    cell = torch.arange(n).repeat_interleave(m)
    rows = torch.arange(n * m)
    without = rank < rank[rows, cell][:, None]
    with_cell = without.clone()
    with_cell[rows, cell] = True
    v = evaluate(game, torch.cat([with_cell, without]))
    delta = (v[: n * m] - v[n * m:]).view(n, m, -1)
    phi, se = mean_stderr(delta.transpose(0, 1))
    return phi, se, 2 * n * m


def chain_marginals(game, rank: torch.Tensor) -> torch.Tensor:
    """``[P, n, k]``: each player's marginal contribution along each of P permutations (given as ranks).

    Evaluates v(empty), v(N) once and the n-1 proper prefixes of every permutation: 2 + P (n-1) coalitions.
    """
    p, n = rank.shape
    prefixes = rank[:, None, :] < torch.arange(1, n)[None, :, None]
    ends = torch.stack([torch.zeros(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool)])
    v = evaluate(game, torch.cat([ends, prefixes.reshape(-1, n)]))
    k = v.shape[1]
    chain = torch.cat([v[0].expand(p, 1, k), v[2:].view(p, n - 1, k), v[1].expand(p, 1, k)], dim=1)
    steps = chain[:, 1:] - chain[:, :-1]
    return steps.gather(1, rank[..., None].expand(p, n, k))


@register_estimator("permutation", min_budget=lambda n: 2 * n, family="permutation")
def permutation(game, budget: int, generator: torch.Generator) -> Estimate:
    """P random permutations, each a chain of n+1 prefix coalitions giving one marginal contribution of every
    player (v(empty), v(N) evaluated once); stderr = std / sqrt(P). Efficient exactly."""
    n = game.n_players
    p = (budget - 2) // (n - 1)
    need(p >= 2, "permutation", budget, min_budget("permutation", n))
    phi, se = mean_stderr(chain_marginals(game, random_ranks(p, n, generator)))
    return phi, se, 2 + p * (n - 1)


@register_estimator("antithetic", min_budget=lambda n: 4 * n - 2, family="permutation")
def antithetic(game, budget: int, generator: torch.Generator) -> Estimate:
    """Permutations in pairs (pi, reversed pi), the pair mean the unit (exact for games with interactions of
    order <= 2); stderr = std of pair means / sqrt(pairs). Efficient exactly."""
    n = game.n_players
    p = (budget - 2) // (2 * (n - 1))
    need(p >= 2, "antithetic", budget, min_budget("antithetic", n))
    rank = random_ranks(p, n, generator)
    marg = chain_marginals(game, torch.cat([rank, n - 1 - rank]))
    phi, se = mean_stderr((marg[:p] + marg[p:]) / 2)
    return phi, se, 2 + 2 * p * (n - 1)

"""``exact``: every coalition."""

from __future__ import annotations

import torch

from fst_ray.shapley.estimators.base import Estimate, evaluate, min_budget, need, register_estimator, shapley_weight

@register_estimator("exact", min_budget=lambda n: 2 ** n if n <= 24 else 2 ** 62, family="exact")
def exact(game, budget: int, generator: torch.Generator) -> Estimate:
    """All 2^n coalitions (n <= 24): the Shapley values themselves, stderr 0."""
    n = game.n_players
    need(n <= 24 and 2 ** n <= budget, "exact", budget, min_budget("exact", n))
    masks = torch.arange(2 ** n)
    bits = ((masks[:, None] >> torch.arange(n)) & 1).bool()
    v = evaluate(game, bits)
    w = shapley_weight(n, bits.sum(1))
    phi = torch.empty(n, v.shape[1], dtype=torch.float64)
    for i in range(n):
        without = masks[(masks >> i) & 1 == 0]
        phi[i] = (w[without, None] * (v[without | (1 << i)] - v[without])).sum(0)
    return phi, torch.zeros_like(phi), 2 ** n

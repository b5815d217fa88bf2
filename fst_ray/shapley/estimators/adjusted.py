"""``adjusted``: antithetic permutations, regression-adjusted by a model made for image grids."""

from __future__ import annotations

import math

import torch

from fst_ray.shapley.estimators.base import Estimate, mean_stderr, min_budget, need, random_ranks, register_estimator
from fst_ray.shapley.estimators.permutation import chain_marginals

POSITION_BINS = 16  # the position of a player in a permutation, in this many bins, for ``adjusted``'s model
RADIUS = 1  # ``adjusted``'s neighbourhood: the cells within this Chebyshev distance (1: the 8 around a cell)
COUNTS = (2 * RADIUS + 1) ** 2  # how many of them can come first: 0 .. COUNTS - 1


def _neighbours(n: int) -> list[list[int]]:
    """Each cell's neighbours within ``RADIUS`` on a square grid of n cells (row-major); none when n is not a
    square."""
    g = math.isqrt(n)
    if g * g != n:
        return [[] for _ in range(n)]
    steps = range(-RADIUS, RADIUS + 1)
    return [[(r + dr) * g + c + dc for dr in steps for dc in steps
             if (dr or dc) and 0 <= r + dr < g and 0 <= c + dc < g] for r, c in (divmod(i, g) for i in range(n))]


def _context(rank: torch.Tensor, neighbours: list[list[int]]) -> torch.Tensor:
    """``[P, n]`` each player's context in each permutation: its position bin and how many of its neighbours
    come before it, as one index ``bin * COUNTS + count`` (< ``POSITION_BINS * COUNTS``)."""
    p, n = rank.shape
    nb = torch.full((n, COUNTS - 1), -1)
    for i, js in enumerate(neighbours):
        nb[i, :len(js)] = torch.tensor(js, dtype=torch.long)
    before = (rank[:, nb.clamp_min(0)] < rank[:, :, None]) & (nb >= 0)  # [P, n, COUNTS - 1]
    return rank * POSITION_BINS // n * COUNTS + before.sum(2)


def _context_probability(n: int, neighbours: list[list[int]]) -> torch.Tensor:
    """``[n, POSITION_BINS * COUNTS]``: the probability of each context of each player in a uniform permutation (its
    position uniform on 0..n-1; given position r, its count of earlier neighbours hypergeometric: r of the
    other n-1 players come first, d of which are its neighbours)."""
    r = torch.arange(n, dtype=torch.float64)[:, None]
    k = torch.arange(COUNTS, dtype=torch.float64)[None, :]
    out = torch.zeros(n, POSITION_BINS * COUNTS, dtype=torch.float64)
    bins = torch.arange(n) * POSITION_BINS // n
    for d in {len(js) for js in neighbours}:
        ok = (k <= d) & (k <= r) & (r - k <= n - 1 - d)
        log_p = (math.lgamma(d + 1) - torch.lgamma(k + 1) - torch.lgamma(d - k + 1) + math.lgamma(n - d)
                 - torch.lgamma(r - k + 1) - torch.lgamma(n - d - r + k) - math.lgamma(n) + torch.lgamma(r + 1)
                 + torch.lgamma(n - r))
        hyper = torch.where(ok, log_p, torch.tensor(-math.inf)).exp() / n  # [n positions, COUNTS]
        per_bin = torch.zeros(POSITION_BINS, COUNTS, dtype=torch.float64).index_add_(0, bins, hyper).reshape(-1)
        out[[i for i, js in enumerate(neighbours) if len(js) == d]] = per_bin
    return out


@register_estimator("adjusted", min_budget=lambda n: 6 * n - 4, family="permutation")
def adjusted(game, budget: int, generator: torch.Generator) -> Estimate:
    """Antithetic permutations, regression-adjusted (Witter et al. 2025). A model f of how a marginal
    contribution deviates from its player's mean, given its context (the player's position bin and how many of
    its grid neighbours come before it) and pooled over players, is subtracted from every marginal
    contribution and its exact expectation under a uniform permutation added back. f is cross-fitted (each
    pair of permutations is adjusted by the f of the other pairs), so the estimate is unbiased whatever f is,
    and exact on additive games (f = 0); a mean-zero share of the adjustment is spread over the players so
    that the values add up to v(N) - v(empty) exactly. stderr = std of the adjusted pair means / sqrt(pairs).
    """
    n = game.n_players
    p = (budget - 2) // (2 * (n - 1))
    need(p >= 3, "adjusted", budget, min_budget("adjusted", n))
    neighbours = _neighbours(n)
    rank = random_ranks(p, n, generator)
    ranks = torch.cat([rank, n - 1 - rank])
    marg = chain_marginals(game, ranks)  # [2p, n, k]
    k = marg.shape[2]
    cells = POSITION_BINS * COUNTS
    ctx = _context(ranks, neighbours).view(2, p, n).transpose(0, 1).reshape(p, 2 * n)  # a pair's two chains
    m = marg.view(2, p, n, k).transpose(0, 1)  # [p, 2, n, k]
    t = m.sum(1)  # [p, n, k]: each player's marginals summed over the pair
    total = t.sum(0)
    ones = torch.ones(p, 2 * n, dtype=torch.float64)
    counts = torch.zeros(p, cells, dtype=torch.float64).scatter_add_(1, ctx, ones)  # [p, cells]
    sums = torch.zeros(p, cells, k, dtype=torch.float64).scatter_add_(1, ctx[..., None].expand(-1, -1, k),
                                                                      m.reshape(p, 2 * n, k))
    player = torch.arange(n).repeat(2)
    seen = torch.zeros(cells, n, dtype=torch.float64).index_put_((ctx.reshape(-1), player.repeat(p)),
                                                                 ones.reshape(-1), accumulate=True)

    def at_own_contexts(w: torch.Tensor) -> torch.Tensor:  # [p, n, k] -> [p, cells, k], summed over a pair's chains
        return torch.zeros(p, cells, k, dtype=torch.float64).scatter_add_(1, ctx[..., None].expand(-1, -1, k),
                                                                         w[:, player])

    # per context, the sum over the other pairs' chains of each player's mean over the other pairs:
    # (T - t_p) . (N - N_p) / (2 (p - 1)), T and N over all pairs, t_p and N_p pair p's own
    means = (torch.einsum("ik,ci->ck", total, seen) - torch.einsum("pik,ci->pck", t, seen)
             - at_own_contexts(total.expand(p, n, k)) + at_own_contexts(t)) / (2 * (p - 1))
    rest = (counts.sum(0) - counts)[..., None]
    f = torch.where(rest > 0, (sums.sum(0) - sums - means) / rest.clamp_min(1), 0.0)  # [p, cells, k]
    expected = torch.einsum("nc,pck->pnk", _context_probability(n, neighbours), f)  # E f per player
    fitted = f.gather(1, ctx[..., None].expand(-1, -1, k)).view(p, 2, n, k).mean(1)
    units = expected + m.mean(1) - fitted
    units = units - (expected - fitted).sum(1, keepdim=True) / n  # efficiency: sum_i units = v(N) - v(empty)
    phi, se = mean_stderr(units)
    return phi, se, 2 + 2 * p * (n - 1)

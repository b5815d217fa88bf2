"""Shapley value estimators for games on n players (see ``fst_ray.shapley.game``).

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

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

__all__ = ["ESTIMATORS", "min_budget", "exact", "official", "permutation", "antithetic", "adjusted", "kernel",
           "leverage"]

Estimate = tuple[torch.Tensor, torch.Tensor, int]


def evaluate(game, coalitions: torch.Tensor) -> torch.Tensor:
    """``[m, k]`` float64 CPU values of ``coalitions`` (a one-output game gives k = 1)."""
    v = torch.as_tensor(game(coalitions), dtype=torch.float64).cpu()
    return v.reshape(coalitions.shape[0], -1)


def _shapley_weight(n: int, s: torch.Tensor) -> torch.Tensor:
    """s! (n-s-1)! / n!: the weight of a coalition of size s (not holding i) in phi_i."""
    s = s.double()
    return torch.exp(torch.lgamma(s + 1) + torch.lgamma(n - s) - math.lgamma(n + 1))


def _need(ok: bool, method: str, budget: int, need: int) -> None:
    if not ok:
        raise ValueError(f"{method}: budget {budget} is below its minimum {need} evaluations for this game")


def min_budget(method: str, n: int) -> int:
    """The fewest evaluations ``method`` accepts on n players."""
    return {"exact": 2 ** n if n <= 24 else 2 ** 62, "official": 4 * n, "permutation": 2 * n,
            "antithetic": 4 * n - 2, "adjusted": 6 * n - 4}.get(method, 2 * n + 2)


def exact(game, budget: int, generator: torch.Generator) -> Estimate:
    n = game.n_players
    _need(n <= 24 and 2 ** n <= budget, "exact", budget, min_budget("exact", n))
    masks = torch.arange(2 ** n)
    bits = ((masks[:, None] >> torch.arange(n)) & 1).bool()
    v = evaluate(game, bits)
    w = _shapley_weight(n, bits.sum(1))
    phi = torch.empty(n, v.shape[1], dtype=torch.float64)
    for i in range(n):
        without = masks[(masks >> i) & 1 == 0]
        phi[i] = (w[without, None] * (v[without | (1 << i)] - v[without])).sum(0)
    return phi, torch.zeros_like(phi), 2 ** n


def _random_ranks(rows: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """``[rows, n]`` uniformly random permutations, as each player's position (rank)."""
    return torch.rand(rows, n, generator=generator).argsort(1).argsort(1)


def _mean_stderr(units: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard error over the first axis of i.i.d. units."""
    return units.mean(0), units.std(0) / math.sqrt(units.shape[0])


def official(game, budget: int, generator: torch.Generator) -> Estimate:
    n = game.n_players
    m = budget // (2 * n)
    _need(m >= 2, "official", budget, min_budget("official", n))
    rank = _random_ranks(n * m, n, generator)
    cell = torch.arange(n).repeat_interleave(m)
    rows = torch.arange(n * m)
    without = rank < rank[rows, cell][:, None]
    with_cell = without.clone()
    with_cell[rows, cell] = True
    v = evaluate(game, torch.cat([with_cell, without]))
    delta = (v[: n * m] - v[n * m:]).view(n, m, -1)
    phi, se = _mean_stderr(delta.transpose(0, 1))
    return phi, se, 2 * n * m


def _chain_marginals(game, rank: torch.Tensor) -> torch.Tensor:
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


def permutation(game, budget: int, generator: torch.Generator) -> Estimate:
    n = game.n_players
    p = (budget - 2) // (n - 1)
    _need(p >= 2, "permutation", budget, min_budget("permutation", n))
    phi, se = _mean_stderr(_chain_marginals(game, _random_ranks(p, n, generator)))
    return phi, se, 2 + p * (n - 1)


def antithetic(game, budget: int, generator: torch.Generator) -> Estimate:
    n = game.n_players
    p = (budget - 2) // (2 * (n - 1))
    _need(p >= 2, "antithetic", budget, min_budget("antithetic", n))
    rank = _random_ranks(p, n, generator)
    marg = _chain_marginals(game, torch.cat([rank, n - 1 - rank]))
    phi, se = _mean_stderr((marg[:p] + marg[p:]) / 2)
    return phi, se, 2 + 2 * p * (n - 1)


# -- antithetic permutations, regression-adjusted ------------------------------------------------------

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
    _need(p >= 3, "adjusted", budget, min_budget("adjusted", n))
    neighbours = _neighbours(n)
    rank = _random_ranks(p, n, generator)
    ranks = torch.cat([rank, n - 1 - rank])
    marg = _chain_marginals(game, ranks)  # [2p, n, k]
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
    phi, se = _mean_stderr(units)
    return phi, se, 2 + 2 * p * (n - 1)


# -- paired kernel regression ---------------------------------------------------------------------------


SIZE_EXPONENT = {"kernel": 1.0, "leverage": 0.0}  # draw sizes s with probability ∝ ((n-1)/(s(n-s)))^a


def _half_size_mass(n: int, exponent: float) -> tuple[np.ndarray, np.ndarray]:
    """Half-sizes h = 1..n//2 and their mass ∝ the Shapley kernel's ((n-1)/(h(n-h)))^exponent, times the
    pair's two sizes h and n-h (n/2 counts once)."""
    half = np.arange(1, n // 2 + 1)
    return half, ((n - 1) / (half * (n - half))) ** exponent * np.where(2 * half == n, 1.0, 2.0)


def kernel_half_sizes(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Half-sizes h = 1..n//2 and the probability that a coalition drawn from the Shapley kernel (size law
    ∝ (n-1)/(s(n-s)), s = 1..n-1) has size h or n-h."""
    half, mass = _half_size_mass(n, 1.0)
    return half, mass / mass.sum()


def _size_plan(n: int, budget: int, proposal: str) -> tuple[list[int], np.ndarray, np.ndarray, int]:
    """Border trick over half-sizes h = 1..n//2 (a pair holds sizes h and n-h).

    Returns (enumerated half-sizes, sampled half-sizes, their draw probabilities, budget left for draws).
    A half-size is enumerated when the expected draws of it reach its number of coalitions.
    """
    half, mass = _half_size_mass(n, SIZE_EXPONENT[proposal])
    twice = np.where(2 * half == n, 1.0, 2.0)
    count = np.array([float(math.comb(n, h)) for h in half])
    cost = count * twice
    left = budget - 2
    sampled = np.ones(len(half), dtype=bool)
    while sampled.any():
        pi = mass * sampled / mass[sampled].sum()
        move = sampled & (pi * left / 2 >= count) & (cost <= left)
        if not move.any():
            break
        left -= int(cost[move].sum())
        sampled &= ~move
    enumerated = [int(h) for h in half[~sampled]]
    pi = mass * sampled
    return enumerated, half[sampled], pi[sampled] / max(pi.sum(), 1e-300), left


def _draw_pairs(n: int, halves: np.ndarray, probs: np.ndarray, slots: int, generator: torch.Generator):
    """Draw complementary pairs until ``slots`` distinct coalitions are used.

    Returns (unique coalitions [u, n] bool, draw half-size [D], index of S [D], index of N\\S [D]).
    """
    seen: dict[bytes, int] = {}
    rows: list[np.ndarray] = []
    draw_h, draw_s, draw_c = [], [], []
    probs_t = torch.as_tensor(probs, dtype=torch.float64)
    full = not len(probs)
    while not full and len(seen) < slots:
        batch = (slots - len(seen)) // 2 + 8
        hs = halves[torch.multinomial(probs_t, batch, replacement=True, generator=generator).numpy()]
        members = (_random_ranks(batch, n, generator) < torch.as_tensor(hs)[:, None]).numpy()
        progress = False
        for h, s in zip(hs, members):
            keys = (np.packbits(s).tobytes(), np.packbits(~s).tobytes())
            new = sum(k not in seen for k in keys)
            if len(seen) + new > slots:
                full = True
                break
            idx = []
            for key, row in zip(keys, (s, ~s)):
                if key not in seen:
                    seen[key] = len(rows)
                    rows.append(row)
                idx.append(seen[key])
            draw_h.append(int(h))
            draw_s.append(idx[0])
            draw_c.append(idx[1])
            progress = progress or new > 0
        full = full or not progress
    coalitions = torch.as_tensor(np.array(rows, dtype=bool).reshape(-1, n))
    return coalitions, np.array(draw_h, dtype=int), np.array(draw_s, dtype=int), np.array(draw_c, dtype=int)


def _enumerate_half(n: int, h: int) -> torch.Tensor:
    """Every coalition of size h and of size n-h (n/2 once)."""
    rows = torch.zeros(math.comb(n, h), n, dtype=torch.bool)
    for r, members in enumerate(itertools.combinations(range(n), h)):
        rows[r, list(members)] = True
    return rows if 2 * h == n else torch.cat([rows, ~rows])


def _paired_regression(game, budget: int, generator: torch.Generator, proposal: str) -> Estimate:
    n = game.n_players
    _need(budget >= min_budget(proposal, n), proposal, budget, min_budget(proposal, n))
    if n <= 24 and budget >= 2 ** n:
        return exact(game, budget, generator)
    enumerated, halves, probs, left = _size_plan(n, budget, proposal)
    sampled, draw_h, draw_s, draw_c = _draw_pairs(n, halves, probs, left, generator)
    fixed = [_enumerate_half(n, h) for h in enumerated]
    z = torch.cat(fixed + [sampled]) if fixed else sampled
    n_fixed = z.shape[0] - sampled.shape[0]
    ends = torch.stack([torch.zeros(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool)])
    v = evaluate(game, torch.cat([ends, z]))
    v0, delta = v[0], v[1] - v[0]

    size = z.sum(1).double()
    kernel_mass = (n - 1) / (size * (n - size))  # mu(S) * C(n, |S|)
    comb = torch.tensor([float(math.comb(n, int(s))) for s in size.tolist()], dtype=torch.float64)
    weight = torch.zeros(z.shape[0], dtype=torch.float64)
    weight[:n_fixed] = kernel_mass[:n_fixed] / comb[:n_fixed]
    d = len(draw_h)
    if d:
        pi = dict(zip(halves.tolist(), probs.tolist()))
        per_draw = torch.tensor([(n - 1) / (h * (n - h)) / (d * pi[h]) / (2 if 2 * h == n else 1)
                                 for h in draw_h.tolist()], dtype=torch.float64)
        s_idx = torch.as_tensor(draw_s) + n_fixed
        c_idx = torch.as_tensor(draw_c) + n_fixed
        weight.index_add_(0, s_idx, per_draw)
        weight.index_add_(0, c_idx, per_draw)

    x = z.double() - size[:, None] / n
    y = v[2:] - v0 - size[:, None] / n * delta
    h_mat = x.T @ (weight[:, None] * x)
    a_inv = torch.linalg.pinv(h_mat + h_mat.diagonal().mean() / n, hermitian=True)
    beta = a_inv @ (x.T @ (weight[:, None] * y))
    phi = delta / n + beta
    if d < 2:
        _need(not len(halves), proposal, budget, min_budget(proposal, n))
        return phi, torch.zeros_like(phi), 2 + z.shape[0]
    resid = y - x @ beta
    x_s = x[s_idx]
    hat = 2 * per_draw * ((x_s @ a_inv) * x_s).sum(1)  # a pair's share of the fit (x of N\S is -x of S)
    psi = (a_inv @ (x_s * (per_draw / (1 - hat).clamp_min(0.05).sqrt())[:, None]).T).T  # [D, n], HC2
    pair_resid = resid[s_idx] - resid[c_idx]  # [D, k]
    psi_sum = psi.T @ pair_resid
    var = ((psi ** 2).T @ pair_resid ** 2 - psi_sum ** 2 / d) * d / (d - 1)
    return phi, var.clamp_min(0).sqrt(), 2 + z.shape[0]


def kernel(game, budget: int, generator: torch.Generator) -> Estimate:
    return _paired_regression(game, budget, generator, "kernel")


def leverage(game, budget: int, generator: torch.Generator) -> Estimate:
    return _paired_regression(game, budget, generator, "leverage")


ESTIMATORS = {"exact": exact, "official": official, "permutation": permutation, "antithetic": antithetic,
              "adjusted": adjusted, "kernel": kernel, "leverage": leverage}

"""Paired kernel regression: ``kernel`` (KernelSHAP) and ``leverage``."""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from fst_ray.shapley.estimators.base import Estimate, evaluate, min_budget, need, random_ranks, register_estimator
from fst_ray.shapley.estimators.exact import exact

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
        members = (random_ranks(batch, n, generator) < torch.as_tensor(hs)[:, None]).numpy()
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
    need(budget >= min_budget(proposal, n), proposal, budget, min_budget(proposal, n))
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
    rank = int(torch.linalg.matrix_rank(h_mat, hermitian=True))
    if rank < n - 1:  # the fit would set the undetermined directions to 0, and its stderr would not show it
        raise ValueError(f"{proposal}: the coalitions drawn with budget {budget} leave {n - 1 - rank} of the {n} "
                         "values undetermined: raise the budget")
    a_inv = torch.linalg.pinv(h_mat + h_mat.diagonal().mean() / n, hermitian=True)
    beta = a_inv @ (x.T @ (weight[:, None] * y))
    phi = delta / n + beta
    if d < 2:
        need(not len(halves), proposal, budget, min_budget(proposal, n))
        return phi, torch.zeros_like(phi), 2 + z.shape[0]
    resid = y - x @ beta
    x_s = x[s_idx]
    hat = 2 * per_draw * ((x_s @ a_inv) * x_s).sum(1)  # a pair's share of the fit (x of N\S is -x of S)
    psi = (a_inv @ (x_s * (per_draw / (1 - hat).clamp_min(0.05).sqrt())[:, None]).T).T  # [D, n], HC2
    pair_resid = resid[s_idx] - resid[c_idx]  # [D, k]
    psi_sum = psi.T @ pair_resid
    var = ((psi ** 2).T @ pair_resid ** 2 - psi_sum ** 2 / d) * d / (d - 1)
    return phi, var.clamp_min(0).sqrt(), 2 + z.shape[0]


@register_estimator("kernel", min_budget=lambda n: 3 * n + 2, family="regression")
def kernel(game, budget: int, generator: torch.Generator) -> Estimate:
    """Paired KernelSHAP, coalition sizes drawn ∝ the Shapley kernel's mass."""
    return _paired_regression(game, budget, generator, "kernel")


@register_estimator("leverage", min_budget=lambda n: 3 * n + 2, family="regression")
def leverage(game, budget: int, generator: torch.Generator) -> Estimate:
    """Paired KernelSHAP, coalition sizes drawn uniformly (leverage-score sampling, Musco & Witter 2025)."""
    return _paired_regression(game, budget, generator, "leverage")

"""Amortised Shapley maps (FastSHAP, Jethani et al. 2022): an explainer network, trained on game evaluations of
training images (no reference maps needed), that outputs a map in one forward pass.

    data = sample_games(games, pairs, generator)          # m = 2 * pairs coalitions per image, m + 2 evaluations
    explainer = fit_explainer(images, data, grid)          # FastSHAP's objective on those evaluations
    phi = explain(explainer, images, data.empty, data.full)  # [N, n, k], efficient exactly

The objective is the Shapley kernel's weighted least squares (whose solution, per image, is the Shapley values):
coalitions drawn with the kernel's size law, in complementary pairs, and the explainer's output projected onto
the efficiency constraint (additive efficient normalisation). Its error on held-out images against a reference
is measured in ``bench/shapley.py`` (f) (docs/benchmarks.md); no per-image budget buys it down, so it is a
fast path, not an estimator, and ``auto`` never runs it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from fst_ray.shapley.estimators.base import evaluate, random_ranks
from fst_ray.shapley.estimators.regression import kernel_half_sizes

__all__ = ["GameSamples", "Explainer", "kernel_pairs", "sample_games", "fit_explainer", "explain"]


def kernel_pairs(n: int, pairs: int, generator: torch.Generator) -> torch.Tensor:
    """``[2 * pairs, n]`` bool: coalitions S with |S| drawn from the Shapley kernel's size law (given the size,
    uniform), each followed by its complement N \\ S."""
    half, probs = kernel_half_sizes(n)
    h = torch.as_tensor(half)[torch.multinomial(torch.as_tensor(probs), pairs, replacement=True,
                                                generator=generator)]
    flip = torch.rand(pairs, generator=generator) < 0.5  # S of size h or n - h: both halves of a pair are drawn
    s = random_ranks(pairs, n, generator) < torch.where(flip, n - h, h)[:, None]
    return torch.stack([s, ~s], 1).reshape(2 * pairs, n)


@dataclass
class GameSamples:
    """Evaluations of N games (one per image) with k outputs: ``coalitions [N, m, n]`` bool, ``values
    [N, m, k]``, ``empty [N, k]`` = v(empty), ``full [N, k]`` = v(N); ``n_evals`` = N (m + 2)."""

    coalitions: torch.Tensor
    values: torch.Tensor
    empty: torch.Tensor
    full: torch.Tensor

    @property
    def n_evals(self) -> int:
        return self.values.shape[0] * (self.values.shape[1] + 2)


def sample_games(games: list, pairs: int, generator: torch.Generator) -> GameSamples:
    """Evaluate each game (``ImageGame``-like, same n and k) on v(empty), v(N) and ``2 * pairs`` kernel pairs."""
    n = games[0].n_players
    cols, vals, ends = [], [], []
    for game in games:
        z = kernel_pairs(n, pairs, generator)
        v = evaluate(game, torch.cat([torch.zeros(1, n, dtype=torch.bool), torch.ones(1, n, dtype=torch.bool), z]))
        cols.append(z)
        vals.append(v[2:])
        ends.append(v[:2])
    ends_t = torch.stack(ends)
    return GameSamples(torch.stack(cols), torch.stack(vals), ends_t[:, 0], ends_t[:, 1])


class Explainer(nn.Module):
    """``images [b, 3, H, W]`` -> unnormalised maps ``[b, grid * grid, k]`` (one channel per explained model).

    A small fully convolutional network: features at 1/4 resolution pooled onto the grid, a global context
    vector added back to every cell, a 3x3 head per cell.
    """

    def __init__(self, grid: int, outputs: int, width: int = 32):
        super().__init__()
        self.grid = grid
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.GELU())
        self.context = nn.Linear(2 * width, 2 * width)
        self.head = nn.Sequential(nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.GELU(),
                                  nn.Conv2d(2 * width, outputs, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        f = nn.functional.adaptive_avg_pool2d(self.features(images), self.grid)
        f = f + self.context(f.mean((2, 3)))[:, :, None, None]
        return self.head(f).flatten(2).transpose(1, 2)


def _efficient(raw: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    """Additive efficient normalisation: ``raw [b, n, k]`` shifted so that each map sums to ``total [b, k]``."""
    return raw + ((total - raw.sum(1)) / raw.shape[1])[:, None]


def fit_explainer(images: torch.Tensor, data: GameSamples, grid: int, epochs: int = 60, lr: float = 2e-3,
                  batch: int = 32, width: int = 32, holdout: float = 0.1, seed: int = 0) -> Explainer:
    """Fit an :class:`Explainer` to ``data`` (the games of ``images [N, 3, H, W]``) by FastSHAP's objective:
    mean over images and sampled S of (v(S) - v(empty) - sum_{i in S} phi_i)^2, phi efficient. Each output is
    scaled by its RMS of v(S) - v(empty) while fitting (so that no model dominates); the maps come out in the
    game's units. A ``holdout`` share of the images measures the objective after every epoch; the weights of
    the best epoch are kept (``explainer.best_epoch``, ``explainer.holdout_loss``), as FastSHAP does."""
    torch.manual_seed(seed)
    k = data.values.shape[2]
    gain = data.values - data.empty[:, None]
    scale = gain.pow(2).mean((0, 1)).sqrt().clamp_min(1e-12).float()
    explainer = Explainer(grid, k, width)
    explainer.register_buffer("scale", scale)
    z = data.coalitions.float()
    target = gain.float() / scale
    total = (data.full - data.empty).float() / scale

    def loss(idx: torch.Tensor) -> torch.Tensor:
        phi = _efficient(explainer(images[idx]), total[idx])
        return (torch.bmm(z[idx], phi) - target[idx]).pow(2).mean()

    order = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(images), generator=order)
    held, fit = perm[:int(holdout * len(images))], perm[int(holdout * len(images)):]
    opt = torch.optim.AdamW(explainer.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * math.ceil(len(fit) / batch))
    best = (math.inf, 0, None)
    for epoch in range(1, epochs + 1):
        explainer.train()
        for idx in fit[torch.randperm(len(fit), generator=order)].split(batch):
            opt.zero_grad()
            loss(idx).backward()
            opt.step()
            sched.step()
        if len(held):
            explainer.eval()
            with torch.no_grad():
                held_loss = float(sum(loss(idx) * len(idx) for idx in held.split(batch)) / len(held))
            if held_loss < best[0]:
                best = (held_loss, epoch, {k: v.clone() for k, v in explainer.state_dict().items()})
    if best[2] is not None:
        explainer.load_state_dict(best[2])
    explainer.best_epoch, explainer.holdout_loss = (best[1], best[0]) if best[2] is not None else (epochs, math.nan)
    return explainer.eval()


@torch.no_grad()
def explain(explainer: Explainer, images: torch.Tensor, empty: torch.Tensor, full: torch.Tensor) -> torch.Tensor:
    """``[N, n, k]`` float64 maps of ``images [N, 3, H, W]``, each summing exactly to v(N) - v(empty) (``full``,
    ``empty``: ``[N, k]``, the only game evaluations it needs: 2 per image)."""
    raw = explainer(images).double() * explainer.scale.double()
    return _efficient(raw, (full - empty).double())

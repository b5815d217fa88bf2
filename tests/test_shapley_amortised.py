"""The amortised explainer (FastSHAP): its sampler, its exact efficiency, and that it learns the Shapley values of
a family of image games from game evaluations alone."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fst_ray.shapley.amortised import explain, fit_explainer, kernel_pairs, sample_games
from fst_ray.shapley.estimators.regression import kernel_half_sizes


class CellMeans:
    """An additive game per image: v(S) = sum over cells i in S of (mean of channel c over cell i), for c = 0
    and -1 x channel 1: the Shapley values are the cell means themselves."""

    def __init__(self, image: torch.Tensor, grid: int):
        cells = torch.nn.functional.adaptive_avg_pool2d(image[None], grid)[0].flatten(1).double()  # [3, n]
        self.phi = torch.stack([cells[0], -cells[1]], 1)  # [n, 2]
        self.n_players, self.outputs, self.calls = grid * grid, ("a", "b"), 0

    def __call__(self, coalitions: torch.Tensor) -> torch.Tensor:
        self.calls += coalitions.shape[0]
        return coalitions.double() @ self.phi


def _images(count: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.interpolate(torch.rand(count, 3, 8, 8, generator=g), size=32, mode="bilinear")


def test_kernel_pairs_are_complements_with_the_kernels_size_law():
    n, pairs = 16, 20_000
    z = kernel_pairs(n, pairs, torch.Generator().manual_seed(0))
    assert z.shape == (2 * pairs, n)
    assert bool((z[0::2] == ~z[1::2]).all())
    size = z[0::2].sum(1).numpy()
    half, probs = kernel_half_sizes(n)
    observed = np.array([np.mean(np.minimum(size, n - size) == h) for h in half])
    assert np.abs(observed - probs).max() < 4 * np.sqrt(probs.max() / pairs)
    assert 0.4 < np.mean(size > n / 2) / max(np.mean(size < n / 2), 1e-9) < 2.5  # big and small S both come first


def test_samples_cost_m_plus_two_evaluations_and_maps_are_efficient():
    games = [CellMeans(im, 4) for im in _images(6, 1)]
    data = sample_games(games, pairs=5, generator=torch.Generator().manual_seed(0))
    assert data.n_evals == 6 * 12 and sum(g.calls for g in games) == data.n_evals
    explainer = fit_explainer(_images(6, 1), data, grid=4, epochs=1)
    phi = explain(explainer, _images(6, 1), data.empty, data.full)
    assert phi.shape == (6, 16, 2)
    torch.testing.assert_close(phi.sum(1), data.full - data.empty)


@pytest.mark.slow
def test_explainer_learns_shapley_values_of_held_out_images():
    grid = 4
    train, test = _images(256, 2), _images(32, 3)
    data = sample_games([CellMeans(im, grid) for im in train], pairs=8, generator=torch.Generator().manual_seed(0))
    explainer = fit_explainer(train, data, grid, epochs=40)
    assert 1 <= explainer.best_epoch <= 40 and math.isfinite(explainer.holdout_loss)
    held = [CellMeans(im, grid) for im in test]
    truth = torch.stack([g.phi for g in held])
    ends = torch.stack([g(torch.stack([torch.zeros(16, dtype=torch.bool), torch.ones(16, dtype=torch.bool)]))
                        for g in held])
    phi = explain(explainer, test, ends[:, 0], ends[:, 1])
    rel = float(((phi - truth) ** 2).sum() / ((truth - truth.mean(1, keepdim=True)) ** 2).sum()) ** 0.5
    assert rel < 0.25, rel

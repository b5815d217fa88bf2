"""Known answers, fast layer: oracle models whose exact Shapley maps are known in closed form, put through the
estimator, the noise ceilings, H1's Q summary and the reading rule, must read back the answer planted in them.

An oracle is additive in the grid's cells: the logit of class k is Σ_c W[k, c] · m_c(x), m_c the mean of one
colour channel over cell c, so under the zero baseline the exact φ_c = W[k, c] · m_c(x) (a linear game: every
estimator is exact on it, and the maps' halves agree, ceiling 1). Each model reads a channel of its own, drawn
independently of the others: had they read the same pixels, every map would scale with the same cell
brightness, and a detector that weighs every cell alike would share the encoders' bright cells (measured: H1
then read "contradicts", gap -0.008, CI -0.014..-0.0004: a real dependence through the image, not a null).
Where each model's weight lies plants H1's answer:

- H1 holds: the detector weighs only the ring of boundary cells, the source and target encoders only the face
  interior (different cells each) -> the detector's evidence lies outside the source/target cells: gap > 0;
- H1 fails: the detector weighs the interior cells the encoders use -> gap < 0;
- null: the detector weighs every cell alike -> its map is the image's cell means, unrelated to where the
  encoders look: the gap's CI covers 0 ("inconclusive"; a "supports" here is the worst outcome).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fst_ray import metrics
from fst_ray.hypotheses.config import HypothesisConfig
from fst_ray.hypotheses.h1 import q_summary
from fst_ray.hypotheses.readings import read_h1
from fst_ray.hypotheses.results import Ceiling, H1Result
from fst_ray.shapley import ImageGame
from fst_ray.shapley.estimate import estimate_maps

G, SIDE, N_IDS, PER_ID = 4, 16, 12, 2
INTERIOR = [5, 6, 9, 10]
RING = [c for c in range(G * G) if c not in INTERIOR]


class CellOracle(nn.Module):
    """Logits ``[B, K]`` = ``W [K, G²]`` applied to the cell means of channel ``channel`` of ``[B, 3, S, S]``."""

    def __init__(self, weights: np.ndarray, channel: int):
        super().__init__()
        self.channel = channel
        self.register_buffer("w", torch.as_tensor(weights, dtype=torch.float32))

    def cells(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.adaptive_avg_pool2d(x[:, self.channel:self.channel + 1], G).flatten(1)  # [B, G²]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cells(x) @ self.w.T


def _weights(cells: list[int], k: int = 2, cls: int = 1) -> np.ndarray:
    w = np.zeros((k, G * G))
    w[cls, cells] = 1.0
    return w


def _images() -> tuple[list[torch.Tensor], list[str]]:
    rng = np.random.default_rng(0)
    images, clusters = [], []
    for i in range(N_IDS):
        for _ in range(PER_ID):
            cells = rng.uniform(0.2, 1.0, (3, G, G))  # each channel's cells drawn on their own
            images.append(torch.as_tensor(np.kron(cells, np.ones((SIDE // G, SIDE // G))), dtype=torch.float32))
            clusters.append(f"{i:03d}")
    return images, clusters


def _read(detector_cells: list[int]) -> tuple[str, float, tuple[float, float], dict]:
    """H1's reading of one planted scenario, through the estimator, the ceilings, q_summary and read_h1."""
    models = {"source": CellOracle(_weights(INTERIOR[:2], cls=1), 0),
              "target": CellOracle(_weights(INTERIOR[2:], cls=1), 1),
              "det": CellOracle(_weights(detector_cells, cls=1), 2)}
    images, clusters = _images()
    maps = {r: [] for r in models}
    halves = {r: ([], []) for r in models}
    for j, image in enumerate(images):
        def game_of(names, image=image):
            return ImageGame({n: models[n] for n in names}, image, {n: 1 for n in names}, grid=G)
        out, _ = estimate_maps(game_of, {r: 1000 * j + i for i, r in enumerate(models)}, budget=160)
        for r, m in out.items():
            maps[r].append(metrics.unit_norm(m["phi"].numpy()))
            halves[r][0].append(m["phi_a"].numpy())
            halves[r][1].append(m["phi_b"].numpy())
            exact = models[r].w[1].numpy() * models[r].cells(image[None])[0].numpy()
            assert np.allclose(m["phi"].numpy(), exact, atol=1e-5), r  # the closed form
    cfg = HypothesisConfig(n_boot=400)
    ceilings = {}
    for r in models:
        c = metrics.ceiling_summary(np.stack(halves[r][0]), np.stack(halves[r][1]), clusters, n_boot=200)
        ceilings[r] = Ceiling(**c, readable=c["centred"] >= metrics.READABLE_CEILING)
    q = q_summary(*(np.stack(maps[r]) for r in ("source", "target", "det")), cfg, clusters, ceilings)
    result = H1Result(variant=cfg.variant, tau=list(cfg.tau), q={"Planted": {"oracle": q}},
                      protocol={"explained": "raw", "coalitions": "per_model"})
    (reading,) = read_h1(result)
    return reading.verdict, q.gap, q.gap_ci, ceilings


@pytest.mark.parametrize("detector_cells, expected", [(RING, "supports"), (INTERIOR, "contradicts"),
                                                      (list(range(G * G)), "inconclusive")],
                         ids=["H1 holds: artifacts off the identity", "H1 fails: artifacts on the identity",
                              "null: the detector looks everywhere"])
def test_h1_reads_back_the_answer_planted_in_oracle_models(detector_cells, expected):
    verdict, gap, ci, ceilings = _read(detector_cells)
    assert all(c.readable and c.centred > 0.99 for c in ceilings.values())  # exact maps: ceilings 1
    assert verdict == expected, (verdict, gap, ci)
    assert (gap > 0) == (expected == "supports") or expected == "inconclusive"

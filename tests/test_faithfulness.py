"""Attributions against ground truth (fst_ray.faithfulness), the baseline check and the scene balance: pure
functions and exact Shapley values of small models whose evidence is known."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch
from torch import nn

from fst_ray import faithfulness as fa
from fst_ray import metrics
from fst_ray.data import align
from fst_ray.shapley import ImageGame, estimate
from fst_ray.synth import render
from fst_ray.train.labels import scene_balance

G, S = 4, 32


class RegionReader(nn.Module):
    """A 'detector' that reads only the pixels of ``region`` (bool [S, S]): fake logit = Σ w·pixel there."""

    def __init__(self, region: np.ndarray, seed: int = 0):
        super().__init__()
        w = torch.rand(S, S, generator=torch.Generator().manual_seed(seed)) + 0.1
        self.register_buffer("w", w * torch.from_numpy(region).float())

    def forward(self, x):
        s = (x.mean(1) * self.w).sum((1, 2))
        return torch.stack([-s, s], 1)


def _region() -> np.ndarray:
    region = np.zeros((S, S), bool)
    region[8:24, 8:16] = True  # cells (1..2, 1): two whole cells of the 4x4 grid
    region[8:12, 16:24] = True  # and half of cell (1, 2)
    return region


def _exact_map(model, image, grid=G):
    game = ImageGame(model, image, 1, grid=grid, baseline="zero")
    return game, estimate(game, 2 ** (grid * grid), "exact").values.numpy()


def test_cell_coverage_is_the_share_of_each_cells_pixels():
    cover = fa.cell_coverage(_region(), G).reshape(G, G)
    assert cover[1, 1] == cover[2, 1] == 1.0 and cover[1, 2] == 0.5 and cover.sum() == 2.5
    assert fa.area_share(cover.reshape(1, -1))[0] == pytest.approx(_region().mean())
    # sizes that the grid does not divide: the game's own pixel-to-cell map, and the shares still add up
    odd = np.zeros((30, 30), np.uint8)
    odd[:, :13] = 255  # cells take pixel columns 0-7, 8-14, 15-22, 23-29
    c = fa.cell_coverage(odd, 4).reshape(4, 4)
    assert np.allclose(c[:, 0], 1.0) and np.allclose(c[:, 1], 5 / 7) and np.allclose(c[:, 2:], 0.0)


def test_a_model_reading_only_the_mask_puts_all_positive_mass_inside_and_points_into_it():
    region = np.zeros((S, S), bool)
    region[8:24, 8:16] = True  # cells (1, 1) and (2, 1)
    region[8:16, 16:24] = True  # and cell (1, 2)
    image = torch.rand(3, S, S, generator=torch.Generator().manual_seed(1)) * 0.8 + 0.2
    _, phi = _exact_map(RegionReader(region), image)
    cover = fa.cell_coverage(region, G)
    assert np.allclose(phi[cover == 0], 0.0, atol=1e-9)  # exact Shapley: cells the model never reads get 0
    assert fa.mass_share(phi, cover)[0] == pytest.approx(1.0)
    assert fa.pointing(phi, cover)[0] == 1.0
    assert fa.pointing(phi, cover, k=3)[0] == 1.0  # its three best cells are the mask's three
    assert fa.pointing_chance(cover)[0] == pytest.approx(3 / 16)
    # a cell half inside counts half: mass there is split as the pixels are
    half = _region()
    _, phi_half = _exact_map(RegionReader(half), image)
    cover_half = fa.cell_coverage(half, G)
    share = np.maximum(phi_half, 0) @ cover_half / np.maximum(phi_half, 0).sum()
    assert fa.mass_share(phi_half, cover_half)[0] == pytest.approx(share) and share < 1
    # a map that ignores the region gets its area share, the chance level
    flat = np.ones(G * G)
    assert fa.mass_share(flat, cover)[0] == pytest.approx(fa.area_share(cover)[0])


def test_deletion_of_a_perfect_map_falls_faster_and_insertion_rises_faster_than_random():
    region = np.ones((S, S), bool)
    image = torch.rand(3, S, S, generator=torch.Generator().manual_seed(2))
    game, phi = _exact_map(RegionReader(region, seed=3), image)
    areas = {}
    for name, order in (("map", fa.map_order(phi)), ("random", fa.random_order(G * G, 5))):
        for kind in ("deletion", "insertion"):
            coalitions = torch.from_numpy(fa.curve_coalitions(order, kind, steps=8))
            values = game(coalitions).numpy()
            areas[name, kind] = fa.curve_area(values)
            # the curves run between the whole image and the all-baseline image
            ends = game(torch.tensor([[True] * (G * G), [False] * (G * G)])).numpy()
            assert values[0] == pytest.approx(ends[0 if kind == "deletion" else 1])
            assert values[-1] == pytest.approx(ends[1 if kind == "deletion" else 0])
    assert areas["map", "deletion"] < areas["random", "deletion"]
    assert areas["map", "insertion"] > areas["random", "insertion"]


def test_curve_coalitions_remove_or_add_cells_in_order():
    order = np.array([3, 0, 2, 1])
    dele = fa.curve_coalitions(order, "deletion", steps=4)
    ins = fa.curve_coalitions(order, "insertion", steps=4)
    assert dele.shape == ins.shape == (5, 4)
    assert dele[0].all() and not dele[-1].any() and not dele[1, 3] and dele[1, [0, 1, 2]].all()
    assert (ins == ~dele).all()
    assert fa.curve_area(np.array([1.0, 1.0, 1.0])) == 1.0 and fa.curve_area(np.array([0.0, 1.0])) == 0.5


def test_face_region_matches_the_synthetic_face_and_holds_the_template():
    rng = np.random.default_rng(0)
    ious = []
    for _ in range(20):
        face = render.sample_identity(rng)
        points, _ = render.landmarks(face, {"smile": 0.0}, (32.0, 32.0, 20.0, 0.0, 0.0))
        y, x = np.mgrid[0:64, 0:64]
        truth = ((x - 32.0) / (20 * face.face_rx)) ** 2 + ((y - 32.0) / (20 * face.face_ry)) ** 2 <= 1
        ours = fa.face_region(points, 64)
        ious.append((truth & ours).sum() / (truth | ours).sum())
    assert np.mean(ious) > 0.8
    for preset in align.PRESETS:
        points = align.template(128, preset=preset)
        region = fa.face_region(points, 128)
        assert all(region[int(round(p[1])), int(round(p[0]))] for p in points), preset
        assert 0.2 < region.mean() < 0.8, preset


def test_baseline_check_flags_a_baseline_the_model_already_calls_the_explained_class():
    phi = -np.abs(np.random.default_rng(0).normal(size=(5, 16)))
    degenerate = metrics.baseline_check(phi, [4.0] * 5, [0.2] * 5, [0.98] * 5, [0.55] * 5)
    assert degenerate["warning"] and degenerate["confident_share"] == 1.0 and degenerate["negative_sum_share"] == 1.0
    fine = metrics.baseline_check(-phi, [-3.0] * 5, [2.0] * 5, [0.05, 0.1, 0.95, 0.2, 0.1], [0.9] * 5)
    assert not fine["warning"] and fine["confident_share"] == 0.2 and fine["negative_cell_share"] == 0.0
    assert fine["why"] is None


def test_baseline_check_flags_a_removal_that_raises_the_explained_class_below_any_p_cut():
    """The demo's detectors: the black image scored *more* fake (p 0.81, logit 1.4) than the fakes explained (p
    0.54, logit 0.16) although p stays below 0.9; Σφ = v(whole) − v(black) < 0 in most maps. A fixed p cut
    misses it; comparing the two values (and the sign balance of Σφ) does not."""
    rng = np.random.default_rng(1)
    value_full = rng.normal(0.16, 0.3, size=20)
    value_empty = np.full(20, 1.43)
    phi = rng.normal(size=(20, 16)) + ((value_full - value_empty) / 16)[:, None]
    check = metrics.baseline_check(phi, value_empty, value_full, 1 / (1 + np.exp(-value_empty)),
                                   1 / (1 + np.exp(-value_full)))
    assert check["p_empty"] < metrics.CONFIDENT_BASELINE and check["warning"]
    assert "the all-baseline image scores 1.43" in check["why"] and "Σφ < 0" in check["why"]
    # half the maps with Σφ < 0 is enough, even where the means favour the images explained
    mixed = metrics.baseline_check(np.r_[-np.ones((10, 4)), 3 * np.ones((10, 4))], [0.0] * 20, [0.5] * 20,
                                   [0.5] * 20, [0.6] * 20)
    assert mixed["warning"] and mixed["why"] == "Σφ < 0 in 50% of the maps"


def test_scene_balance_gives_each_scenes_original_and_fakes_equal_weight():
    rows = pa.table({"source_id": ["A"] * 7 + ["B"] * 2 + ["C"] * 3,
                     "det_label": [0, 1, 1, 1, 1, 1, 1] + [0, 0] + [1, 1, 1]})
    w = {(s, d): x for s, d, x in scene_balance(rows)}
    assert w["A", 0] * 1 == pytest.approx(w["A", 1] * 6)  # one original frame weighs as its six fake frames
    assert w["B", 0] == w["C", 1] == 1.0  # one side only: nothing to balance
    per_row = [w[s, d] for s, d in zip(rows["source_id"].to_pylist(), rows["det_label"].to_pylist())]
    assert np.mean(per_row) == pytest.approx(1.0)


def test_a_degenerate_baseline_stops_the_readings_that_depend_on_it():
    """Where the removal is degenerate, Σφ < 0 whatever the evidence and Q's gap follows that sign: H1 makes no
    reading from it, whatever its CI says."""
    from fst_ray.hypotheses.readings import degenerate, read_h1
    from fst_ray.hypotheses.results import BaselineCheck, Ceiling, H1Result, QSummary

    def check(p, degenerate=True):
        sign = -1 if degenerate else 1
        return BaselineCheck(baseline="zero", value="logit", **metrics.baseline_check(
            sign * np.ones((3, 4)), [3.0 * -sign] * 3, [0.1] * 3, [p] * 3, [0.5] * 3))

    checks = {"detector": check(0.98), "source": check(0.01, degenerate=False)}
    assert degenerate(checks, ["source"]) is None
    why = degenerate(checks, ["source", "detector"])
    assert why.startswith("the zero baseline is degenerate") and "detector: " in why
    assert "p = 0.98 on the all-baseline image" in why and "Σφ < 0 in 100% of the maps" in why
    readable = Ceiling(centred=0.99, centred_ci=(0.98, 1.0), plain=0.99, n_images=3, n_clusters=3, readable=True)
    q = QSummary(mean=-0.1, ci=(-0.2, -0.05), baseline=0.0, n_images=3, gap=-0.1, gap_ci=(-0.2, -0.05),
                 noise_ceiling={r: readable for r in ("source", "target", "det")}, baseline_degenerate=why)

    def reading(q: QSummary):
        [r] = read_h1(H1Result(variant="official", tau=[0.6], q={"Deepfakes": {"a": q}},
                               protocol={"coalitions": "per_model"}))
        return r.verdict, r.why

    assert reading(q) == ("not read", why)
    assert reading(q.model_copy(update={"baseline_degenerate": None}))[0] == "contradicts"
    # under the source counterfactual the source encoder sees its own identity's frame: p ≈ 1 by design
    own = {"source": check(0.99).model_copy(update={"baseline": "source"})}
    assert degenerate(own, ["source"]) is None
    assert "try explain.baseline mean, blur, source" in degenerate(checks, ["detector"])
    # the background baseline's all-baseline image is real frames: a model that calls them fake is named so
    real = {"detector": check(0.98).model_copy(update={"baseline": "background"})}
    assert "other people's real frames, which the model gives the class explained" in degenerate(real, ["detector"])


def test_training_options_that_change_a_model_name_its_run(tmp_path):
    from fst_ray.hypotheses.pipeline import run_name
    from fst_ray.train.config import TrainConfig

    assert run_name("resnet18", "detectors", "raw", TrainConfig()) == "resnet18-detectors-raw"
    assert run_name("resnet18", "encoders", "raw", TrainConfig()) == "resnet18-encoders"  # no detectors in it
    assert run_name("resnet18", "detectors", None, TrainConfig(pretrained=True)) == "resnet18-detectors-all-imagenet"
    assert run_name("resnet18", "detectors", "raw", TrainConfig(scene_balance=True)).endswith("-scenebal")
    assert run_name("resnet18", "balanced", "raw", TrainConfig(scene_balance=True)) == "resnet18-balanced-raw"
    for name, content in (("a.pt", b"one"), ("b.pt", b"two"), ("a-copy.pt", b"one")):
        (tmp_path / name).write_bytes(content)
    a, b, a2 = (run_name("resnet18", "detectors", "raw", TrainConfig(weights=str(tmp_path / w)))
                for w in ("a.pt", "b.pt", "a-copy.pt"))
    assert a != b and a == a2 and a.startswith("resnet18-detectors-raw-w")  # named by the weights' content

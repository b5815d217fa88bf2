"""Estimator noise (fst_ray.metrics): noise ceilings from split halves, disattenuated cosines, Q's correction,
and a bootstrap that resamples clusters."""

from __future__ import annotations

import numpy as np
import pytest

from fst_ray import metrics

G2 = 64


def _maps(n: int, noise: float, seed: int):
    """True maps ``[n, G²]`` and two independent noisy half estimates of each."""
    rng = np.random.default_rng(seed)
    phi = rng.normal(size=(n, G2))
    return phi, phi + noise * rng.normal(size=phi.shape), phi + noise * rng.normal(size=phi.shape)


def test_exact_maps_have_ceiling_one_and_pure_noise_about_zero():
    phi, _, _ = _maps(50, 0.0, 0)
    assert metrics.noise_ceiling(phi, phi) == 1.0
    rng = np.random.default_rng(1)
    noise_a, noise_b = rng.normal(size=(200, G2)), rng.normal(size=(200, G2))
    assert metrics.noise_ceiling(noise_a, noise_b) < 0.05


def test_ceiling_predicts_the_cosine_of_two_independent_full_maps():
    """The Spearman–Brown ceiling from one pair of halves matches the mean cosine between two independent
    averaged maps (a second, independent estimate of the same images)."""
    phi, a, b = _maps(400, 1.5, 2)
    ceiling = metrics.noise_ceiling(a, b)
    rng = np.random.default_rng(3)  # a second estimate: the same true maps, fresh noise
    c, d = phi + 1.5 * rng.normal(size=phi.shape), phi + 1.5 * rng.normal(size=phi.shape)
    second = (c + d) / 2
    first = (a + b) / 2
    observed = metrics.split_half_cosine(first, second).mean()
    assert 0.2 < ceiling < 0.9
    assert abs(observed - ceiling) < 0.03


def test_corrected_delta_of_identical_maps_under_independent_noise_is_about_one():
    phi, a, b = _maps(400, 1.0, 4)
    rng = np.random.default_rng(5)
    # the "compressed" map: the same true map, estimated with its own independent noise
    c, d = phi + 1.0 * rng.normal(size=phi.shape), phi + 1.0 * rng.normal(size=phi.shape)
    raw, comp = (a + b) / 2, (c + d) / 2
    cos = metrics.split_half_cosine(raw, comp).mean()
    corrected = metrics.disattenuate(cos, metrics.noise_ceiling(a, b), metrics.noise_ceiling(c, d))
    assert cos < 0.85  # the plain cosine is visibly attenuated
    assert abs(corrected - 1.0) < 0.05


def test_q_correction_scales_the_gap_by_the_root_ceiling():
    assert metrics.q_corrected(0.05, 0.01, 0.25) == np.float64(0.04) / 0.5
    assert np.isnan(metrics.q_corrected(0.05, 0.01, 0.0))


def test_cluster_bootstrap_is_wider_than_frame_bootstrap_on_clustered_data():
    rng = np.random.default_rng(6)
    clusters = np.repeat(np.arange(10), 8)  # 10 videos, 8 frames each
    values = rng.normal(size=10)[clusters] + 0.1 * rng.normal(size=len(clusters))
    lo_f, hi_f = metrics.bootstrap_ci(values, seed=0)
    lo_c, hi_c = metrics.cluster_bootstrap_ci(values, clusters, seed=0)
    assert lo_c < values.mean() < hi_c
    assert (hi_c - lo_c) > 1.8 * (hi_f - lo_f)


def test_h2_difference_of_two_identical_detectors_covers_zero():
    """Two detectors with the same true maps, explained with independent noise: the paired difference of their
    gaps (each against its own baseline) has a CI that covers 0."""
    from fst_ray.hypotheses.h2 import paired_difference

    rng = np.random.default_rng(7)
    n, taus = 60, metrics.OFFICIAL_TAUS
    clusters = np.repeat(np.arange(15), 4)
    phi_s, phi_t, phi_d = (rng.normal(size=(n, G2)) for _ in range(3))
    gaps = []
    for k in range(2):
        noisy = phi_d + 0.5 * np.random.default_rng(10 + k).normal(size=phi_d.shape)
        q = metrics.q_curve(phi_s, phi_t, metrics.unit_norm(noisy), taus)
        gaps.append(q - metrics.q_baseline(phi_s, phi_t, metrics.unit_norm(noisy), taus, seed=k))
    mean, (lo, hi) = paired_difference(gaps[0], gaps[1], clusters, 1000, 0)
    assert lo <= 0.0 <= hi and lo < mean < hi


def test_budget_for_ceiling_matches_simulated_maps():
    """Noise variance ∝ 1/budget: the predicted budget for a ceiling of 0.9 gives 0.9 when simulated."""
    phi, a, b = _maps(400, 2.0, 8)  # noise sd 2 per half at "budget" 100 (50 per half)
    r0 = metrics.noise_ceiling(a, b)
    need = metrics.budget_for_ceiling(r0, 100, 0.9)
    scale = 2.0 * np.sqrt(100 / need)  # noise sd per half at the new budget
    rng = np.random.default_rng(9)
    a2, b2 = phi + scale * rng.normal(size=phi.shape), phi + scale * rng.normal(size=phi.shape)
    assert need > 100 and abs(metrics.noise_ceiling(a2, b2) - 0.9) < 0.02
    assert metrics.budget_for_ceiling(1.0, 100) == 0.0 and metrics.budget_for_ceiling(0.0, 100) == float("inf")


class _TripleGame:
    """A game on 16 players with main effects and third-order interactions, whose Shapley values are known
    exactly (each triple's weight splits equally among its members) and which the regression estimators
    cannot fit without error (they are exact only up to second order)."""

    n_players = 16

    def __init__(self, seed: int, main: np.ndarray | None = None):
        rng = np.random.default_rng(seed)
        self.main = rng.normal(size=16) if main is None else main
        self.triples = np.array([rng.choice(16, 3, replace=False) for _ in range(40)])
        self.weights = 1.5 * rng.normal(size=40)

    def __call__(self, coalitions):
        x = np.asarray(coalitions, dtype=np.float64)
        return x @ self.main + np.prod(x[:, self.triples], axis=2) @ self.weights

    def shapley(self) -> np.ndarray:
        phi = self.main.copy()
        for t, w in zip(self.triples, self.weights):
            phi[t] += w / 3
        return phi


def _estimated(games: list, budget: int, seed: int):
    """Per game, the map (mean of two independent halves, as fst-ray stores it) and its halves ``[N, 16]``."""
    from fst_ray.shapley.estimate import estimate

    a, b = (np.array([estimate(g, budget // 2, "leverage", seed=10_000 * seed + 2 * i + half).values.numpy()
                      for i, g in enumerate(games)]) for half in (0, 1))
    return (a + b) / 2, (a, b)


def _clusters(n: int) -> list[str]:
    return [f"id{i // 3}" for i in range(n)]  # three frames per source identity


def test_h3_corrected_delta_of_a_model_blind_to_compression_is_about_one_at_any_budget():
    """One game per image, the same at raw, c23 and c40 (a model whose maps do not change with compression),
    each compression's map estimated independently: plain δ falls with the budget, corrected δ stays ≈ 1."""
    games = [_TripleGame(seed) for seed in range(30)]
    for budget in (100, 120, 400):  # 100: each half at leverage's minimum (3n + 2 = 50 on 16 players)
        maps, halves = zip(*(_estimated(games, budget, seed=c) for c in range(3)))
        s = metrics.stability_with_noise(maps, halves, _clusters(30), n_boot=500)
        assert s["delta"] < 0.99, budget  # noise is there
        assert s["corrected_ci"][0] < 1 < s["corrected_ci"][1], (budget, s)
        assert abs(s["corrected"] - 1) < (0.15 if budget == 100 else 0.03), (budget, s)
        if budget > 100:  # noise explains all of the drop; at the minimum the ceiling overstates (metrics.py)
            assert abs(s["delta"] - s["delta_ceiling"]) < 0.02, (budget, s)


def test_h3_corrected_delta_matches_the_exact_delta_of_a_game_that_compression_changes():
    """c23 and c40 change each image's game (other main effects, the same interactions): the exact δ comes
    from exact Shapley values; the noisy estimate's corrected δ covers it, the plain δ falls short of it."""
    rng = np.random.default_rng(7)
    raw = [_TripleGame(seed) for seed in range(30)]
    changed = {c: [_TripleGame(seed, main=g.main + scale * rng.normal(size=16)) for seed, g in enumerate(raw)]
               for c, scale in (("c23", 0.5), ("c40", 1.0))}
    exact = [np.array([g.shapley() for g in games]) for games in (raw, changed["c23"], changed["c40"])]
    exact_delta = metrics.stability(*exact)
    exact_centred = metrics.stability(*(metrics.centre(e) for e in exact))
    maps, halves = zip(*(_estimated(games, 120, seed=c)
                         for c, games in enumerate((raw, changed["c23"], changed["c40"]))))
    s = metrics.stability_with_noise(maps, halves, _clusters(30), n_boot=500)
    assert s["corrected_ci"][0] <= exact_centred <= s["corrected_ci"][1], (exact_centred, s)
    assert s["ci"][1] < exact_delta and s["centred_ci"][1] < exact_centred, (exact_delta, exact_centred, s)


def _offset_and_noise(n: int, offset: float, noise: float, seed: int):
    """Maps ``[n, G²]`` that are a uniform offset plus independent noise, with two independent halves each."""
    rng = np.random.default_rng(seed)
    halves = [offset + noise * rng.normal(size=(n, G2)) for _ in range(2)]
    return (halves[0] + halves[1]) / 2, tuple(halves)


def test_maps_that_share_only_an_offset_have_a_centred_ceiling_and_delta_near_zero():
    """The offset Σφ/G² is in every estimate of a map: it lifts the plain ceiling (and δ) towards 1 while the
    maps say nothing about where; centred, both are about 0."""
    phi, (a, b) = _offset_and_noise(200, 3.0, 1.0, 11)
    c = metrics.ceiling_summary(a, b, _clusters(200), n_boot=500)
    assert c["plain"] > 0.9 and abs(c["centred"]) < 0.05, c
    assert c["centred_ci"][0] <= c["centred"] <= c["centred_ci"][1] and c["n_images"] == 200
    assert metrics.noise_ceiling(a, b) == c["plain"] and metrics.noise_ceiling(a, b, centred=True) == c["centred"]
    maps, halves = zip(*(_offset_and_noise(200, 3.0, 1.0, 12 + k) for k in range(3)))
    s = metrics.stability_with_noise(maps, halves, _clusters(200), n_boot=500)
    assert s["delta"] > 0.9 and abs(s["centred"]) < 0.05, s
    assert all(r < 0.05 for r in s["noise_ceiling"].values()) and min(s["noise_ceiling_plain"].values()) > 0.9


@pytest.mark.slow
def test_the_corrected_gap_of_a_map_with_an_offset_recovers_the_noise_free_gap():
    """Q's gap is unchanged by an offset, but the unit norm includes it: dividing by √(plain ceiling) recovers
    the gap of the noise-free map; the centred ceiling would overcorrect."""
    rng = np.random.default_rng(13)
    n = 400
    s, t = rng.normal(size=(n, G2)), rng.normal(size=(n, G2))
    signal = 0.4 * (s + t) + rng.normal(size=(n, G2))  # a detector map related to the encoders' masks
    true = metrics.unit_norm(signal + 4.0)
    a, b = (signal + 4.0 + 1.5 * rng.normal(size=(n, G2)) for _ in range(2))
    noisy = metrics.unit_norm((a + b) / 2)

    def gap(d):
        return float(np.mean(metrics.q_curve(s, t, d) - metrics.q_baseline(s, t, d)))

    plain, centred = metrics.noise_ceiling(a, b), metrics.noise_ceiling(a, b, centred=True)
    assert centred < plain
    assert abs(metrics.q_corrected(gap(noisy), 0.0, plain) / gap(true) - 1) < 0.05
    assert metrics.q_corrected(gap(noisy), 0.0, centred) / gap(true) > 1.1


def test_family_wise_intervals_are_wider_and_keep_five_readings_at_95_percent_together():
    assert abs(metrics.family_level(5) - 0.99) < 1e-12 and metrics.family_level(1) == 0.95
    rng = np.random.default_rng(3)
    values, clusters = rng.normal(size=60), [f"id{i // 3}" for i in range(60)]
    lo95, hi95 = metrics.cluster_bootstrap_ci(values, clusters, n_boot=2000)
    lo99, hi99 = metrics.cluster_bootstrap_ci(values, clusters, n_boot=2000, level=metrics.family_level(5))
    assert lo99 < lo95 and hi99 > hi95


class _SizeGame:
    """Three outputs on 16 players, as a source encoder, a target encoder and a detector see a masked image:
    each value rises with how much of the image is kept (one curve for all three); the encoders add main
    effects and third-order interactions of their own; the detector adds nothing, so its true map is uniform and
    its true Q gap is exactly 0 on every image."""

    n_players = 16

    def __init__(self, seed: int, outputs: list[str]):
        rng = np.random.default_rng(seed)
        self.outputs = tuple(outputs)
        self.main = {k: rng.normal(size=16) for k in ("source", "target")}
        self.triples = np.array([rng.choice(16, 3, replace=False) for _ in range(40)])
        self.weights = {k: 1.5 * rng.normal(size=40) for k in ("source", "target")}

    def __call__(self, coalitions):
        import torch

        x = np.asarray(coalitions, dtype=np.float64)
        kept = x.mean(axis=1)
        curve = 64 * (3 * kept ** 2 - 2 * kept ** 3)
        return torch.from_numpy(np.stack([
            curve if k == "det" else curve + x @ self.main[k] + np.prod(x[:, self.triples], axis=2) @ self.weights[k]
            for k in self.outputs], axis=1))


def _gap_of_independent_detector(coalitions: str, budget: int, n: int = 60) -> tuple[float, tuple[float, float]]:
    """H1's gap (τ-averaged Q − shuffled baseline) and its CI over ``n`` images of :class:`_SizeGame`, the maps
    estimated as the Shapley job estimates them (its seeds per map, its halves)."""
    from fst_ray.shapley.config import ShapleyConfig
    from fst_ray.shapley.estimate import estimate_maps
    from fst_ray.shapley.run import map_seeds

    cfg = ShapleyConfig(input="frames", models=["m.pt"], output="maps", grid=4, budget=budget,
                        coalitions=coalitions)
    shas = {"source": "s" * 64, "target": "t" * 64, "det": "d" * 64}
    maps = [estimate_maps(lambda names, i=i: _SizeGame(i, names), map_seeds(cfg, f"image{i}", shas), budget)[0]
            for i in range(n)]
    s, t, d = (metrics.unit_norm(np.array([m[r]["phi"].numpy() for m in maps])) for r in ("source", "target", "det"))
    gap = np.nanmean(metrics.q_curve(s, t, d), axis=1) - np.nanmean(metrics.q_baseline(s, t, d), axis=1)
    return float(gap.mean()), metrics.cluster_bootstrap_ci(gap, [str(i) for i in range(n)], n_boot=1000)


def test_a_detector_independent_of_the_encoders_has_a_gap_whose_ci_covers_zero_at_every_budget():
    """Each map's coalitions its own (the job's default): the detector's estimator noise is independent of the
    encoders', so the gap of a detector whose true gap is 0 is 0 within its CI, however noisy its map."""
    for budget in (100, 300, 1000):
        gap, (lo, hi) = _gap_of_independent_detector("per_model", budget)
        assert lo <= 0 <= hi, (budget, gap, lo, hi)


def test_shared_coalitions_make_a_gap_out_of_correlated_noise():
    """The artefact the per-model default removes: one masked image feeding all three models correlates their
    noise cell by cell (a cell drawn late in a permutation gains in every map), the mask of the most
    source/target-relevant cells picks the detector's noisy-high cells, and the true gap of 0 reads negative."""
    for budget in (100, 300):
        gap, (lo, hi) = _gap_of_independent_detector("shared", budget)
        assert hi < 0, (budget, gap, lo, hi)


def test_h3_contrast_reads_encoders_blind_to_compression_against_a_detector_it_changes():
    """Planted: the encoders' games are the same at raw, c23 and c40, the detector's main effects change with
    compression. The contrast min(δ_s, δ_t) − δ_d of corrected centred δ is above 0 with its joint CI, and it
    equals its exact value's sign; with every model blind to compression it covers 0."""
    rng = np.random.default_rng(21)
    blind = [[_TripleGame(100 * k + seed) for seed in range(30)] for k in range(3)]  # source, target, detector
    changed = {c: [_TripleGame(200 + seed, main=g.main + scale * rng.normal(size=16)) for seed, g in
                   enumerate(blind[2])] for c, scale in (("c23", 1.0), ("c40", 2.0))}

    def measured(per_compression, seed):
        maps, halves = zip(*(_estimated(games, 200, seed=10 * seed + c) for c, games in enumerate(per_compression)))
        return list(maps), list(halves)

    encoders = [measured([blind[k]] * 3, k) for k in (0, 1)]
    detector = measured([blind[2], changed["c23"], changed["c40"]], 2)
    contrast, (lo, hi) = metrics.stability_contrast(encoders, detector, _clusters(30), n_boot=500)
    exact = [np.array([g.shapley() for g in games]) for games in (blind[2], changed["c23"], changed["c40"])]
    exact_contrast = 1.0 - metrics.stability(*(metrics.centre(e) for e in exact))
    assert 0 < lo <= exact_contrast <= hi, (contrast, lo, hi, exact_contrast)
    same, (lo, hi) = metrics.stability_contrast(encoders, measured([blind[2]] * 3, 3), _clusters(30), n_boot=500)
    assert lo <= 0 <= hi, (same, lo, hi)

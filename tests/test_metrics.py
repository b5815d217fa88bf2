"""Q_τ (both variants), its random baseline, δ and bootstrap CIs against hand-computed cases."""

import numpy as np
import pytest

from fst_ray import metrics

PHI_S = np.array([0.1, 0.9, 0.3, 0.2])
PHI_T = np.array([0.5, 0.0, 0.1, 0.4])  # U = max = [0.5, 0.9, 0.3, 0.4]
PHI_D = np.array([1.0, 2.0, 3.0, 4.0])


def test_official_q_hand_computed():
    # τ=0.5: threshold = sorted relu(U)[2] = 0.5, M = {cell 1}; Q = mean([1,0,3,4]) - mean([0,2,0,0])
    assert metrics.q_tau(PHI_S, PHI_T, PHI_D, 0.5) == pytest.approx(2.0 - 0.5)
    # τ=0: threshold = min = 0.3, M = {0, 1, 3}
    assert metrics.q_tau(PHI_S, PHI_T, PHI_D, 0.0) == pytest.approx(3 / 4 - 7 / 4)
    # τ=0.75: threshold = max, the mask selects nothing: Q = mean(φ_d)
    assert metrics.intersection_mask(PHI_S, PHI_T, 0.75).sum() == 0
    assert metrics.q_tau(PHI_S, PHI_T, PHI_D, 0.75) == pytest.approx(2.5)


def test_official_mask_uses_relu_threshold_on_raw_u():
    u_neg = np.array([-1.0, 1.0, 2.0, 3.0])
    # sorted relu(U) = [0, 1, 2, 3]; τ=0 -> threshold 0 -> every positive cell is masked, the negative one not
    np.testing.assert_array_equal(metrics.intersection_mask(u_neg, u_neg, 0.0), [False, True, True, True])


def test_official_tau_grid_stops_at_095():
    assert metrics.OFFICIAL_TAUS[0] == 0.6 and metrics.OFFICIAL_TAUS[-1] == 0.95 and len(metrics.OFFICIAL_TAUS) == 8
    with pytest.raises(ValueError):
        metrics.q_tau(PHI_S, PHI_T, PHI_D, 1.0, "official")


def test_paper_q_hand_computed_and_edges():
    # Û = [1/3, 1, 0, 1/6]; τ=0.3 -> M = {0, 1}; φ̂_d = [0, 1/3, 2/3, 1]; outside mean = 5/6
    assert metrics.q_tau(PHI_S, PHI_T, PHI_D, 0.3, "paper") == pytest.approx(5 / 6 - 0.5)
    # τ=1: nothing selected -> mean of all of φ̂_d minus 1/2
    assert metrics.q_tau(PHI_S, PHI_T, PHI_D, 1.0, "paper") == pytest.approx(0.5 - 0.5)
    # τ below 0: everything selected -> undefined
    assert np.isnan(metrics.q_tau(PHI_S, PHI_T, PHI_D, -0.1, "paper"))


def test_q_accepts_grids_and_curves_over_images():
    rng = np.random.default_rng(0)
    s, t, d = (rng.normal(size=(5, 4, 4)) for _ in range(3))
    curve = metrics.q_curve(s, t, d)
    assert curve.shape == (5, len(metrics.OFFICIAL_TAUS))
    assert curve[2, 3] == pytest.approx(metrics.q_tau(s[2], t[2], d[2], metrics.OFFICIAL_TAUS[3]))
    with pytest.raises(ValueError):
        metrics.q_tau(s[0], t[0], d[0], 0.6, "nope")


def test_detector_outside_the_intersection_scores_higher_than_inside():
    g2 = 64
    rng = np.random.default_rng(1)
    u = rng.random(g2)
    inside = metrics.intersection_mask(u, u, 0.75)
    d_out = np.where(inside, 0.0, 1.0)
    d_in = np.where(inside, 1.0, 0.0)
    for variant in metrics.VARIANTS:
        assert metrics.q_tau(u, u, d_out, 0.75, variant) > metrics.q_tau(u, u, d_in, 0.75, variant)


def test_random_baseline_matches_its_expectation_and_is_not_zero():
    rng = np.random.default_rng(2)
    n, g2 = 3, 100
    s, t = rng.random((n, g2)), rng.random((n, g2))
    d = rng.random((n, g2)) + 0.5
    base = metrics.q_baseline(s, t, d, taus=(0.6,), n_shuffles=400)
    for i in range(n):
        m = metrics.intersection_mask(s[i], t[i], 0.6).sum()
        expected = d[i].mean() * (g2 - 2 * m) / g2  # E over permutations of the official Q
        assert base[i, 0] == pytest.approx(expected, abs=0.02)
        assert abs(expected) > 0.05


def test_stability_identical_orthogonal_and_scale():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(4, 16))
    assert metrics.stability(a, a, 3 * a) == pytest.approx(1.0)
    e0, e1 = np.eye(16)[[0]], np.eye(16)[[1]]
    assert metrics.stability(e0, e1, e1) == pytest.approx(0.0)
    assert metrics.stability(e0, e0, e1) == pytest.approx(0.5)
    assert metrics.stability(a.reshape(4, 4, 4), a.reshape(4, 4, 4), -a.reshape(4, 4, 4)) == pytest.approx(0.0)
    # per image: identical rows 1, an orthogonal c23 and c40 row 0
    raw = np.vstack([e0, e0])
    assert metrics.stability_per_image(raw, np.vstack([e0, e1]), np.vstack([e0, e1])) == pytest.approx([1.0, 0.0])


def test_bootstrap_ci_covers_mean_and_shrinks_with_n():
    rng = np.random.default_rng(4)
    small, large = rng.normal(1.0, 1.0, 20), rng.normal(1.0, 1.0, 2000)
    lo_s, hi_s = metrics.bootstrap_ci(small)
    lo_l, hi_l = metrics.bootstrap_ci(large)
    assert lo_s < small.mean() < hi_s and lo_l < large.mean() < hi_l
    assert hi_l - lo_l < (hi_s - lo_s) / 3


def test_unit_norm():
    a = np.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(metrics.unit_norm(a), [[0.6, 0.8], [0.0, 0.0]])

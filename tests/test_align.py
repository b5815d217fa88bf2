"""5-point similarity alignment: exact transforms, eyes land where the template says, masks stay binary."""

from __future__ import annotations

import numpy as np
import pytest

from fst_ray.data import align


def _random_similarity(rng, scale=(0.5, 3.0), shift=(-40, 120)) -> np.ndarray:
    a, s = rng.uniform(-np.pi, np.pi), rng.uniform(*scale)
    m = np.zeros((2, 3))
    m[:, :2] = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    m[:, 2] = rng.uniform(*shift, size=2)
    return m


def test_similarity_recovers_a_known_transform_and_never_reflects():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    for _ in range(20):
        m = _random_similarity(rng)
        np.testing.assert_allclose(align.similarity(src, align.apply(m, src)), m, atol=1e-8)
    mirrored = src * np.array([-1.0, 1.0])
    fit = align.similarity(src, mirrored)
    assert np.linalg.det(fit[:, :2]) > 0  # best proper similarity, not the reflection
    assert np.abs(align.apply(fit, src) - mirrored).max() > 1.0


@pytest.mark.parametrize("points", [np.ones((5, 2)) * 7.0, np.full((5, 2), np.nan)])
def test_degenerate_or_non_finite_landmarks_raise(points):
    with pytest.raises(align.AlignError):
        align.similarity(points, align.template(64))


def test_template_is_the_arcface_layout_scaled_with_margin():
    t1, t13 = align.template(112, margin=1.0), align.template(112, margin=1.3)
    np.testing.assert_allclose(t1, align.ARCFACE_112)
    assert t13[0, 0] < t13[1, 0] and t13[3, 0] < t13[4, 0]  # image-left before image-right
    assert t13[:2, 1].mean() < t13[2, 1] < t13[3:, 1].mean()  # eyes above nose above mouth
    np.testing.assert_allclose((t13 - 56).std(), (t1 - 56).std() / 1.3, rtol=1e-6)


def _dots(shape, points, radius=2):
    img = np.zeros(shape, np.uint8)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for k, (x, y) in enumerate(points):
        img[(xx - x) ** 2 + (yy - y) ** 2 <= radius ** 2] = (40 * (k + 2), 255, 0)
    return img


def test_aligned_crop_puts_each_landmark_where_the_template_says():
    """Dots drawn at the 5 landmarks of a randomly posed face land on the template's points."""
    rng = np.random.default_rng(1)
    size = 96
    for _ in range(5):
        m = _random_similarity(rng, scale=(1.2, 2.0), shift=(60, 100))
        landmarks = align.apply(m, align.template(size) - size / 2)  # a face at 1.2-2x the crop scale
        frame = _dots((260, 280, 3), landmarks, radius=3)
        crop, _ = align.align_face(frame, landmarks, size)
        want = align.template(size)
        for k in range(5):
            ys, xs = np.nonzero(crop[..., 0] == 40 * (k + 2))
            near = (xs - want[k, 0]) ** 2 + (ys - want[k, 1]) ** 2 < 4 ** 2
            assert near.sum() >= 3, f"landmark {k} is not at the template point"
            cx, cy = xs[near].mean(), ys[near].mean()
            assert abs(cx - want[k, 0]) < 0.75 and abs(cy - want[k, 1]) < 0.75


def test_mask_follows_the_face_and_stays_binary():
    rng = np.random.default_rng(2)
    frame = rng.integers(0, 255, (80, 100, 3), dtype=np.uint8)
    mask = np.zeros((80, 100), np.uint8)
    mask[40:60, 50:70] = 255
    landmarks = align.template(40) + np.array([30.0, 20.0])  # the template at half the output scale
    crop, aligned = align.align_face(frame, landmarks, 80, mask=mask)
    assert crop.shape == (80, 80, 3) and aligned.shape == (80, 80)
    assert set(np.unique(aligned)) <= {0, 255}
    # scale 2 about the landmarks: mask pixel (x, y) -> 2 * (x - 30, y - 20)
    assert aligned[2 * (50 - 20), 2 * (60 - 30)] == 255 and aligned[2 * (25 - 20), 2 * (35 - 30)] == 0


def test_shrinking_a_large_face_does_not_alias():
    """A 1-px checkerboard shrunk 4x must come out flat grey (plain bilinear sampling would alias)."""
    board = ((np.indices((400, 400)).sum(0) % 2) * 255).astype(np.uint8)
    frame = np.repeat(board[..., None], 3, axis=-1)
    m = np.array([[0.25, 0.0, 0.0], [0.0, 0.25, 0.0]])
    out = align.warp(frame, m, 100).astype(float)
    assert abs(out[5:95, 5:95].mean() - 127.5) < 3 and out[5:95, 5:95].std() < 3
    # and the pre-filter keeps geometry: a dot lands where the transform sends it
    dot = np.zeros((400, 400, 3), np.uint8)
    dot[198:206, 118:126] = 255  # centre (121.5, 201.5)
    ys, xs = np.nonzero(align.warp(dot, m, 100)[..., 0] > 60)
    assert abs(xs.mean() - 121.5 / 4) < 0.6 and abs(ys.mean() - 201.5 / 4) < 0.6


def test_alignment_presets_match_their_sources_definitions():
    S = 256
    # DeepfakeBench: the ArcFace points shifted to a square 112 crop, scaled to S, a margin of (scale - 1) / 2 of
    # the side added on each side, then scaled back to S: the same as fst-ray's shrink about the centre
    dst = align.ARCFACE_112 * S / 112  # DeepfakeBench: its 96x112 points + 8 in x, the 112 ArcFace template
    margin = S * 0.3 / 2
    np.testing.assert_allclose(align.template(S, preset="deepfakebench"), (dst + margin) * S / (S + 2 * margin))
    # the authors' release: eyes at 1 : 1.42 of the height, an eye distance of 0.9 of their mean face's at a
    # face width of 80 in 224
    fst = align.template(S, preset="fst-matching")
    np.testing.assert_allclose(fst[0, 1], S / 2.42, rtol=1e-6)
    eye_distance = 0.9 * (0.1736 + 0.17607) * 80 / (224 * 0.34967) * S
    np.testing.assert_allclose(fst[1, 0] - fst[0, 0], eye_distance, rtol=1e-6)
    with pytest.raises(ValueError, match="unknown alignment"):
        align.template(S, preset="mtcnn")


def test_presets_set_their_crop_and_frames_unless_given_and_are_recorded():
    from fst_ray.data.config import PrepareConfig

    dfb = PrepareConfig(input="in", output="out", alignment="deepfakebench")
    assert (dfb.size, dfb.frames_per_video) == (256, 32)
    assert PrepareConfig(input="in", output="out", alignment="deepfakebench", size=64).size == 64
    assert dfb.output_params()["alignment"] == "deepfakebench"
    from fst_ray.data.landmarks import five_from_68

    p68 = np.arange(136, dtype=float).reshape(68, 2)
    np.testing.assert_allclose(five_from_68(p68, "deepfakebench"), p68[[37, 44, 30, 49, 55]])

"""ImageGame: masking, baselines, values, several models in one pass."""

import pytest
import torch

from fst_ray.shapley import ImageGame, estimate
from fst_ray.shapley.game import baseline_image, cell_index, masked_images
from fst_ray.shapley.toy import toy_cnn, toy_image


def test_cell_index_covers_every_cell_when_sizes_do_not_divide():
    idx = cell_index(10, 3)
    assert idx.tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert cell_index(64, 16).bincount().tolist() == [4] * 16


def test_masked_images_keep_exactly_the_coalition_cells():
    image = torch.rand(3, 10, 10) + 1  # never 0, so kept pixels are recognisable
    base = torch.zeros_like(image)
    coalitions = torch.zeros(3, 9, dtype=torch.bool)
    coalitions[1] = True
    coalitions[2, 4] = True  # the centre cell: rows/cols 4..6
    out = masked_images(image, base, coalitions, grid=3)
    assert out.shape == (3, 3, 10, 10)
    assert (out[0] == 0).all()
    assert torch.equal(out[1], image)
    kept = (out[2] != 0).all(0)
    expected = torch.zeros(10, 10, dtype=torch.bool)
    expected[4:7, 4:7] = True
    assert torch.equal(kept, expected)


def test_baselines():
    image = toy_image(32, seed=1)
    assert (baseline_image(image, "zero", 4) == 0).all()
    mean = baseline_image(image, "mean", 4)
    assert torch.allclose(mean, image.mean((1, 2), keepdim=True).expand_as(image))
    blur = baseline_image(image, "blur", 4)
    assert blur.shape == image.shape
    assert torch.allclose(blur.mean((1, 2)), image.mean((1, 2)), atol=0.05)
    # a blur removes fine detail: neighbouring pixels differ much less
    assert blur.diff(dim=2).abs().mean() < 0.5 * image.diff(dim=2).abs().mean()
    custom = baseline_image(image, torch.tensor([0.5, 0.2, 0.1])[:, None, None], 4)
    assert torch.equal(custom[:, 3, 5], torch.tensor([0.5, 0.2, 0.1]))
    with pytest.raises(ValueError):
        baseline_image(image, "noise", 4)


@pytest.mark.parametrize("baseline", ["zero", "mean", "blur"])
def test_game_values_are_the_model_logits_of_the_masked_images(baseline):
    model, image = toy_cnn(width=4), toy_image(24)
    game = ImageGame(model, image, target_class=2, grid=4, baseline=baseline, batch_size=5)
    coalitions = torch.rand(12, 16, generator=torch.Generator().manual_seed(0)) < 0.5
    values = game(coalitions)
    assert values.shape == (12,) and values.dtype == torch.float64
    x = masked_images(image, baseline_image(image, baseline, 4), coalitions, 4)
    with torch.no_grad():
        expected = model(x)[:, 2].double()
    assert torch.allclose(values, expected, atol=1e-5)


def test_probability_and_log_odds():
    model, image = toy_cnn(width=4), toy_image(24)
    coalitions = torch.rand(6, 16, generator=torch.Generator().manual_seed(1)) < 0.5
    logits = torch.stack([ImageGame(model, image, c, grid=4)(coalitions) for c in range(10)], 1)
    p = torch.softmax(logits, 1)[:, 7]
    prob = ImageGame(model, image, 7, grid=4, value="probability")(coalitions)
    odds = ImageGame(model, image, 7, grid=4, value="log-odds")(coalitions)
    assert torch.allclose(prob, p, atol=1e-6)
    assert torch.allclose(odds, torch.log(p / (1 - p)), atol=1e-5)
    with pytest.raises(ValueError):
        ImageGame(model, image, 7, grid=4, value="margin")


def test_batch_size_does_not_change_values():
    model, image = toy_cnn(width=4), toy_image(24)
    coalitions = torch.rand(50, 64, generator=torch.Generator().manual_seed(2)) < 0.5
    a = ImageGame(model, image, 1, grid=8, batch_size=7)(coalitions)
    b = ImageGame(model, image, 1, grid=8, batch_size=64)(coalitions)
    assert torch.allclose(a, b, atol=1e-5)


def test_several_models_share_one_pass_and_match_single_model_games():
    image = toy_image(24, seed=3)
    models = {"source": toy_cnn(width=4, seed=1), "target": toy_cnn(width=4, seed=2), "det": toy_cnn(2, 4, seed=3)}
    targets = {"source": 4, "target": 5, "det": 1}
    game = ImageGame(models, image, targets, grid=4)
    assert game.outputs == ("source", "target", "det")
    coalitions = torch.rand(9, 16, generator=torch.Generator().manual_seed(3)) < 0.5
    values = game(coalitions)
    assert values.shape == (9, 3)
    result = estimate(game, budget=200, estimator="leverage", seed=5)
    assert result.values.shape == (16, 3) and result.outputs == game.outputs
    for j, name in enumerate(game.outputs):
        single = ImageGame(models[name], image, targets[name], grid=4)
        assert torch.equal(values[:, j], single(coalitions))
        alone = estimate(single, budget=200, estimator="leverage", seed=5)
        # common random numbers: the same coalitions, so the same values up to float rounding of the solve
        assert torch.allclose(result.output(name).values, alone.values, rtol=1e-9, atol=1e-12)
        assert result.output(name).n_evals == alone.n_evals == result.n_evals
    with pytest.raises(ValueError):
        ImageGame(models, image, {"source": 1}, grid=4)


def test_game_rejects_wrong_coalition_shape():
    game = ImageGame(toy_cnn(width=4), toy_image(24), 0, grid=4)
    with pytest.raises(ValueError):
        game(torch.ones(3, 15, dtype=torch.bool))


def test_k_backgrounds_give_the_average_of_the_k_single_background_games_exactly():
    """The background baseline's game is the mean over K backgrounds of the game with each; Shapley values are
    linear in the game, so the exact values with K backgrounds equal the average of the K single-background
    games' exact values (a small game: 3 x 3 cells, 512 coalitions)."""
    model, image = toy_cnn(width=4), toy_image(24, seed=4)
    backgrounds = torch.stack([toy_image(24, seed=10 + j) for j in range(3)])
    game = ImageGame(model, image, 2, grid=3, baseline=backgrounds, batch_size=7)  # 2 coalitions per pass
    singles = [ImageGame(model, image, 2, grid=3, baseline=b) for b in backgrounds]
    coalitions = torch.rand(20, 9, generator=torch.Generator().manual_seed(4)) < 0.5
    assert torch.allclose(game(coalitions), torch.stack([g(coalitions) for g in singles]).mean(0), rtol=1e-5,
                          atol=1e-9)
    both = estimate(game, budget=512, estimator="exact").values
    each = torch.stack([estimate(g, budget=512, estimator="exact").values for g in singles]).mean(0)
    scale = both.abs().max()
    assert (both - each).abs().max() < 1e-4 * scale
    assert (both - estimate(singles[0], budget=512, estimator="exact").values).abs().max() > 0.1 * scale
    with pytest.raises(ValueError, match="do not match"):
        ImageGame(model, image, 2, grid=3, baseline=backgrounds[:, :, :20])

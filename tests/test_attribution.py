"""Attribution methods beside Shapley, on models whose attributions are known: a model additive in the cells
(Occlusion, Shapley, IG, gradient x input, KernelSHAP and RISE give its exact contributions), and a convolutional
model whose evidence sits in one cell (Grad-CAM points there)."""

from __future__ import annotations

import pytest
import torch
from conftest import toy_shapley_inputs
from torch import nn

from fst_ray import frames, tables
from fst_ray.attribution import ATTRIBUTIONS, FAMILIES, attribute, names, pool_to_cells
from fst_ray.config import UserError
from fst_ray.models import load_model
from fst_ray.shapley.config import ShapleyConfig
from fst_ray.shapley.run import run_shapley

GRID, SIDE = 4, 16


class CellLinear(nn.Module):
    """Logit of class 1 = Σ_cells w_c * (sum of the cell's pixels); class 0 = 0: additive in the cells and
    linear in the input, so every cell's contribution is w_c * (its pixels - the baseline's)."""

    def __init__(self, weights: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(weights.view(GRID, GRID), requires_grad=False)

    def forward(self, x):
        cells = x.sum(1).view(len(x), GRID, SIDE // GRID, GRID, SIDE // GRID).sum((2, 4))
        one = (cells * self.w).sum((1, 2))
        return torch.stack([torch.zeros_like(one), one], 1)


@pytest.fixture(scope="module")
def additive():
    g = torch.Generator().manual_seed(0)
    weights = torch.randn(GRID * GRID, generator=g)
    image = torch.rand(3, SIDE, SIDE, generator=g)
    baseline = torch.full_like(image, 0.25)
    truth = weights.double() * pool_to_cells(image - baseline, GRID)
    return CellLinear(weights), image, baseline, truth


@pytest.mark.parametrize("method", ["occlusion", "shapley", "integrated_gradients", "input_x_gradient"])
def test_exact_methods_give_an_additive_models_contributions(additive, method):
    model, image, baseline, truth = additive
    result = attribute(method, model, image, 1, GRID, baseline, budget=64 if method == "shapley" else None)
    assert result.values.shape == (GRID * GRID,) and result.values.dtype == torch.float64
    assert torch.allclose(result.values, truth, atol=1e-4 * float(truth.abs().max()))
    assert result.model_calls > 0 and result.seconds >= 0
    if method == "occlusion":
        assert result.model_calls == GRID * GRID + 1  # the image and one per removed cell


@pytest.mark.parametrize("method", ["kernel_shap", "rise"])
def test_sampling_methods_approach_the_contributions_with_their_budget(additive, method):
    model, image, baseline, truth = additive
    result = attribute(method, model, image, 1, GRID, baseline, budget=2048, seed=3)
    cos = torch.nn.functional.cosine_similarity(result.values, truth, dim=0)
    assert cos > 0.95, cos
    again = attribute(method, model, image, 1, GRID, baseline, budget=2048, seed=3)
    assert torch.equal(result.values, again.values)  # seeded
    assert result.model_calls >= 2048


def test_lime_ranks_an_additive_models_cells_like_their_contributions(additive):
    model, image, baseline, truth = additive
    result = attribute("lime", model, image, 1, GRID, baseline, budget=2048, seed=0)
    rank = lambda v: v.argsort().argsort().double()  # noqa: E731
    assert torch.corrcoef(torch.stack([rank(result.values), rank(truth)]))[0, 1] > 0.8


def test_gradient_magnitude_and_grad_cam_point_at_the_evidence():
    """A conv model whose logit is the mean ReLU response of a 1x1 filter: the one bright cell holds all its
    evidence; Grad-CAM and saliency put their largest value there."""
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].bias.fill_(-2.0)  # only pixels brighter than 2/3 on average respond
        model[4].weight.copy_(torch.tensor([[0.0] * 4, [1.0] * 4]))
        model[4].bias.zero_()
    image = torch.full((3, SIDE, SIDE), 0.2)
    image[:, 4:8, 8:12] = 1.0  # cell (1, 2)
    hot = 1 * GRID + 2
    for method in ("grad_cam", "saliency"):
        result = attribute(method, model, image, 1, GRID)
        assert int(result.values.argmax()) == hot, (method, result.values.view(GRID, GRID))
        assert result.model_calls == 1 or method == "grad_cam"


def test_grad_cam_finds_the_last_feature_map_of_the_projects_models():
    from fst_ray.models import create_model

    model = create_model("det", "test_resnet")
    result = attribute("grad_cam", model, torch.rand(3, 32, 32), 1, GRID)
    assert torch.isfinite(result.values).all() and (result.values >= 0).all()


def test_every_method_is_registered_with_a_family_docs_and_one_entry_point():
    assert set(names()) >= {"grad_cam", "integrated_gradients", "saliency", "input_x_gradient", "occlusion",
                            "kernel_shap", "lime", "rise", "shapley"}
    for spec in ATTRIBUTIONS.values():
        assert spec.family in FAMILIES and spec.doc
    with pytest.raises(ValueError, match="unknown attribution method"):
        attribute("gradcam++", nn.Linear(2, 2), torch.zeros(3, 4, 4), 0, 2)


def test_cells_pool_pixels_whatever_the_sizes():
    pixels = torch.ones(3, 10, 10)
    cells = pool_to_cells(pixels, 3)  # 10 px in 3 cells: 4, 3, 3 rows/cols (floor(p * 3 / 10))
    assert cells.sum() == 300 and cells.shape == (9,)
    assert cells.view(3, 3)[0, 0] == 3 * 4 * 4


@pytest.mark.slow
def test_the_shapley_job_makes_any_methods_maps_and_never_mixes_them(tmp_path, ray_session):
    """``attribution`` selects the method: its maps go to the same table with their cost, halves as the readings
    need them (a deterministic method's are the map itself, a random one's two independent draws), and a cache
    of one method's maps refuses another's."""

    data, models = toy_shapley_inputs(tmp_path, image_size=32)
    out = str(tmp_path / "maps")
    base = dict(input=data, models=models[:1], output=out, split="test", grid=2, actors=1, max_images=2)
    summary = run_shapley(ShapleyConfig(**base, attribution="occlusion", budget=8), progress=False)
    assert summary.maps == 2
    rows = tables.read(out, "shapley").to_pylist()
    model, _ = load_model(models[0])
    for r in rows:
        image = frames.to_float(torch.from_numpy(frames.images(data, [r["key"]])[r["key"]][None]))[0]
        want = attribute("occlusion", model, image, r["class_index"], 2)
        assert torch.allclose(torch.tensor(r["phi"], dtype=torch.float64), want.values, atol=1e-5)
        assert r["phi_a"] == r["phi_b"] == r["phi"] and r["n_evals"] == 5 and r["estimator"] == "occlusion"
    with pytest.raises(UserError, match="made with"):
        run_shapley(ShapleyConfig(**base, budget=32, estimator="exact"), progress=False)
    rise = run_shapley(ShapleyConfig(**{**base, "output": str(tmp_path / "rise")}, attribution="rise", budget=64),
                       progress=False)
    [r, *_] = tables.read(str(tmp_path / "rise"), "shapley").to_pylist()
    assert rise.maps == 2 and r["phi_a"] != r["phi_b"] and r["n_evals"] == 64

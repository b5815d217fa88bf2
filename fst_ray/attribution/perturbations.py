"""Perturbation methods on the cell grid: occlusion (one cell removed), KernelSHAP and LIME (captum), RISE
(random masks) and Shapley (:mod:`fst_ray.shapley`); removed cells show the baseline, as in the Shapley game."""

from __future__ import annotations

import torch

from fst_ray.attribution import register_attribution
from fst_ray.shapley.game import ImageGame, cell_index, masked_images


def cell_mask(image: torch.Tensor, grid: int) -> torch.Tensor:
    """``[1, 1, H, W]`` long: each pixel's cell (row-major), captum's ``feature_mask``."""
    h, w = image.shape[1:]
    rows, cols = cell_index(h, grid, image.device), cell_index(w, grid, image.device)
    return (rows[:, None] * grid + cols[None, :])[None, None]


@register_attribution("occlusion", family="perturbation")
def occlusion(model, image, target, grid, baseline, budget, generator) -> torch.Tensor:
    """Occlusion: each cell's value is the logit lost when that cell alone shows the baseline (G² + 1 images);
    exact Shapley values for a model additive in the cells."""
    from captum.attr import FeatureAblation

    mask = cell_mask(image, grid)
    attr = FeatureAblation(model).attribute(image[None], baselines=baseline[None], target=target, feature_mask=mask,
                                            perturbations_per_eval=grid * grid)
    first = torch.zeros(grid * grid, dtype=torch.long, device=image.device).scatter_reduce_(
        0, mask.reshape(-1), torch.arange(mask.numel(), device=image.device), "amin", include_self=False)
    return attr[0, 0].reshape(-1)[first]


def _sampled(name: str, model, image, target, grid, baseline, budget, generator) -> torch.Tensor:
    """captum's ``name`` (KernelShap, Lime) on the cells; its samplers draw from torch's global RNG, so they run in
    a fork of it seeded from ``generator``."""
    import captum.attr

    seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        attr = getattr(captum.attr, name)(model).attribute(image[None], baselines=baseline[None], target=target,
                                    feature_mask=cell_mask(image, grid), n_samples=budget,
                                    perturbations_per_eval=min(budget, 64), return_input_shape=False)
    return attr[0]


@register_attribution("kernel_shap", family="perturbation", default_budget=512, random=True)
def kernel_shap(model, image, target, grid, baseline, budget, generator) -> torch.Tensor:
    """KernelSHAP (Lundberg & Lee 2017, captum): a Shapley-kernel weighted regression on ``budget`` random
    coalitions of cells."""
    return _sampled("KernelShap", model, image, target, grid, baseline, budget, generator)


@register_attribution("lime", family="perturbation", default_budget=512, random=True)
def lime(model, image, target, grid, baseline, budget, generator) -> torch.Tensor:
    """LIME (Ribeiro et al. 2016, captum): a sparse linear model (Lasso) of the logit on ``budget`` random
    coalitions of cells, weighted by their similarity to the image."""
    return _sampled("Lime", model, image, target, grid, baseline, budget, generator)


@register_attribution("rise", family="perturbation", default_budget=512, random=True)
def rise(model, image, target, grid, baseline, budget, generator) -> torch.Tensor:
    """RISE (Petsiuk et al. 2018) on the cell grid: ``budget`` random masks keeping each cell with probability
    1/2; as in RISE a cell's saliency is the mean logit of the images that keep it, here minus that of the images
    that drop it, which removes RISE's constant offset (the pair is the Banzhaf value's Monte Carlo estimate: for
    a model additive in the cells, its Shapley value in expectation)."""
    keep = torch.rand(budget, grid * grid, generator=generator) < 0.5
    values = []
    with torch.no_grad():
        for chunk in keep.split(64):
            x = masked_images(image, baseline, chunk, grid)
            values.append(model(x)[:, target].double().cpu())
    v, k = torch.cat(values), keep.double()
    kept, dropped = k.sum(0).clamp_min(1), (1 - k).sum(0).clamp_min(1)
    return (k * v[:, None]).sum(0) / kept - ((1 - k) * v[:, None]).sum(0) / dropped


@register_attribution("shapley", family="perturbation", default_budget=2560, random=True)
def shapley(model, image, target, grid, baseline, budget, generator) -> torch.Tensor:
    """Shapley values of the cells (:func:`fst_ray.shapley.estimate`, estimator ``auto``) at ``budget``
    evaluations: the paper's attribution, as the jobs estimate it."""
    from fst_ray.shapley import estimate

    game = ImageGame(model, image, target, grid=grid, baseline=baseline)
    return estimate(game, budget, "auto", seed=int(torch.randint(0, 2 ** 62, (1,), generator=generator))).values

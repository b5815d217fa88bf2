"""Gradient methods (captum, imported when a method runs): Grad-CAM on the last feature map, Integrated Gradients, saliency and
gradient x (input - baseline); pixel attributions summed into cells."""

from __future__ import annotations

import torch
from torch import nn

from fst_ray.attribution import pool_to_cells, register_attribution


def last_feature_map(model: nn.Module, image: torch.Tensor) -> nn.Module:
    """The module whose output is the last ``[B, C, h, w]`` feature map (h * w > 1) of a forward pass (a CNN
    backbone's last stage, before pooling)."""
    last: list[nn.Module] = []
    def seen(module, inputs, output):
        if torch.is_tensor(output) and output.dim() == 4 and output.shape[-2] * output.shape[-1] > 1:
            last.append(module)

    hooks = [m.register_forward_hook(seen) for m in model.modules() if m is not model]
    try:
        with torch.no_grad():
            model(image[None])
    finally:
        for h in hooks:
            h.remove()
    if not last:
        raise ValueError("grad_cam needs a model with a convolutional feature map")
    return last[-1]


@register_attribution("grad_cam", family="gradient")
def grad_cam(model, image, target, grid, baseline, budget, generator) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017): the last feature map weighted by its spatially averaged gradients,
    ReLU'd, upsampled (bilinear) to the image and summed per cell; one forward and one backward pass."""
    from captum.attr import LayerAttribution, LayerGradCam

    layer = last_feature_map(model.model if hasattr(model, "model") else model, image)
    cam = LayerGradCam(model, layer).attribute(image[None], target=target, relu_attributions=True)
    cam = LayerAttribution.interpolate(cam, tuple(image.shape[1:]), interpolate_mode="bilinear")
    return pool_to_cells(cam[0], grid)


@register_attribution("integrated_gradients", family="gradient", default_budget=32)
def integrated_gradients(model, image, target, grid, baseline, budget, generator) -> torch.Tensor:
    """Integrated Gradients (Sundararajan et al. 2017) from ``baseline`` to the image in ``budget`` steps
    (Gauss-Legendre); exact for a model linear in its input, complete up to the integral's error."""
    from captum.attr import IntegratedGradients

    attr = IntegratedGradients(model).attribute(image[None], baselines=baseline[None], target=target,
                                                n_steps=budget, internal_batch_size=budget)
    return pool_to_cells(attr[0], grid)


@register_attribution("saliency", family="gradient")
def saliency(model, image, target, grid, baseline, budget, generator) -> torch.Tensor:
    """Saliency (Simonyan et al. 2014): the absolute gradient of the logit, summed per cell (a magnitude,
    never negative)."""
    from captum.attr import Saliency

    return pool_to_cells(Saliency(model).attribute(image[None], target=target, abs=True)[0], grid)


@register_attribution("input_x_gradient", family="gradient")
def input_x_gradient(model, image, target, grid, baseline, budget, generator) -> torch.Tensor:
    """Gradient x (input - baseline), summed per cell: the first-order estimate of what removing each cell
    costs; exact for a model linear in its input."""
    x = image[None].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x)[0, target], x)
    return pool_to_cells((grad[0] * (image - baseline)).detach(), grid)

"""``create_model(role, arch, num_classes)``: any role's model (:mod:`fst_ray.roles`) over any timm
architecture. A role names its model family (:data:`FAMILIES`): a plain timm classifier, or the
FST-Matching model (2 detection classes; ``num_classes`` = (source, target) class counts of its heads).

``pretrained=True`` loads backbone weights from ``weights`` (a local path or URI), or ImageNet weights that an
installed package ships (:data:`PACKAGED_IMAGENET`); tests and jobs never download from a hub.
"""

from __future__ import annotations

from typing import Callable

import timm
import torch
from torch import nn

from fst_ray import roles
from fst_ray.models.backbone import PACKAGED_IMAGENET, create_backbone, load_backbone_weights, read_state_dict
from fst_ray.models.fst import FSTMatching

__all__ = ["FAMILIES", "create_model", "imagenet_state_dict", "Classifier", "backbones"]


class Classifier(nn.Module):
    """A timm classifier behind its input normalisation: raw pixels ``[B, 3, H, W]`` in 0..1 -> logits."""

    def __init__(self, arch: str, num_classes: int):
        super().__init__()
        self.backbone, self.normalize = create_backbone(arch, num_classes)
        head = self.backbone.get_classifier() if hasattr(self.backbone, "get_classifier") else None
        if isinstance(head, nn.Linear):  # start at logits near 0: timm's EfficientNet init draws a 2-class head
            nn.init.normal_(head.weight, std=0.01)  # from ±1/√2, far from 0 (docs/science.md, "Training")
            nn.init.zeros_(head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.normalize(x))


#: model families: ``(arch, num_classes) -> nn.Module``; a role names its family (:mod:`fst_ray.roles`)
FAMILIES: dict[str, Callable[[str, int | tuple[int, ...]], nn.Module]] = {"classifier": Classifier, "fst": FSTMatching}


def backbones(model: nn.Module) -> list[nn.Module]:
    """The timm backbones inside a model built by :func:`create_model`."""
    if isinstance(model, FSTMatching):
        return [model.source_encoder, model.target_encoder]
    return [model.backbone]


def imagenet_state_dict(arch: str) -> dict:
    """ImageNet weights of ``arch``: those an installed package ships (:data:`PACKAGED_IMAGENET`), else timm's
    from its model hub, with a clear error where the hub cannot be reached."""
    if arch in PACKAGED_IMAGENET:
        return read_state_dict(PACKAGED_IMAGENET[arch])
    try:
        return timm.create_model(arch, pretrained=True).state_dict()
    except Exception as e:  # hub errors come as many types (offline, HTTP, missing file)
        raise ValueError(f"could not fetch the ImageNet weights of {arch} from timm's model hub "
                         f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); where the cluster "
                         "cannot reach the hub, give `train.weights` a weights file URI instead") from e


def create_model(role: str, arch: str = "resnet18", num_classes: int | tuple[int, ...] | None = None,
                 pretrained: bool = False,
                 weights: str | None = None) -> nn.Module:
    """Build a randomly initialised model of ``role`` (:data:`fst_ray.roles.ROLES`); with ``pretrained=True``,
    load backbone weights from ``weights`` (a local path, ``s3://`` or ``package://`` URI; classifier weights of
    another head size are dropped), or, without ``weights``, ImageNet weights (:func:`imagenet_state_dict`: a
    package's where one ships them, else timm's hub, only where the machine reaches it). ``num_classes`` may be
    omitted for a role without identity heads (``det``); a model with several heads (``fst``) takes one count
    per head (:meth:`fst_ray.roles.Role.num_classes`)."""
    spec = roles.get(role)
    if not spec.identity_heads:
        if num_classes not in (None, 2):
            raise ValueError(f"role {role!r} has 2 classes, got num_classes={num_classes}")
        num_classes = 2
    if isinstance(num_classes, list):  # as a model file stores a tuple
        num_classes = tuple(num_classes)
    if not num_classes or min(num_classes if isinstance(num_classes, tuple) else (num_classes,)) < 1:
        raise ValueError(f"role {role!r} needs num_classes >= 1 (one class per id its heads classify)")
    if weights is not None and not pretrained:
        raise ValueError("weights given with pretrained=False; pass pretrained=True to load them")
    model = FAMILIES[spec.family](arch, num_classes)
    if pretrained:
        state = read_state_dict(weights) if weights is not None else imagenet_state_dict(arch)
        for net in backbones(model):
            load_backbone_weights(net, state, weights or PACKAGED_IMAGENET.get(arch, f"timm:{arch}"))
    return model

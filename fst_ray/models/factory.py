"""``create_model(role, arch, num_classes)``: any role's model (:mod:`fst_ray.roles`) over any timm
architecture. A role names its model family (:data:`FAMILIES`): a plain timm classifier, or the
FST-Matching model (2 detection classes; ``num_classes`` = identity classes of its source/target heads).

``pretrained=True`` loads backbone weights from ``weights`` (a local path or URI); nothing is ever
downloaded from a hub.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from fst_ray import roles
from fst_ray.models.backbone import create_backbone, load_backbone_weights, read_state_dict
from fst_ray.models.fst import FSTMatching

__all__ = ["FAMILIES", "create_model", "Classifier", "backbones"]


class Classifier(nn.Module):
    """A timm classifier behind its input normalisation: raw pixels ``[B, 3, H, W]`` in 0..1 -> logits."""

    def __init__(self, arch: str, num_classes: int):
        super().__init__()
        self.backbone, self.normalize = create_backbone(arch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.normalize(x))


#: model families: ``(arch, num_classes) -> nn.Module``; a role names its family (:mod:`fst_ray.roles`)
FAMILIES: dict[str, Callable[[str, int], nn.Module]] = {"classifier": Classifier, "fst": FSTMatching}


def backbones(model: nn.Module) -> list[nn.Module]:
    """The timm backbones inside a model built by :func:`create_model`."""
    if isinstance(model, FSTMatching):
        return [model.source_encoder, model.target_encoder]
    return [model.backbone]


def create_model(role: str, arch: str = "resnet18", num_classes: int | None = None, pretrained: bool = False,
                 weights: str | None = None) -> nn.Module:
    """Build a randomly initialised model of ``role`` (:data:`fst_ray.roles.ROLES`); with ``pretrained=True``,
    load backbone weights from ``weights`` (a local path or ``s3://`` URI; classifier weights of another
    head size are dropped). ``num_classes`` may be omitted for a role without identity heads (``det``)."""
    spec = roles.get(role)
    if not spec.identity_heads:
        if num_classes not in (None, 2):
            raise ValueError(f"role {role!r} has 2 classes, got num_classes={num_classes}")
        num_classes = 2
    if not num_classes or num_classes < 1:
        raise ValueError(f"role {role!r} needs num_classes >= 1 (one class per original video id)")
    if pretrained and weights is None:
        raise ValueError("pretrained=True needs weights=<local path or URI>: fst-ray never downloads from a hub")
    if weights is not None and not pretrained:
        raise ValueError("weights given with pretrained=False; pass pretrained=True to load them")
    model = FAMILIES[spec.family](arch, num_classes)
    if pretrained:
        state = read_state_dict(weights)
        for net in backbones(model):
            load_backbone_weights(net, state, weights)
    return model

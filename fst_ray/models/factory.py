"""``create_model(role, arch, num_classes)``: any role's model over any timm architecture.

Roles and their classes (DESIGN.md §1):

- ``source``: one class per original video id; a real of ``A`` and a fake ``A_B`` are class ``A``.
- ``target``: same classes; a real of ``A`` is ``A``, a fake ``A_B`` is ``B``.
- ``det``: 2 classes, 0 = real, 1 = fake.
- ``fst``: the FST-Matching detector (2 detection classes; ``num_classes`` = identity classes of its
  source/target heads).

``pretrained=True`` loads backbone weights from ``weights`` (a local path or URI); nothing is ever
downloaded from a hub.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from fst_ray.models.backbone import create_backbone, load_backbone_weights, read_state_dict
from fst_ray.models.fst import FSTMatching

__all__ = ["ROLES", "RoleSpec", "register_role", "create_model", "Classifier", "backbones"]


class Classifier(nn.Module):
    """A timm classifier behind its input normalisation: raw pixels ``[B, 3, H, W]`` in 0..1 -> logits."""

    def __init__(self, arch: str, num_classes: int):
        super().__init__()
        self.backbone, self.normalize = create_backbone(arch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.normalize(x))


@dataclass(frozen=True)
class RoleSpec:
    """A role: how to build its model, and the ``frames`` column its class comes from."""

    name: str
    build: Callable[[str, int], nn.Module]
    label: str
    fixed_classes: int | None
    doc: str


ROLES: dict[str, RoleSpec] = {}


def register_role(name: str, label: str, doc: str, fixed_classes: int | None = None):
    """Decorator on a builder ``(arch, num_classes) -> nn.Module``: make it the model of role ``name``."""

    def deco(build):
        ROLES[name] = RoleSpec(name, build, label, fixed_classes, doc)
        return build

    return deco


register_role("source", "source_id", "source encoder v_s: class = source video id")(Classifier)
register_role("target", "target_id", "target encoder v_t: class = target video id")(Classifier)
register_role("det", "det_label", "detector v_d: 0 = real, 1 = fake", fixed_classes=2)(Classifier)
register_role("fst", "det_label", "FST-Matching detector; num_classes = identity classes of its heads")(FSTMatching)


def backbones(model: nn.Module) -> list[nn.Module]:
    """The timm backbones inside a model built by :func:`create_model`."""
    if isinstance(model, FSTMatching):
        return [model.source_encoder, model.target_encoder]
    return [model.backbone]


def create_model(role: str, arch: str = "resnet18", num_classes: int | None = None, pretrained: bool = False,
                 weights: str | None = None) -> nn.Module:
    """Build a randomly initialised model of ``role`` (see :data:`ROLES`); with ``pretrained=True``, load
    backbone weights from ``weights`` (a local path or ``s3://`` URI; classifier weights of another
    head size are dropped). ``num_classes`` may be omitted for ``det``."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {sorted(ROLES)}")
    spec = ROLES[role]
    if spec.fixed_classes is not None:
        if num_classes not in (None, spec.fixed_classes):
            raise ValueError(f"role {role!r} has {spec.fixed_classes} classes, got num_classes={num_classes}")
        num_classes = spec.fixed_classes
    if not num_classes or num_classes < 1:
        raise ValueError(f"role {role!r} needs num_classes >= 1 (one class per original video id)")
    if pretrained and weights is None:
        raise ValueError("pretrained=True needs weights=<local path or URI>: fst-ray never downloads from a hub")
    if weights is not None and not pretrained:
        raise ValueError("weights given with pretrained=False; pass pretrained=True to load them")
    model = spec.build(arch, num_classes)
    if pretrained:
        state = read_state_dict(weights)
        for net in backbones(model):
            load_backbone_weights(net, state, weights)
    return model

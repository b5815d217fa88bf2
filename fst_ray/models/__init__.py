"""Models, timm style: :func:`create_model` builds any role's model over any timm architecture.

Roles (what each model is, its classes and data) live in :mod:`fst_ray.roles`; their model families in
:data:`FAMILIES`. Every model takes raw pixels in 0..1 and normalises inside, so an all-zero input is
black (the Shapley ``zero`` baseline).
"""

from fst_ray.models.backbone import CheckpointError, safe_torch_load
from fst_ray.models.checkpoint import load_model, load_payload, save_model, to_bytes
from fst_ray.models.factory import FAMILIES, Classifier, create_model
from fst_ray.models.fst import FSTMatching, FSTOutput, fst_loss, interaction
from fst_ray.models.oracle import CellOracle  # (importing it registers the oracle architectures with timm)

__all__ = [
    "FAMILIES", "create_model", "Classifier",
    "FSTMatching", "FSTOutput", "fst_loss", "interaction", "CellOracle",
    "save_model", "load_model", "load_payload", "CheckpointError", "to_bytes",
    "safe_torch_load",
]

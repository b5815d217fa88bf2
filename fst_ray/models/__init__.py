"""Models, timm style: :func:`create_model` builds any role's model over any timm architecture.

Roles (DESIGN.md §1): ``source`` and ``target`` encoders (one class per original video id), ``det``
(real/fake) and ``fst``, the FST-Matching detection model. Every model takes raw pixels in 0..1 and
normalises inside, so an all-zero input is black (the Shapley ``zero`` baseline).
"""

from fst_ray.models.checkpoint import (CheckpointError, load_model, load_payload, safe_torch_load, save_model,
                                      to_bytes)
from fst_ray.models.factory import ROLES, Classifier, RoleSpec, create_model, register_role
from fst_ray.models.fst import FSTMatching, FSTOutput, fst_loss, interaction

__all__ = [
    "ROLES", "RoleSpec", "register_role", "create_model", "Classifier",
    "FSTMatching", "FSTOutput", "fst_loss", "interaction",
    "save_model", "load_model", "load_payload", "CheckpointError", "to_bytes",
    "safe_torch_load",
]

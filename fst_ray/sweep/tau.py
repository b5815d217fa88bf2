"""The τ sweep: φ maps from a ``shapley`` table and Q at one (τ, variant), pure numpy/pyarrow; and
:func:`tau_trial`, the Tune function around them. The module imports neither torch nor timm, so a τ
trial's actor starts fast.

A ``shapley`` table (:data:`fst_ray.tables.SHAPLEY`) holds one row per (image, model). The maps of Q are
the source encoder's (φ_s), the target encoder's (φ_t) and one detector's (φ_d) of the images explained
under all three, each scaled to unit L2 norm (docs/design.md §1: φ is normalised per map).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from fst_ray import roles, tables
from fst_ray.metrics import q_baseline, q_curve, unit_norm

__all__ = ["read_shapley", "phi_maps", "q_point", "tau_trial", "PhiMaps"]

PhiMaps = tuple[list[str], np.ndarray, np.ndarray, np.ndarray]


def read_shapley(uri: str) -> pa.Table:
    """The ``key``, ``role``, ``model`` and ``phi`` columns of a ``shapley`` table (a folder of Parquet files)."""
    return tables.read(uri, "shapley", ["key", "role", "model", "phi"])


def phi_maps(table: pa.Table, models: dict[str, str] | None = None) -> PhiMaps:
    """``(keys, φ_s, φ_t, φ_d)``: maps ``[N, G²]`` (unit L2 per row) of the N images (sorted keys) that have
    a source, a target and a detector map. ``models`` (role -> model URI) picks the model of a role that has
    several in the table; the detector is role ``det`` or ``fst``, whichever the table (or ``models``) has."""
    models = models or {}
    rows = table.select(["key", "role", "model", "phi"]).to_pydict()
    detector = roles.detectors(models) or sorted(set(roles.detectors(set(rows["role"]) & set(roles.ROLES))))
    if len(detector) != 1:
        raise ValueError(f"the table holds detector roles {detector}: choose one in `models`")
    wanted = ("source", "target", detector[0])
    maps: dict[str, dict[str, np.ndarray]] = {r: {} for r in wanted}
    seen: dict[str, set[str]] = {r: set() for r in wanted}
    for key, role, model, phi in zip(rows["key"], rows["role"], rows["model"], rows["phi"]):
        if role in maps and models.get(role, model) == model:
            seen[role].add(model)
            maps[role][key] = np.asarray(phi, dtype=np.float64)
    for role in wanted:
        if len(seen[role]) != 1:
            raise ValueError(f"role {role}: {len(seen[role])} models in the table ({sorted(seen[role])}); "
                             f"give exactly one in `models`")
    keys = sorted(set(maps["source"]) & set(maps["target"]) & set(maps[detector[0]]))
    if not keys:
        raise ValueError("no image has source, target and detector maps")
    s, t, d = (unit_norm(np.stack([maps[r][k] for k in keys])) for r in wanted)
    return keys, s, t, d


def q_point(maps: PhiMaps, tau: float, variant: str, n_shuffles: int = 20, seed: int = 0) -> dict[str, float]:
    """Mean Q_τ over images (images where Q is undefined, NaN, left out), its shuffled-φ_d baseline and the
    number of images it averaged."""
    _, s, t, d = maps
    q = q_curve(s, t, d, [tau], variant)[:, 0]
    base = q_baseline(s, t, d, [tau], variant, n_shuffles=n_shuffles, seed=seed)[:, 0]
    return {"q": float(np.nanmean(q)) if np.isfinite(q).any() else float("nan"),
            "baseline": float(np.nanmean(base)) if np.isfinite(base).any() else float("nan"),
            "n_images": int(np.isfinite(q).sum())}


def tau_trial(params: dict, *, maps: PhiMaps, n_shuffles: int, seed: int) -> None:
    """Tune function trainable: reports :func:`q_point` at ``params["tau"]``, ``params["variant"]``."""
    from ray import tune

    tune.report(q_point(maps, params["tau"], params["variant"], n_shuffles, seed))

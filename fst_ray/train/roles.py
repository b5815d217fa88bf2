"""Labels and training subsets per role (DESIGN.md §1), pure pyarrow/numpy.

- ``source``/``target`` are analysis instruments: they train on every video, minus the frame-disjoint
  hold-out of :func:`fst_ray.data.views.frame_holdout` (kept for evaluation and analysis).
- ``det``/``fst`` train on the identity-disjoint ``train`` split (``train_set=full``) or on H2's
  paired/unpaired set (:func:`fst_ray.data.views.paired_unpaired`); they are scored on ``test``.

One class per original video id: ``classes`` are the sorted ids of the whole table, class index = position.
A :class:`LabelPlan` is small enough to ship with a Ray Data map task; :func:`label_batch` applies it to
a batch of ``frames`` rows, so one read of the table feeds every role.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from fst_ray.data import views

__all__ = ["LabelPlan", "class_ids", "encoder_split", "detector_rows", "make_plan", "label_batch",
           "ROLE_MASK", "ROLE_LABEL"]

#: which subset mask of a labelled batch each role trains on
ROLE_MASK = {"source": "m_encoder", "target": "m_encoder", "det": "m_detector", "fst": "m_detector"}
#: which label column of a labelled batch is each role's class
ROLE_LABEL = {"source": "source", "target": "target", "det": "det", "fst": "det"}


@dataclass(frozen=True)
class LabelPlan:
    """What :func:`label_batch` needs: the class list and the keys each kind of role trains on."""

    classes: tuple[str, ...]
    encoder_keys: frozenset[str]
    detector_keys: frozenset[str]
    fake_share: float = 0.0  # share of fakes among the detector keys

    @property
    def num_rows(self) -> int:
        """Rows that train at least one role."""
        return len(self.encoder_keys | self.detector_keys)


def class_ids(index: pa.Table) -> list[str]:
    """Sorted original video ids (sources and targets) of a frames index: class index -> id."""
    return sorted(set(index["source_id"].to_pylist()) | set(index["target_id"].to_pylist()))


def encoder_split(index: pa.Table, seed: int, fraction: float) -> tuple[pa.Table, pa.Table]:
    """``(train, holdout)`` rows of the source/target encoders (frame-disjoint, every video on both sides)."""
    return views.frame_holdout(index, seed, fraction)


def detector_rows(index: pa.Table, train_set: str, seed: int, h2_compression: str | None = "c23") -> pa.Table:
    """Rows the detectors train on: the ``train`` split (``full``), or H2's ``paired``/``unpaired`` set
    (built from the ``train`` split at ``h2_compression``)."""
    if train_set == "full":
        return views.select(index, split="train")
    sets = views.paired_unpaired(index, seed, split="train", compression=h2_compression)
    return getattr(sets, train_set)


def make_plan(index: pa.Table, roles: list[str], train_set: str, seed: int, holdout_fraction: float,
              h2_compression: str | None = "c23") -> LabelPlan:
    """The plan of one training run over a frames index (``views.read_index``)."""
    encoder = detector = frozenset()
    fake_share = 0.0
    if {"source", "target"} & set(roles):
        encoder = frozenset(encoder_split(index, seed, holdout_fraction)[0]["key"].to_pylist())
    if {"det", "fst"} & set(roles):
        rows = detector_rows(index, train_set, seed, h2_compression)
        detector = frozenset(rows["key"].to_pylist())
        fake_share = float(np.mean(rows["det_label"].to_numpy())) if rows.num_rows else 0.0
    return LabelPlan(tuple(class_ids(index)), encoder, detector, fake_share)


def decode_images(column, size: int | None = None) -> np.ndarray:
    """``frames.image`` values (S*S*3 uint8 raw bytes each) -> ``uint8 [n, S, S, 3]``."""
    blobs = list(column)
    if not blobs:
        return np.zeros((0, size or 0, size or 0, 3), np.uint8)
    flat = np.frombuffer(bytearray(b"".join(blobs)), dtype=np.uint8)  # writable: torch takes it as is
    side = size or int(round((len(blobs[0]) // 3) ** 0.5))
    return flat.reshape(len(blobs), side, side, 3)


def label_batch(batch: dict[str, np.ndarray], plan: LabelPlan) -> dict[str, np.ndarray]:
    """Labelled training rows of a ``frames`` batch (numpy columns ``key``, ``image``, ``size``,
    ``det_label``, ``source_id``, ``target_id``): rows that train no role are dropped. Out: ``image``
    ``uint8 [n, S, S, 3]``, ``det``/``source``/``target`` int64 classes, ``m_encoder``/``m_detector`` bool."""
    keys = batch["key"]
    m_enc = np.fromiter((k in plan.encoder_keys for k in keys), bool, len(keys))
    m_det = np.fromiter((k in plan.detector_keys for k in keys), bool, len(keys))
    keep = m_enc | m_det
    index = {c: i for i, c in enumerate(plan.classes)}
    size = int(batch["size"][0]) if len(keys) else None
    return {
        "image": decode_images(batch["image"][keep], size),
        "det": batch["det_label"][keep].astype(np.int64),
        "source": np.array([index[s] for s in batch["source_id"][keep]], np.int64),
        "target": np.array([index[t] for t in batch["target_id"][keep]], np.int64),
        "m_encoder": m_enc[keep],
        "m_detector": m_det[keep],
    }

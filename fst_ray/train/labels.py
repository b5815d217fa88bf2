"""Training labels and subsets of the roles (:mod:`fst_ray.roles`), pure pyarrow/numpy.

- subset ``encoder`` (the identity encoders): every video, minus the frame-disjoint hold-out of
  :func:`fst_ray.data.views.frame_holdout` (kept for evaluation and analysis).
- subset ``detector``: the identity-disjoint ``train`` split (``train_set=full``) or H2's paired/unpaired
  set (:func:`fst_ray.data.views.paired_unpaired`); detectors are scored on ``test``.

Classes per identity column: ``classes[column]`` are the sorted ids of that column (``source_id``: the source
scene videos, ``target_id``: the target identities) over the whole table, class index = position.
A :class:`LabelPlan` is small enough to ship with a Ray Data map task; :func:`label_batch` applies it to
a batch of ``frames`` rows, so one read of the table feeds every role.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from fst_ray import frames, roles
from fst_ray.data import views

__all__ = ["LabelPlan", "class_sets", "encoder_split", "detector_rows", "make_plan", "label_batch", "READ_COLUMNS"]

#: ``frames`` columns a labelled batch is made from
READ_COLUMNS = ["key", "image", "size", "det_label", "source_id", "target_id"]


@dataclass(frozen=True)
class LabelPlan:
    """What :func:`label_batch` needs: the class list and the keys each kind of role trains on."""

    classes: dict[str, tuple[str, ...]]  # identity column -> its sorted ids
    encoder_keys: frozenset[str]
    detector_keys: frozenset[str]
    fake_share: float = 0.0  # share of fakes among the detector keys
    target_weights: tuple[tuple[str, int, float], ...] = ()  # (scene, det_label, weight): scene_balance

    def target_weight(self) -> dict[tuple[str, int], float]:
        return {(s, int(d)): w for s, d, w in self.target_weights}

    @property
    def num_rows(self) -> int:
        """Rows that train at least one role."""
        return len(self.encoder_keys | self.detector_keys)


def class_sets(index: pa.Table) -> dict[str, tuple[str, ...]]:
    """The sorted ids of each identity column of a frames index (``source_id``, ``target_id``): class index -> id."""
    return {c: tuple(sorted(set(index[c].to_pylist()))) for c in ("source_id", "target_id")}


def encoder_split(index: pa.Table, seed: int, fraction: float) -> tuple[pa.Table, pa.Table]:
    """``(train, holdout)`` rows of the source/target encoders (frame-disjoint, every video on both sides)."""
    return views.frame_holdout(index, seed, fraction)


def detector_rows(index: pa.Table, train_set: str, seed: int, compression: str | None = None) -> pa.Table:
    """Rows the detectors train on: the ``train`` split (``full``), or H2's ``paired``/``unpaired`` set built
    from it; at ``compression`` (``None``: every compression)."""
    if train_set == "full":
        return views.select(index, split="train", compression=compression)
    sets = views.paired_unpaired(index, seed, split="train", compression=compression)
    return getattr(sets, train_set)


def scene_balance(rows: pa.Table) -> tuple[tuple[str, int, float], ...]:
    """Target-encoder weights that take the scene's advantage away: a scene (source video A) shows in its
    original (target label A) and in every fake ``A_B`` (label B), so with FF++'s five methods the scene alone
    predicts the partner's label 5 times in 6. Weighting each scene's real and fake rows so that each side
    carries half of the scene's weight leaves the scene at even odds between A and B, so only the face tells
    them apart. Rows: ``(scene, det_label, weight)``; mean weight 1 over ``rows``; a scene with one side only
    keeps weight 1."""
    scenes = np.asarray(rows["source_id"].to_pylist())
    fake = np.asarray(rows["det_label"].to_pylist()) == 1
    out = []
    for scene in np.unique(scenes):
        here = scenes == scene
        n_fake, n = int((here & fake).sum()), int(here.sum())
        for label, count in ((0, n - n_fake), (1, n_fake)):
            if count:
                out.append((str(scene), label, n / (2 * count) if 0 < n_fake < n else 1.0))
    return tuple(out)


def make_plan(index: pa.Table, role_names: list[str], train_set: str, seed: int, holdout_fraction: float,
              detector_compression: str | None = None, balance_scenes: bool = False) -> LabelPlan:
    """The plan of one training run over a frames index (:func:`fst_ray.frames.read_index`);
    ``balance_scenes``: the target encoder's :func:`scene_balance` weights."""
    encoder = detector = frozenset()
    fake_share, weights = 0.0, ()
    subsets = {roles.get(r).subset for r in role_names}
    if "encoder" in subsets:
        rows = encoder_split(index, seed, holdout_fraction)[0]
        encoder = frozenset(rows["key"].to_pylist())
        weights = scene_balance(rows) if balance_scenes else ()
    if "detector" in subsets:
        rows = detector_rows(index, train_set, seed, detector_compression)
        detector = frozenset(rows["key"].to_pylist())
        fake_share = float(np.mean(rows["det_label"].to_numpy())) if rows.num_rows else 0.0
    return LabelPlan(class_sets(index), encoder, detector, fake_share, weights)


def label_batch(batch: dict[str, np.ndarray], plan: LabelPlan) -> dict[str, np.ndarray]:
    """Labelled training rows of a ``frames`` batch (numpy columns :data:`READ_COLUMNS`): rows that train
    no role are dropped. Out: ``image`` ``uint8 [n, S, S, 3]``; per role's ``label`` (``det``, ``source``,
    ``target``) its int64 class; ``m_encoder``/``m_detector`` bool, the rows of each training subset;
    ``w_target`` float32, the target encoder's row weights (1 without scene balance)."""
    keys = batch["key"]
    masks = {"m_encoder": np.fromiter((k in plan.encoder_keys for k in keys), bool, len(keys)),
             "m_detector": np.fromiter((k in plan.detector_keys for k in keys), bool, len(keys))}
    keep = masks["m_encoder"] | masks["m_detector"]
    index = {column: {c: i for i, c in enumerate(ids)} for column, ids in plan.classes.items()}
    size = int(batch["size"][0]) if len(keys) else None
    out = {"image": frames.decode(batch["image"][keep], size)}
    for spec in roles.ROLES.values():
        column = batch[spec.column][keep]
        out[spec.label] = (column.astype(np.int64) if spec.detector else
                           np.array([index[spec.column][v] for v in column], np.int64))
    weight = plan.target_weight()
    out["w_target"] = np.array([weight.get((s, int(d)), 1.0) for s, d in
                                zip(batch["source_id"][keep], batch["det_label"][keep])], np.float32)
    return {**out, **{m: v[keep] for m, v in masks.items()}}

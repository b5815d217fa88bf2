"""Training and scoring in one process, without Ray: frames streamed from Parquet with pyarrow and labelled
as Ray Train's stream labels them, the detectors' AUC on a validation split and the identity encoders' top-1
on their frame-disjoint hold-out. A sweep's trials train and are scored with it (:mod:`fst_ray.sweep.trial`),
a training run with ``backend: local`` trains with it, and a run that keeps each detector's best epoch
(``select_epoch: val_auc``, :func:`fst_ray.train.engine.fit`) picks it with it."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import torch

from fst_ray import frames, roles
from fst_ray.config import UserError
from fst_ray.data import views
from fst_ray.evaluate import binary_metrics, score
from fst_ray.train.config import TrainConfig
from fst_ray.train.labels import READ_COLUMNS, LabelPlan, class_sets, encoder_split, label_batch

__all__ = ["VAL_SPLIT", "labelled_batches", "epoch_batches", "eval_plan", "check_val_split", "validate"]

VAL_SPLIT = "val"
"""The split a training run scores its detectors on (``select_epoch: val_auc``)."""


def labelled_batches(data: str, plan: LabelPlan, batch_size: int, shuffle_buffer: int = 0,
                     seed: int | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Labelled rows of ``frames`` (:func:`~fst_ray.train.labels.label_batch`) for the keys of ``plan``, in
    batches of ``batch_size`` (the last may be smaller). With ``seed``: files in a random order and rows
    shuffled within windows of ``max(shuffle_buffer, batch_size)`` rows; without: table order."""
    rng = np.random.default_rng(seed) if seed is not None else None
    window = max(shuffle_buffer, batch_size)
    tail = None  # labelled rows not yet yielded
    for record_batch in frames.iter_batches(data, READ_COLUMNS, plan.encoder_keys | plan.detector_keys, window, rng):
        rows = label_batch({c: record_batch.column(c).to_numpy(zero_copy_only=False) for c in READ_COLUMNS}, plan)
        tail = rows if tail is None else {k: np.concatenate([tail[k], rows[k]]) for k in rows}
        if len(tail["image"]) >= window:
            tail = yield from _drain(tail, batch_size, rng, keep_tail=True)
    if tail is not None:
        yield from _drain(tail, batch_size, rng, keep_tail=False)


def epoch_batches(cfg: TrainConfig, plan: LabelPlan, epoch: int, device: torch.device) -> Iterator[dict[str, torch.Tensor]]:
    """One epoch's training batches of ``plan`` on ``device``: ``cfg.batch_size`` rows, shuffled within
    ``cfg.shuffle_buffer`` by the epoch's seed."""
    for batch in labelled_batches(cfg.input, plan, cfg.batch_size, cfg.shuffle_buffer, seed=cfg.seed + epoch):
        yield {k: torch.from_numpy(v).to(device) for k, v in batch.items()}


def _drain(rows: dict[str, np.ndarray], batch_size: int, rng, keep_tail: bool):
    """Yield ``rows`` (permuted when ``rng``) in batches of ``batch_size``; with ``keep_tail`` an incomplete
    last batch is not yielded but returned."""
    n = len(rows["image"])
    order = rng.permutation(n) if rng is not None else np.arange(n)
    stop = n - n % batch_size if keep_tail else n
    for i in range(0, stop, batch_size):
        yield {k: v[order[i:i + batch_size]] for k, v in rows.items()}
    return {k: v[order[stop:]] for k, v in rows.items()}


def eval_plan(index: pa.Table, cfg: TrainConfig, val_split: str, encoders: bool = True) -> LabelPlan:
    """What models are scored on: detectors on ``val_split`` at the compression they train on
    (``cfg.detector_compression``; all when None), identity encoders (with ``encoders``) on their frame-disjoint
    hold-out (encoder rows of the plan are the hold-out keys, detector rows the validation keys)."""
    val = views.select(index, split=val_split, compression=cfg.detector_compression)["key"].to_pylist() \
        if roles.detectors(cfg.roles) else []
    held = encoder_split(index, cfg.seed, cfg.holdout_fraction)[1]["key"].to_pylist() \
        if encoders and roles.encoders(cfg.roles) else []
    return LabelPlan(class_sets(index), frozenset(held), frozenset(val))


def check_val_split(index: pa.Table, val_split: str, compression: str | None, data: str) -> None:
    """Refuse (one line) a validation split that cannot give an AUC: it needs real and fake frames."""
    labels = set(views.select(index, split=val_split, compression=compression)["det_label"].to_pylist())
    if labels != {0, 1}:
        raise UserError(f"split {val_split!r} of {data}{f' at {compression}' if compression else ''} holds det "
                        f"labels {sorted(labels)}: a validation AUC needs real and fake frames")


def validate(models: dict, batches, image_size: int, device: torch.device) -> dict[str, float]:
    """Score ``models`` (role -> module) on labelled batches of an :func:`eval_plan`: ``{role}/val_auc`` for
    detectors (``None`` when the rows hold one class only), ``{role}/holdout_top1`` for identity encoders."""
    scores: dict[str, list] = {r: [] for r in models}
    for model in models.values():
        model.eval()
    with torch.no_grad():
        for batch in batches:
            x = frames.resize(frames.to_float(torch.from_numpy(batch["image"]).to(device)), image_size)
            for role, model in models.items():
                spec = roles.get(role)
                rows = batch[spec.mask]
                if not rows.any():
                    continue
                out = score(model, role, x[torch.from_numpy(rows).to(device)])
                scores[role].append((batch[spec.label][rows], out.cpu().numpy()))
    record: dict[str, float] = {}
    for role, parts in scores.items():
        if not parts:
            raise ValueError(f"no evaluation rows for role {role}")
        label, out = (np.concatenate(p) for p in zip(*parts))
        if roles.get(role).detector:
            record[f"{role}/val_auc"] = binary_metrics(label, out)["auc"]
        else:
            record[f"{role}/holdout_top1"] = float((label == out).mean())
    return record

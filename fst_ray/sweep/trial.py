"""One sweep trial: train a configuration for ``epochs`` in a single process, score it after every epoch.

Design: a trial is one Tune function actor running the training engine (:func:`fst_ray.train.engine.fit`,
the code Ray Train's workers run) in-process: no nested Ray Train ``TorchTrainer``, no Ray Data. A nested
trainer would need a coordinator actor, its workers and Ray Data's read tasks per trial, i.e. more
CPUs than a 2-core machine has for two concurrent trials (and placement-group plumbing for Ray Data
inside Tune); a sweep's trials are small and parallel across trials instead of inside one. Frames are
streamed from Parquet with pyarrow (:func:`fst_ray.frames.iter_batches`; any URI, memory bounded by the
shuffle window), labelled with the same :class:`~fst_ray.train.labels.LabelPlan` as Ray Train runs, so a
checkpoint of a trial is a checkpoint of ``jobs/train_encoders.py`` too.

After each epoch the trial reports, per detector role, ``{role}/val_auc`` (frame-level AUC of P(fake) on
the ``val`` split), per identity role ``{role}/holdout_top1`` (its frame-disjoint hold-out), with a
checkpoint, so ASHA can stop it and ``Tuner.restore`` resumes it from its last finished epoch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import torch
from ray import tune

from fst_ray import frames, roles
from fst_ray.data import views
from fst_ray.evaluate import binary_metrics, score
from fst_ray.train.config import TrainConfig
from fst_ray.train.engine import fit
from fst_ray.train.labels import READ_COLUMNS, LabelPlan, class_sets, encoder_split, label_batch, make_plan

__all__ = ["labelled_batches", "eval_plan", "validate", "train_trial"]


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


def _drain(rows: dict[str, np.ndarray], batch_size: int, rng, keep_tail: bool):
    """Yield ``rows`` (permuted when ``rng``) in batches of ``batch_size``; with ``keep_tail`` an incomplete
    last batch is not yielded but returned."""
    n = len(rows["image"])
    order = rng.permutation(n) if rng is not None else np.arange(n)
    stop = n - n % batch_size if keep_tail else n
    for i in range(0, stop, batch_size):
        yield {k: v[order[i:i + batch_size]] for k, v in rows.items()}
    return {k: v[order[stop:]] for k, v in rows.items()}


def eval_plan(index: pa.Table, cfg: TrainConfig, val_split: str) -> LabelPlan:
    """What a trial is scored on: detectors on ``val_split``, identity encoders on their frame-disjoint
    hold-out (encoder rows of the plan are the hold-out keys, detector rows the validation keys)."""
    val = views.select(index, split=val_split)["key"].to_pylist() if roles.detectors(cfg.roles) else []
    held = encoder_split(index, cfg.seed, cfg.holdout_fraction)[1]["key"].to_pylist() if roles.encoders(cfg.roles) else []
    return LabelPlan(class_sets(index), frozenset(held), frozenset(val))


def validate(models: dict, batches, image_size: int, device: torch.device) -> dict[str, float]:
    """Score ``models`` (role -> module) on labelled batches of an :func:`eval_plan`: ``{role}/val_auc`` for
    detectors (``None`` when the rows hold one class only), ``{role}/holdout_top1`` for identity encoders."""
    scores: dict[str, list] = {r: [] for r in models}
    for model in models.values():
        model.eval()
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


def train_trial(params: dict, *, base: dict, index: pa.Table, val_split: str, threads: int = 1) -> None:
    """Tune function trainable: ``base`` (a TrainConfig dump) with ``params`` applied, trained by the engine
    and scored every epoch (see module doc); ``index`` is the ``frames`` index
    (:func:`fst_ray.frames.read_index`); ``threads``: torch CPU threads."""
    cfg = TrainConfig.model_validate({**base, **params})
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.set_num_threads(threads)
    plan = make_plan(index, cfg.roles, cfg.train_set, cfg.seed, cfg.holdout_fraction, cfg.detector_compression,
                     cfg.scene_balance)
    scoring = eval_plan(index, cfg, val_split)

    def batches(epoch: int):
        for batch in labelled_batches(cfg.input, plan, cfg.batch_size, cfg.shuffle_buffer, seed=cfg.seed + epoch):
            yield {k: torch.from_numpy(v).to(device) for k, v in batch.items()}

    def report(history: list[dict], folder: str | None) -> None:
        tune.report(history[-1], checkpoint=tune.Checkpoint.from_directory(folder))

    fit(cfg, plan.classes, fake_share=plan.fake_share, steps_per_epoch=math.ceil(plan.num_rows / cfg.batch_size),
        batches=batches, report=report, device=device, checkpoint=tune.get_checkpoint(),
        score=lambda models: validate(models, labelled_batches(cfg.input, scoring, 256), cfg.image_size, device))

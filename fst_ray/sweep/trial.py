"""One sweep trial: train a configuration for ``epochs`` in a single process, score it after every epoch.

Design: a trial is one Tune function actor running a plain PyTorch loop over the library's
:func:`fst_ray.train.loop.train_step` (no nested Ray Train ``TorchTrainer``, no Ray Data). A nested
trainer would need a coordinator actor, its workers and Ray Data's read tasks per trial, i.e. more
CPUs than a 2-core machine has for two concurrent trials (and placement-group plumbing for Ray Data
inside Tune); a sweep's trials are small and parallel across trials instead of inside one. Frames are
streamed from Parquet with pyarrow (any URI, memory bounded by the shuffle buffer), labelled with the
same :class:`~fst_ray.train.roles.LabelPlan` as Ray Train runs, and trained with the same step, schedule,
augmentations and checkpoint files (one model file per role, ``train_state.pt``), so a checkpoint of a
trial is a checkpoint of ``jobs/train_encoders.py`` too.

After each epoch the trial reports, per detector role, ``{role}/val_auc`` (frame-level AUC of P(fake) on
the ``val`` split), per identity role ``{role}/holdout_top1`` (its frame-disjoint hold-out), with a
checkpoint, so ASHA can stop it and ``Tuner.restore`` resumes it from its last finished epoch.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import torch
from ray import tune

from fst_ray import storage, tables
from fst_ray.data import views
from fst_ray.evaluate import binary_metrics
from fst_ray.models import create_model
from fst_ray.train.augment import resize, to_float
from fst_ray.train.config import DETECTOR_ROLES, TrainConfig
from fst_ray.train.loop import _num_classes, _restore, _save, cosine_lr, train_step
from fst_ray.train.roles import ROLE_LABEL, ROLE_MASK, LabelPlan, class_ids, encoder_split, label_batch, make_plan
from fst_ray.train.trainer import READ_COLUMNS

__all__ = ["labelled_batches", "eval_plan", "validate", "train_trial"]

#: labelled-batch fields that become tensors
TENSORS = ("image", "det", "source", "target", "m_encoder", "m_detector")


def labelled_batches(data: str, plan: LabelPlan, batch_size: int, shuffle_buffer: int = 0,
                     seed: int | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Labelled rows of ``frames`` (:func:`~fst_ray.train.roles.label_batch`) for the keys of ``plan``, in
    batches of ``batch_size`` (the last may be smaller). With ``seed``: files in a random order and rows
    shuffled within windows of ``max(shuffle_buffer, batch_size)`` rows; without: table order."""
    fs, path = storage.resolve(views.table_uri(data, "frames"))
    files = sorted(pads.dataset(path, filesystem=fs, format="parquet").files)
    rng = np.random.default_rng(seed) if seed is not None else None
    if rng is not None:
        files = [files[i] for i in rng.permutation(len(files))]
    window = max(shuffle_buffer, batch_size)
    scan = pads.dataset(files, filesystem=fs, format="parquet", schema=tables.FRAMES).to_batches(
        columns=READ_COLUMNS, filter=views.keys_filter(plan.encoder_keys | plan.detector_keys), batch_size=window)
    tail = None  # labelled rows not yet yielded
    for record_batch in scan:
        if record_batch.num_rows == 0:
            continue
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
    val = views.select(index, split=val_split)["key"].to_pylist() if set(cfg.roles) & set(DETECTOR_ROLES) else []
    held = []
    if set(cfg.roles) - set(DETECTOR_ROLES):
        held = encoder_split(index, cfg.seed, cfg.holdout_fraction)[1]["key"].to_pylist()
    return LabelPlan(tuple(class_ids(index)), frozenset(held), frozenset(val))


@torch.no_grad()
def validate(models: dict, batches, image_size: int, device: torch.device) -> dict[str, float]:
    """Score ``models`` (role -> module) on labelled batches of an :func:`eval_plan`: ``{role}/val_auc`` for
    detectors (``None`` when the rows hold one class only), ``{role}/holdout_top1`` for identity encoders."""
    scores: dict[str, list] = {r: [] for r in models}
    for model in models.values():
        model.eval()
    for batch in batches:
        x = resize(to_float(torch.from_numpy(batch["image"]).to(device)), image_size)
        for role, model in models.items():
            rows = batch[ROLE_MASK[role]]
            if not rows.any():
                continue
            logits = model(x[torch.from_numpy(rows).to(device)]).float()
            label = batch[ROLE_LABEL[role]][rows]
            out = torch.softmax(logits, 1)[:, 1] if role in DETECTOR_ROLES else logits.argmax(1)
            scores[role].append((label, out.cpu().numpy()))
    record: dict[str, float] = {}
    for role, parts in scores.items():
        if not parts:
            raise ValueError(f"no evaluation rows for role {role}")
        label, out = (np.concatenate(p) for p in zip(*parts))
        if role in DETECTOR_ROLES:
            record[f"{role}/val_auc"] = binary_metrics(label, out)["auc"]
        else:
            record[f"{role}/holdout_top1"] = float((label == out).mean())
    return record


def train_trial(params: dict, *, base: dict, index: pa.Table, val_split: str, threads: int = 1) -> None:
    """Tune function trainable: ``base`` (a TrainConfig dump) with ``params`` applied, trained and scored
    every epoch (see module doc); ``index`` is the ``frames`` index (``views.read_index``); ``threads``:
    torch CPU threads."""
    cfg = TrainConfig.model_validate({**base, **params})
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.set_num_threads(threads)
    plan = make_plan(index, cfg.roles, cfg.train_set, cfg.seed, cfg.holdout_fraction, cfg.h2_compression)
    scoring = eval_plan(index, cfg, val_split)
    classes = list(plan.classes)

    torch.manual_seed(cfg.seed)
    models = {r: create_model(r, cfg.arch, _num_classes(r, classes), pretrained=cfg.weights is not None,
                              weights=cfg.weights).to(device) for r in cfg.roles}
    optimizers = {r: torch.optim.AdamW(m.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
                  for r, m in models.items()}
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp and device.type == "cuda")
    state = _restore(tune.get_checkpoint(), cfg, models)
    start, step, history = 0, 0, []
    if state is not None:
        for r, o in optimizers.items():
            o.load_state_dict(state["optimizers"][r])
        scaler.load_state_dict(state["scaler"])
        start, step, history = state["epoch"] + 1, state["step"], json.loads(state["history"])

    total_steps = cfg.epochs * math.ceil(plan.num_rows / cfg.batch_size)
    warmup = int(cfg.warmup_fraction * total_steps)
    for epoch in range(start, cfg.epochs):
        gen = torch.Generator(device=device).manual_seed(cfg.seed * 1_000_003 + epoch * 1_009)
        for m in models.values():
            m.train()
        sums = {r: torch.zeros(4, dtype=torch.float64, device=device) for r in cfg.roles}
        lr = cfg.lr
        for batch in labelled_batches(cfg.data, plan, cfg.batch_size, cfg.shuffle_buffer, seed=cfg.seed + epoch):
            if len(batch["image"]) < 2:  # BatchNorm needs two rows
                continue
            lr = cosine_lr(step, total_steps, cfg.lr, warmup)
            train_step({k: torch.from_numpy(batch[k]).to(device) for k in TENSORS}, models, optimizers, scaler,
                       cfg, lr, gen, sums)
            step += 1
        record = {"epoch": epoch, "step": step, "lr": lr}
        for role in cfg.roles:
            loss_sum, correct, rows, _ = sums[role].tolist()
            record[f"{role}/loss"] = loss_sum / max(rows, 1)
            record[f"{role}/acc"] = correct / max(rows, 1)
        record.update(validate(models, labelled_batches(cfg.data, scoring, 256), cfg.image_size, device))
        history.append(record)
        with tempfile.TemporaryDirectory() as d:
            _save(d, cfg, classes, models, optimizers, scaler, epoch, step, history)
            tune.report(record, checkpoint=tune.Checkpoint.from_directory(d))

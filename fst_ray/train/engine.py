"""The training engine: one data stream, several models (roles) updated on every batch. Plain PyTorch, no
Ray: Ray Train's worker loop (:func:`fst_ray.train.trainer.train_loop`), a Tune trial
(:func:`fst_ray.sweep.trial.train_trial`) and the plain-PyTorch benchmark all run :func:`fit`.

Each batch of labelled frames (:func:`fst_ray.train.labels.label_batch`) is read and decoded once; each
role takes its rows (its subset's mask), augments them its own way (:mod:`fst_ray.roles`) and steps its own
(DDP-wrapped, where distributed) model and AdamW optimiser under one cosine learning-rate schedule. Every
epoch a checkpoint is written (one model file per role plus ``train_state.pt``: epoch, step, optimiser and
grad-scaler states, metric history; with ``select_epoch: val_auc`` also each detector's model of the epoch
with the best validation AUC so far) and handed to the caller's ``report``; a restarted or re-run worker
group continues from the last checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import torch
import torch.distributed as dist
import torch.nn.functional as F

from fst_ray import roles
from fst_ray.roles import AugmentPolicy
from fst_ray.models import create_model, fst_loss, safe_torch_load, to_bytes
from fst_ray.train.augment import augment
from fst_ray.train.config import TrainConfig

__all__ = ["cosine_lr", "det_class_weights", "freeze_batchnorm", "train_step", "fit", "selected_file", "TRAIN_STATE"]

TRAIN_STATE = "train_state.pt"


def cosine_lr(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps to ``peak``, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * peak * (1.0 + math.cos(math.pi * progress))


def det_class_weights(fake_share: float, balance: bool) -> list[float]:
    """Real/fake weights of the detectors' cross-entropy: each class's inverse share (halved, so the mean
    weight over the training set is 1), or ``[1, 1]``."""
    if not balance or not 0 < fake_share < 1:
        return [1.0, 1.0]
    return [0.5 / (1 - fake_share), 0.5 / fake_share]


def _role_loss(role: str, model, x: torch.Tensor, labels: dict[str, torch.Tensor], lam: float,
               det_weight: torch.Tensor | None):
    """Per-sample loss ``[n]``, correctness ``[n]`` and the FST interaction ``[n]`` (zeros for other roles);
    ``det_weight`` weights the real/fake classes of the detectors' cross-entropy."""
    spec = roles.get(role)
    if spec.family == "fst":
        out = model(x, labels["det"])
        terms = fst_loss(out, labels["det"], labels["source"], labels["target"], lam, det_weight)
        return terms["total"], out.det.argmax(1) == labels["det"], terms["interaction"]
    logits = model(x)
    y = labels[spec.label]
    loss = F.cross_entropy(logits.float(), y, weight=det_weight if spec.detector else None, reduction="none")
    return loss, logits.argmax(1) == y, torch.zeros_like(loss)


def freeze_batchnorm(model: torch.nn.Module) -> None:
    """Put ``model``'s BatchNorm layers in eval mode (their running statistics fixed, their affine weights still
    trained): a model fine-tuned from pretrained weights on small batches otherwise learns under batch
    statistics that its eval mode does not reproduce."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()


def augment_policy(role: str, cfg: TrainConfig) -> AugmentPolicy:
    """``role``'s training augmentation; a detector's blur/JPEG probability is ``cfg.degrade`` where set."""
    spec = roles.get(role)
    if spec.detector and cfg.degrade is not None:
        return replace(spec.augment, degrade=cfg.degrade)
    return spec.augment


def train_step(batch: dict[str, torch.Tensor], models: dict, optimizers: dict, scaler, cfg: TrainConfig,
               lr: float, gen: torch.Generator, sums: dict[str, torch.Tensor],
               det_weight: torch.Tensor | None = None) -> None:
    """One optimisation step of every role on one labelled batch. Each role takes its rows;
    ``sums[role]`` accumulates loss, correct, rows, interaction; ``det_weight``: the detectors' real/fake
    weights (:func:`det_class_weights`)."""
    n = len(batch["image"])
    device = batch["image"].device
    total = torch.zeros((), device=device)
    for role in cfg.roles:
        spec = roles.get(role)
        rows = batch[spec.mask].nonzero().squeeze(1)
        weight = batch[spec.weight][rows].float() if spec.weight else torch.ones(len(rows), device=device)
        if len(rows) < 2:  # keep every rank's forward alike (DDP) but let these rows count 0
            rows, weight = torch.arange(n, device=device), torch.zeros(n, device=device)
        x = augment(batch["image"][rows], augment_policy(role, cfg), cfg.image_size, gen)
        labels = {k: batch[k][rows] for k in ("det", "source", "target")}
        with torch.autocast(device.type, dtype=torch.float16, enabled=scaler.is_enabled()):
            loss, correct, inter = _role_loss(role, models[role], x, labels, cfg.fst_lambda, det_weight)
        total = total + (weight * loss.float()).sum() / weight.sum().clamp(min=1)
        sums[role] += torch.stack([(weight * loss.float()).sum(), (weight * correct.float()).sum(),
                                   weight.sum(), (weight * inter.float()).sum()]).double().detach()
    for o in optimizers.values():
        for group in o.param_groups:
            group["lr"] = lr
        o.zero_grad(set_to_none=True)
    scaler.scale(total).backward()
    for o in optimizers.values():
        scaler.step(o)
    scaler.update()


def _checksum(model) -> torch.Tensor:
    """``[sum, sum of squares]`` of all parameters, float64: equal on every rank iff DDP kept them in sync."""
    params = [p.detach().double() for p in model.parameters()]
    return torch.stack([sum(p.sum() for p in params), sum((p * p).sum() for p in params)])


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _sum(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over the ranks of a distributed run (in place); ``t`` itself otherwise."""
    if _distributed():
        dist.all_reduce(t)
    return t


def _gather(t: torch.Tensor) -> list[torch.Tensor]:
    if not _distributed():
        return [t]
    out = [torch.zeros_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(out, t)
    return out


@dataclass(frozen=True)
class CrashOnce:
    """Failure drill (tests; never a user setting): worker ``rank`` exits hard (``os._exit``) after its first step
    of ``epoch``, once: it first creates ``marker`` (a local path) and does nothing if the marker exists. It waits
    ``delay_s`` before exiting, as a real mid-epoch crash would, so that Ray's controller (polling workers every
    2 s) has collected the previous epoch's report."""

    marker: str
    rank: int = 1
    epoch: int = 1
    delay_s: float = 3.0


def _maybe_crash(drill: CrashOnce | None, rank: int, epoch: int) -> None:
    if drill and drill.rank == rank and drill.epoch == epoch and not os.path.exists(drill.marker):
        with open(drill.marker, "w") as f:
            f.write(f"rank {rank} exited in epoch {epoch}\n")
        time.sleep(drill.delay_s)
        os._exit(1)


@dataclass(frozen=True)
class _Selected:
    """A detector's kept epoch (``select_epoch: val_auc``): its validation AUC, the epoch, its model file."""

    val_auc: float
    epoch: int
    model: bytes


def selected_file(role: str) -> str:
    """The checkpoint's file of ``role``'s kept epoch (``select_epoch: val_auc``; beside ``{role}.pt``, the last)."""
    return f"{role}.selected.pt"


def _restore(checkpoint, cfg: TrainConfig, models: dict) -> tuple[dict | None, dict[str, _Selected]]:
    """Load role weights into ``models`` from a Ray checkpoint; returns its train state (``None``: none) and
    the detectors' kept epochs."""
    if checkpoint is None:
        return None, {}
    with checkpoint.as_directory() as d:
        state = safe_torch_load(open(os.path.join(d, TRAIN_STATE), "rb").read(), TRAIN_STATE)
        if state["roles"] != cfg.roles or state["arch"] != cfg.arch:
            raise ValueError(f"run {cfg.name!r} holds a checkpoint of roles {state['roles']} / {state['arch']}, "
                             f"not {cfg.roles} / {cfg.arch}: choose another run name")
        for role, model in models.items():
            payload = safe_torch_load(open(os.path.join(d, f"{role}.pt"), "rb").read(), f"{role}.pt")
            model.load_state_dict(payload["state_dict"])
        selected = {r: _Selected(auc, epoch, open(os.path.join(d, selected_file(r)), "rb").read())
                    for r, (auc, epoch) in state.get("selected", {}).items()}
    return state, selected


def _model_bytes(cfg: TrainConfig, classes: Mapping[str, Sequence[str]], role: str, model, epoch: int) -> bytes:
    """``role``'s model file as of ``epoch``."""
    meta = {"epoch": epoch, "image_size": cfg.image_size, "train_set": cfg.train_set, "seed": cfg.seed,
            "holdout_fraction": cfg.holdout_fraction, "detector_compression": cfg.detector_compression,
            "scene_balance": cfg.scene_balance, "data": cfg.input,
            "run": cfg.name}
    spec = roles.get(role)
    return to_bytes(model, role=role, arch=cfg.arch, num_classes=spec.num_classes(classes),
                    classes=spec.classes(classes), metadata=meta)


def _save(d: str, cfg: TrainConfig, classes: Mapping[str, Sequence[str]], models: dict, optimizers: dict, scaler, epoch: int,
          step: int, history: list[dict], selected: dict[str, _Selected]) -> None:
    for role, model in models.items():
        with open(os.path.join(d, f"{role}.pt"), "wb") as f:
            f.write(_model_bytes(cfg, classes, role, model, epoch))
    for role, best in selected.items():
        with open(os.path.join(d, selected_file(role)), "wb") as f:
            f.write(best.model)
    torch.save({"roles": cfg.roles, "arch": cfg.arch, "epoch": epoch, "step": step,
                "optimizers": {r: o.state_dict() for r, o in optimizers.items()}, "scaler": scaler.state_dict(),
                "history": json.dumps(history),
                "selected": {r: [b.val_auc, b.epoch] for r, b in selected.items()}}, os.path.join(d, TRAIN_STATE))


def _select(cfg: TrainConfig, classes: Mapping[str, Sequence[str]], models: dict, record: dict, epoch: int,
            selected: dict[str, _Selected]) -> None:
    """With ``cfg.select_epoch == "val_auc"``: keep each detector's weights of the epoch with the highest
    ``{role}/val_auc`` so far (a later epoch wins a tie: more training at the same validation score) and note
    the kept epoch in ``record``."""
    if cfg.select_epoch != "val_auc":
        return
    for role in roles.detectors(cfg.roles):
        auc = record.get(f"{role}/val_auc")
        if auc is None:
            raise ValueError(f"select_epoch val_auc: epoch {epoch} has no {role}/val_auc (score the val split)")
        if role not in selected or auc >= selected[role].val_auc:
            selected[role] = _Selected(auc, epoch, _model_bytes(cfg, classes, role, models[role], epoch))
        record[f"{role}/selected_epoch"] = selected[role].epoch


def fit(cfg: TrainConfig, classes: Mapping[str, Sequence[str]], *, fake_share: float, steps_per_epoch: int,
        batches: Callable[[int], Iterable[dict[str, torch.Tensor]]],
        report: Callable[[list[dict], str | None], None], device: torch.device, checkpoint=None, rank: int = 0,
        wrap: Callable = lambda m: m, score: Callable[[dict], dict] | None = None,
        drill: CrashOnce | None = None) -> dict:
    """Train ``cfg.roles`` for ``cfg.epochs`` epochs; returns the models (role -> module).

    ``classes``: the sorted ids of each identity column (:func:`fst_ray.train.labels.class_sets`); ``fake_share``: share of fakes among the detectors' frames;
    ``steps_per_epoch``: for the schedule; ``batches(epoch)``: labelled batches on ``device``;
    ``checkpoint``: a Ray checkpoint to resume from; ``wrap``: e.g. Ray Train's ``prepare_model`` (DDP);
    ``score(models)``: extra metrics of the epoch's record (validation; with ``cfg.select_epoch == "val_auc"``
    it must give each detector's ``{role}/val_auc``, and every checkpoint also holds each detector's model of its
    best epoch so far, :func:`selected_file`). After every epoch
    ``report(history, folder)`` gets the metric history (last = this epoch) and, on rank 0, a folder with
    the checkpoint files (``None`` on other ranks), valid during the call. Distributed runs (a torch
    process group) reduce the metrics over their ranks. ``drill``: a worker crash for the fault tests."""
    amp = cfg.amp and device.type == "cuda"
    torch.manual_seed(cfg.seed)
    start_from = (cfg.pretrained or cfg.weights is not None) and checkpoint is None  # a resumed run has its own
    raw = {r: create_model(r, cfg.arch, roles.get(r).num_classes(classes),
                           pretrained=start_from, weights=cfg.weights if start_from else None) for r in cfg.roles}
    state, selected = _restore(checkpoint, cfg, raw)
    models = {r: wrap(m.to(device)) for r, m in raw.items()}
    optimizers = {r: torch.optim.AdamW(m.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
                  for r, m in models.items()}
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    start, step, history, resumed_from = 0, 0, [], None
    if state is not None:
        for r, o in optimizers.items():
            o.load_state_dict(state["optimizers"][r])
        scaler.load_state_dict(state["scaler"])
        start, step, history, resumed_from = state["epoch"] + 1, state["step"], json.loads(state["history"]), state["epoch"]

    frozen_bn = cfg.freezes_batchnorm
    det_weight = torch.tensor(det_class_weights(fake_share, cfg.balance_classes), device=device)
    total_steps = cfg.epochs * steps_per_epoch
    warmup = int(cfg.warmup_fraction * total_steps)
    world = dist.get_world_size() if _distributed() else 1
    for epoch in range(start, cfg.epochs):
        gen = torch.Generator(device=device).manual_seed(cfg.seed * 1_000_003 + epoch * 1_009 + rank)
        for m in models.values():
            m.train()
            if frozen_bn:
                freeze_batchnorm(m)
        # per role: loss sum, correct, rows, interaction sum
        sums = {r: torch.zeros(4, dtype=torch.float64, device=device) for r in cfg.roles}
        images, t0, lr, waited = 0, time.perf_counter(), cfg.lr, 0.0
        stream = iter(batches(epoch))
        while True:
            t_wait = time.perf_counter()
            batch = next(stream, None)
            waited += time.perf_counter() - t_wait
            if batch is None:
                break
            n = len(batch["image"])
            if n < 2:  # BatchNorm needs two rows; equal shards make every rank skip alike
                continue
            lr = cosine_lr(step, total_steps, cfg.lr, warmup)
            train_step(batch, models, optimizers, scaler, cfg, lr, gen, sums, det_weight)
            step += 1
            images += n
            _maybe_crash(drill, rank, epoch)
        seconds = time.perf_counter() - t0

        record = {"epoch": epoch, "step": step, "lr": lr, "resumed_from_epoch": resumed_from,
                  "world_size": world, "seconds": seconds, "data_wait_s": waited}
        record["images_per_s"] = _sum(torch.tensor([images / max(seconds, 1e-9)], dtype=torch.float64,
                                                   device=device)).item()
        for role in cfg.roles:
            loss_sum, correct, rows, inter = _sum(sums[role]).tolist()
            record[f"{role}/loss"] = loss_sum / max(rows, 1)
            record[f"{role}/acc"] = correct / max(rows, 1)
            record[f"{role}/rows"] = int(rows)
            if roles.get(role).family == "fst":
                record[f"{role}/interaction"] = inter / max(rows, 1)
            gathered = _gather(_checksum(models[role]).to(device))
            record[f"{role}/weight_checksums"] = [g[0].item() for g in gathered]
            record[f"{role}/weights_in_sync"] = all(torch.equal(g, gathered[0]) for g in gathered)
        if score is not None:
            record.update(score(models))
        _select(cfg, classes, models, record, epoch, selected)
        history.append(record)
        if rank == 0:
            with tempfile.TemporaryDirectory() as d:
                _save(d, cfg, classes, models, optimizers, scaler, epoch, step, history, selected)
                report(history, d)
        else:
            report(history, None)
    return models

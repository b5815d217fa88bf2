"""Encoder training on Ray Train: plan the labels, build the Ray Data stream, run the TorchTrainer whose
workers run the training engine (:func:`fst_ray.train.engine.fit`), export the final model files; or, with
``backend: local``, the same engine in this process on a pyarrow stream. The science is in
:mod:`fst_ray.models` and the engine; this is wiring."""

from __future__ import annotations

import contextlib
import json
import math
import os
import posixpath
import tempfile
import threading
import time
import warnings

import pyarrow as pa
import ray
import ray.data
import ray.train
import ray.train.torch
import torch
from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer

from fst_ray import frames, lease, roles, storage, tables
from fst_ray.config import UserError, record_or_refuse
from fst_ray.data.records import ingest_params
from fst_ray.data import views
from fst_ray.data.stream import frames_dataset
from fst_ray.layout import model_file
from fst_ray.runtime import init_ray, no_cpu_alarm
from fst_ray.train.config import TrainConfig, TrainSummary
from fst_ray.train.engine import TRAIN_STATE, CrashOnce, fit, selected_file
from fst_ray.train.labels import READ_COLUMNS, LabelPlan, label_batch, make_plan
from fst_ray.train.local import VAL_SPLIT, check_val_split, epoch_batches, eval_plan, labelled_batches, validate

__all__ = ["training_dataset", "train_loop", "train_encoders", "run_dir", "check_run", "trained_epochs", "DETECTOR_FRAMES"]


def run_dir(cfg: TrainConfig) -> str:
    """URI of a run's folder: Ray's checkpoints, ``metrics.json``, ``tensorboard/``, ``models/``."""
    return storage.join(cfg.output, cfg.name)


PARAMS_FILE = "_train.json"
#: the keys of the frames a run's detectors train on, written beside its models
DETECTOR_FRAMES = "detector_frames.parquet"
# not what a model depends on: where it runs and writes; epochs: a run re-run with more of them continues
_NOT_PARAMS = {"input", "output", "name", "gpu", "cpus_per_worker", "cache", "max_failures", "epochs"}


def run_params(cfg: TrainConfig) -> dict:
    """What a run's models depend on: every training setting but where it runs and writes, and how its frames
    were made (the ingest's parameters, not the tables' path)."""
    params = cfg.model_dump(mode="json", exclude=_NOT_PARAMS)
    for field, default in (("select_epoch", "last"), ("backend", "ray_train")):
        if params[field] == default:  # recorded only when set, as runs recorded before the setting existed
            del params[field]
    if cfg.weights:
        params["weights"] = storage.digest(cfg.weights)  # the starting weights' content, not their path
    return {**params, "frames": ingest_params(cfg.input)}


def check_run(cfg: TrainConfig) -> None:
    """Record the run's settings in its folder, or refuse to resume or reuse a run made with others."""
    files = [u for u, _ in storage.list_files(run_dir(cfg)) if not u.endswith((PARAMS_FILE, lease.LEASE_FILE))]
    record_or_refuse(storage.join(run_dir(cfg), PARAMS_FILE), run_params(cfg), "a training run", populated=bool(files))


def _metrics_uri(cfg: TrainConfig) -> str:
    return storage.join(run_dir(cfg), "metrics.json")


def _history(cfg: TrainConfig) -> list[dict]:
    """The run's ``metrics.json``: one record per finished epoch (raises when it is not there)."""
    return json.loads(storage.read_bytes(_metrics_uri(cfg)))


def trained_epochs(cfg: TrainConfig) -> int:
    """Epochs the run at ``run_dir(cfg)`` has finished (0 when there is none)."""
    return len(_history(cfg)) if storage.exists(_metrics_uri(cfg)) else 0


@contextlib.contextmanager
def epoch_progress(cfg: TrainConfig, every_s: float = 3.0, enabled: bool = True):
    """A bar over the run's epochs on the driver, with each role's last loss and the images/s: read every
    ``every_s`` seconds from the ``metrics.json`` the workers rewrite after each epoch (the workers' own
    output stays in Ray's log files). A bar never fails a run: a failed read skips that update."""
    if not enabled:
        yield
        return
    from tqdm import tqdm

    bar = tqdm(total=cfg.epochs, desc="train", unit="epoch")
    stop = threading.Event()

    def update() -> None:
        try:
            history = _history(cfg)
        except (OSError, ValueError):  # not written yet, caught mid-rewrite, or the store unreachable for now
            return
        if len(history) > bar.n:
            last = history[-1]
            bar.set_postfix({**{f"{r} loss": f"{last[f'{r}/loss']:.3f}" for r in cfg.roles if f"{r}/loss" in last},
                             "img/s": f"{last.get('images_per_s', 0):.0f}"}, refresh=False)
            bar.update(len(history) - bar.n)

    def poll() -> None:
        while not stop.wait(every_s):
            update()

    update()  # a resumed run starts at the epochs it has
    thread = threading.Thread(target=poll, name="epoch-progress", daemon=True)
    thread.start()
    finished = False
    try:
        yield
        finished = True
    finally:
        stop.set()
        thread.join()
        if finished:
            update()
        bar.close()


def _write_logs(cfg: TrainConfig, history: list[dict]) -> None:
    """Rewrite ``metrics.json`` and the TensorBoard event file from the whole history (so a resumed run
    logs each checkpointed epoch exactly once, on local or object storage alike)."""
    from tensorboardX import SummaryWriter

    storage.write_bytes(_metrics_uri(cfg), json.dumps(history, indent=1).encode())
    with tempfile.TemporaryDirectory() as tmp:
        writer = SummaryWriter(logdir=tmp, flush_secs=3600)
        for rec in history:
            for k, v in rec.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    writer.add_scalar(k, v, global_step=rec["epoch"])
        writer.close()
        (event,) = [f for f in os.listdir(tmp) if "tfevents" in f]
        with open(os.path.join(tmp, event), "rb") as f:
            storage.write_bytes(storage.join(run_dir(cfg), "tensorboard", "events.out.tfevents.fst-ray"), f.read())


def train_loop(loop_config: dict) -> None:
    """Ray Train worker entry point: the engine over this worker's shard of the labelled stream.
    ``loop_config``: ``config`` (a :class:`TrainConfig` dump), ``classes`` (sorted ids per identity column),
    ``steps_per_epoch`` (per worker, for the schedule) and ``fake_share`` (of the detectors' frames)."""
    cfg = TrainConfig.model_validate(loop_config["config"])
    torch.set_num_threads(max(1, int(cfg.cpus_per_worker)))
    shard = ray.train.get_dataset_shard("train")
    device = ray.train.torch.get_device()

    def batches(epoch: int):
        return shard.iter_torch_batches(batch_size=cfg.batch_size, device=device, prefetch_batches=2,
                                        local_shuffle_buffer_size=cfg.shuffle_buffer or None,
                                        local_shuffle_seed=cfg.seed + epoch)

    nodes = [ray.get_runtime_context().get_node_id()]
    if torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
        nodes = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(nodes, ray.get_runtime_context().get_node_id())

    def report(history: list[dict], folder: str | None) -> None:
        metrics = {**history[-1], "nodes": len(set(nodes))}  # and the Ray nodes the workers ran on
        if folder is None:
            ray.train.report(metrics)
            return
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))
        _write_logs(cfg, history)

    fit(cfg, loop_config["classes"], fake_share=loop_config["fake_share"],
        steps_per_epoch=loop_config["steps_per_epoch"], batches=batches, report=report, device=device,
        checkpoint=ray.train.get_checkpoint(), rank=ray.train.get_context().get_world_rank(),
        wrap=ray.train.torch.prepare_model, score=_val_score(cfg, device), drill=loop_config.get("drill"))


def _val_score(cfg: TrainConfig, device: torch.device):
    """With ``select_epoch: val_auc``: the detectors' AUC on the val split (:mod:`fst_ray.train.local`)."""
    detectors = roles.detectors(cfg.roles)
    if cfg.select_epoch != "val_auc" or not detectors:
        return None
    plan = eval_plan(frames.read_index(cfg.input), cfg, VAL_SPLIT, encoders=False)
    return lambda models: validate({r: models[r] for r in detectors}, labelled_batches(cfg.input, plan, 256),
                                   cfg.image_size, device)


def training_dataset(cfg: TrainConfig, plan: LabelPlan) -> ray.data.Dataset:
    """The labelled stream every role trains from (each row read and decoded once per epoch for all
    roles; rows no role uses dropped), or with ``cfg.cache`` once for the whole run."""
    ds = frames_dataset(cfg.input, READ_COLUMNS, plan.encoder_keys | plan.detector_keys)
    ds = ds.map_batches(label_batch, fn_kwargs={"plan": plan}, batch_format="numpy", batch_size=256)
    return ds.materialize() if cfg.cache else ds


def resolve_cache(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with ``cache`` decided: as given, else on when the ``frames`` table (bytes on storage) takes
    under a third of Ray's object store (caching removes the per-epoch re-read: bench/train.py)."""
    if cfg.cache is not None:
        return cfg
    store = ray.cluster_resources().get("object_store_memory", 0)
    return cfg.model_copy(update={"cache": views.table_bytes(cfg.input, "frames") < store / 3})


def _export_models(checkpoint, cfg: TrainConfig) -> dict[str, str]:
    """Copy each role's model file of the final checkpoint to ``{run}/models/{role}.pt``: the last epoch's, or a
    detector's kept epoch (``select_epoch: val_auc``)."""
    out = {}
    for role in cfg.roles:
        chosen = selected_file(role) if cfg.select_epoch == "val_auc" and roles.get(role).detector else f"{role}.pt"
        with checkpoint.filesystem.open_input_stream(f"{checkpoint.path}/{chosen}") as f:
            data = f.read()
        out[role] = model_file(run_dir(cfg), role)
        storage.write_bytes(out[role], data)
    return out


def resolve_cpus(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with ``cpus_per_worker`` set (see :class:`TrainConfig`); refuses a run that would leave Ray
    Data no CPU on the cluster as it is (the workers would then wait forever for data)."""
    total = ray.cluster_resources().get("CPU", 0)
    cpus = cfg.cpus_per_worker or (1.0 if cfg.gpu else max(0.25, (total - 1) / cfg.workers))
    reserved = cfg.workers * cpus
    if reserved <= total < reserved + 0.5:
        raise ValueError(f"{cfg.workers} workers x {cpus:g} CPUs leave {total - reserved:g} of {total:g} CPUs "
                         f"for Ray Data, which then never feeds them: lower cpus_per_worker")
    return cfg.model_copy(update={"cpus_per_worker": cpus})


def _deterministic_split() -> DataConfig:
    """Ray Train's ingest options with ``preserve_order``: the stream is then split among the workers in a
    fixed way instead of by whichever worker asks first, so a run with several workers is reproducible
    (with the default options two runs of the same config gave different weights)."""
    with warnings.catch_warnings():  # Ray 2.60 warns about its own default (exclude_resources) here
        warnings.filterwarnings("ignore", message=".*exclude_resources.*deprecated")
        options = DataConfig.default_ingest_options()
        options.preserve_order = True
        return DataConfig(execution_options=options)


def _local_checkpoints(cfg: TrainConfig) -> list[str]:
    """The complete checkpoints of a ``backend: local`` run (folders holding a train state), oldest first."""
    states = [u for u, _ in storage.list_files(run_dir(cfg))
              if posixpath.basename(u) == TRAIN_STATE and posixpath.basename(storage.parent(u)).startswith("epoch_")]
    return sorted(storage.parent(u) for u in states)


def _checkpoint(uri: str) -> ray.train.Checkpoint:
    fs, path = storage.resolve(uri)
    return ray.train.Checkpoint(path, filesystem=fs)


def _fit_here(cfg: TrainConfig, plan: LabelPlan, steps_per_epoch: int) -> tuple[ray.train.Checkpoint, dict]:
    """``backend: local``: the engine in this process on the pyarrow stream (:mod:`fst_ray.train.local`), a
    checkpoint folder ``epoch_NNNN`` per epoch in the run's folder (the last two kept; the train state written
    last, so a folder that holds it is complete), resumed from the last one. Returns it and the last record."""
    device = torch.device("cuda" if cfg.gpu else "cpu")
    done = _local_checkpoints(cfg)

    def report(history: list[dict], folder: str) -> None:
        target = storage.join(run_dir(cfg), f"epoch_{history[-1]['epoch']:04d}")
        for name in sorted(os.listdir(folder), key=lambda n: n == TRAIN_STATE):
            with open(os.path.join(folder, name), "rb") as f:
                storage.write_bytes(storage.join(target, name), f.read())
        _write_logs(cfg, history)
        for old in _local_checkpoints(cfg)[:-2]:
            storage.delete_dir(old)

    threads = torch.get_num_threads()
    if cfg.cpus_per_worker:  # this process's torch threads, for the run only
        torch.set_num_threads(max(1, int(cfg.cpus_per_worker)))
    try:
        fit(cfg, plan.classes, fake_share=plan.fake_share, steps_per_epoch=steps_per_epoch,
            batches=lambda epoch: epoch_batches(cfg, plan, epoch, device), report=report, device=device,
            checkpoint=_checkpoint(done[-1]) if done else None, score=_val_score(cfg, device))
    finally:
        torch.set_num_threads(threads)
    return _checkpoint(_local_checkpoints(cfg)[-1]), _history(cfg)[-1]


def train_encoders(cfg: TrainConfig, progress: bool = True, drill: CrashOnce | None = None) -> TrainSummary:
    """Train ``cfg.roles`` together on ``cfg.input``; rerunning the same ``cfg.name`` resumes it. ``progress``:
    a bar over the epochs on stderr; ``drill``: a worker crash for the fault tests (Ray Train only)."""
    t0 = time.perf_counter()
    if cfg.backend == "local":
        if drill is not None:
            raise ValueError("the worker-crash drill needs Ray Train's workers (backend ray_train)")
    else:
        init_ray()
        cfg = resolve_cache(resolve_cpus(cfg))
    # absolute: the workers write metrics.json, and their working folder is not the driver's
    cfg = cfg.model_copy(update={"input": storage.canonical(cfg.input), "output": storage.canonical(cfg.output)})
    index = frames.read_index(cfg.input)
    plan = make_plan(index, cfg.roles, cfg.train_set, cfg.seed, cfg.holdout_fraction,
                     cfg.detector_compression, cfg.scene_balance)
    if plan.num_rows < 2 * cfg.workers:
        raise ValueError(f"only {plan.num_rows} training rows in {cfg.input} for roles {cfg.roles}")
    if roles.detectors(cfg.roles) and not 0 < plan.fake_share < 1:
        missing = "no fakes" if plan.fake_share == 0 else "no reals"
        raise UserError(f"the detectors' training frames in {cfg.input} ({cfg.train_set} set, compression "
                        f"{cfg.detector_compression or 'all'}) hold {missing}: a detector needs both classes")
    if cfg.select_epoch == "val_auc" and roles.detectors(cfg.roles):
        check_val_split(index, VAL_SPLIT, cfg.detector_compression, cfg.input)
    check_run(cfg)
    if plan.detector_keys:  # which frames the detectors learn from (H2's paired / unpaired sets), traceable by key
        tables.write_parquet(pa.table({"key": sorted(plan.detector_keys)}), storage.join(run_dir(cfg), DETECTOR_FRAMES))
    steps = math.ceil(plan.num_rows // cfg.workers / cfg.batch_size)
    if cfg.backend == "local":
        with epoch_progress(cfg, enabled=progress):
            checkpoint, last = _fit_here(cfg, plan, steps)
        return _summary(cfg, plan, checkpoint, last, t0)
    out_fs, out_path = storage.resolve(cfg.output)
    # Ray Data's "no available CPUs" alarm is false here: resolve_cpus left it one
    with no_cpu_alarm(), epoch_progress(cfg, enabled=progress):
        trainer = TorchTrainer(
            train_loop,
            train_loop_config={"config": cfg.model_dump(), "classes": plan.classes, "steps_per_epoch": steps,
                               "fake_share": plan.fake_share, "drill": drill},
            scaling_config=ScalingConfig(num_workers=cfg.workers, use_gpu=cfg.gpu, resources_per_worker={
                "CPU": cfg.cpus_per_worker, **({"GPU": 1} if cfg.gpu else {})}),
            torch_config=TorchConfig(backend="nccl" if cfg.gpu else "gloo"),
            run_config=RunConfig(name=cfg.name, storage_path=out_path, storage_filesystem=out_fs,
                                 failure_config=FailureConfig(max_failures=cfg.max_failures),
                                 checkpoint_config=CheckpointConfig(num_to_keep=2)),
            datasets={"train": training_dataset(cfg, plan)},
            dataset_config=_deterministic_split(),
        )
        result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"run {cfg.name!r} finished without a checkpoint")
    return _summary(cfg, plan, result.checkpoint, result.metrics or {}, t0)


def _summary(cfg: TrainConfig, plan: LabelPlan, checkpoint, last: dict, t0: float) -> TrainSummary:
    """The run's summary, its models exported from its final ``checkpoint``."""
    return TrainSummary(run=run_dir(cfg), roles=cfg.roles, arch=cfg.arch, epochs=cfg.epochs, rows=plan.num_rows,
                        classes={c: len(v) for c, v in plan.classes.items()}, models=_export_models(checkpoint, cfg),
                        seconds=time.perf_counter() - t0, last_epoch=last)

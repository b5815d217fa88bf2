"""Ray Tune wiring of the sweeps (see :mod:`fst_ray.sweep.trial` for a trial's design).

A sweep run ``{output}/{name}`` holds two Tune experiments, ``train/`` (architectures and hyperparameters,
ASHA on the first detector's validation AUC) and ``tau/`` (Q over a τ × variant grid), with one folder per
trial: its ``result.json``, ``progress.csv``, checkpoints and TensorBoard event files
(``tensorboard --logdir {output}/{name}``); and ``config.json`` and ``result.json`` of the sweep. Rerunning
the same name continues an interrupted experiment with ``Tuner.restore`` (finished trials are kept, the
others resume from their last checkpoint) and refuses a changed config.
"""

from __future__ import annotations

import json
import math
import posixpath
import time

from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.basic_variant import BasicVariantGenerator

from fst_ray import frames, storage
from fst_ray.runtime import init_ray
from fst_ray.sweep.config import BestTrial, HparamSweep, SweepConfig, SweepResult, TauCurve, TauSweep, TrialRow
from fst_ray.sweep.tau import phi_maps, read_shapley, tau_trial
from fst_ray.sweep.trial import train_trial
from fst_ray.train.local import check_val_split

__all__ = ["run_sweep", "hparam_sweep", "tau_sweep", "summary"]


def _fit(run: str, name: str, trainable, new_tuner, callbacks) -> tune.ResultGrid:
    """Fit experiment ``name`` of a run: restored when an earlier (interrupted) fit left its state there."""
    fs, path = storage.resolve(run)
    experiment = posixpath.join(path, name)
    if tune.Tuner.can_restore(experiment, storage_filesystem=fs):
        tuner = tune.Tuner.restore(experiment, trainable, resume_errored=True, storage_filesystem=fs)
    else:
        tuner = new_tuner(tune.RunConfig(name=name, storage_path=path, storage_filesystem=fs, callbacks=callbacks,
                                         checkpoint_config=tune.CheckpointConfig(num_to_keep=1)))
    return tuner.fit()


def _uri(run: str, path: str | None) -> str | None:
    """A path inside a run's filesystem as a URI."""
    return None if path is None else ("s3://" + path if storage.is_remote(run) else path)


def _finite(x) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def hparam_sweep(cfg: HparamSweep, run: str, callbacks=None) -> tuple[list[TrialRow], BestTrial | None, bool]:
    """Run (or continue) the architecture/hyperparameter experiment: its trials, the best one (:func:`_best`)
    and whether every trial has finished (``False``: interrupted)."""
    index = frames.read_index(cfg.base.input)
    check_val_split(index, cfg.val_split, cfg.base.detector_compression, cfg.base.input)
    trainable = tune.with_resources(
        tune.with_parameters(train_trial, base=cfg.base.model_dump(), index=index, val_split=cfg.val_split,
                             threads=max(1, int(cfg.cpus_per_trial))),
        {"cpu": cfg.cpus_per_trial, "gpu": cfg.gpus_per_trial})

    def new_tuner(run_config: tune.RunConfig) -> tune.Tuner:
        asha = ASHAScheduler(time_attr="training_iteration", max_t=cfg.base.epochs, grace_period=cfg.grace_period,
                             reduction_factor=cfg.reduction_factor)
        return tune.Tuner(trainable, param_space={k: d.to_tune() for k, d in cfg.space.items()},
                          tune_config=tune.TuneConfig(metric=cfg.metric, mode="max", num_samples=cfg.num_samples,
                                                      scheduler=asha, reuse_actors=True,
                                                      search_alg=BasicVariantGenerator(
                                                          max_concurrent=cfg.max_concurrent,
                                                          random_state=cfg.base.seed)),
                          run_config=run_config)

    grid = _fit(run, "train", trainable, new_tuner, callbacks)
    rows = []
    for r in grid:
        epochs = int(r.metrics.get("training_iteration", 0))
        status = (f"error: {type(r.error).__name__}" if r.error else
                  "unfinished (interrupted)" if not r.metrics.get("done") else
                  "completed" if epochs >= cfg.base.epochs else "stopped early (ASHA)")
        rows.append(TrialRow(trial_id=r.metrics.get("trial_id", posixpath.basename(r.path)),
                             config={k: r.config[k] for k in cfg.space}, epochs=epochs,
                             value=_finite(r.metrics.get(cfg.metric)), status=status))
    rows.sort(key=lambda row: row.trial_id)
    complete = len(rows) == cfg.n_trials and not any(r.status.startswith("unfinished") for r in rows)
    return rows, _best(grid, rows, cfg, run), complete


def _best(grid: tune.ResultGrid, rows: list[TrialRow], cfg: HparamSweep, run: str) -> BestTrial | None:
    """The trial with the highest ``cfg.metric`` at its last epoch among those that ran every epoch (ASHA's
    survivors: values of trials stopped at an earlier rung are not compared with theirs), or among all
    scored trials when none has finished yet."""
    scored = [row for row in rows if row.value is not None]
    pool = [row for row in scored if row.epochs >= cfg.base.epochs] or scored
    if not pool:
        return None
    row = max(pool, key=lambda x: x.value)
    result = next(r for r in grid if r.metrics.get("trial_id") == row.trial_id)
    return BestTrial(**row.model_dump(), metric=cfg.metric,
                     checkpoint=_uri(run, result.checkpoint.path if result.checkpoint else None))


def tau_sweep(cfg: TauSweep, run: str, callbacks=None) -> tuple[list[TauCurve], bool]:
    """Run (or continue) the τ experiment, one trial per (τ, variant): the Q curve of each variant (``None``
    at points not run yet) and whether every point has run (``False``: interrupted)."""
    maps = phi_maps(read_shapley(cfg.shapley), cfg.models)
    trainable = tune.with_resources(
        tune.with_parameters(tau_trial, maps=maps, n_shuffles=cfg.n_shuffles, seed=cfg.seed), {"cpu": 1})

    def new_tuner(run_config: tune.RunConfig) -> tune.Tuner:
        return tune.Tuner(trainable, param_space={"tau": tune.grid_search(cfg.taus),
                                                  "variant": tune.grid_search(cfg.variants)},
                          tune_config=tune.TuneConfig(reuse_actors=True), run_config=run_config)

    points = {(r.config["variant"], r.config["tau"]): r.metrics
              for r in _fit(run, "tau", trainable, new_tuner, callbacks) if r.metrics.get("done")}
    curves = [TauCurve(variant=v, tau=cfg.taus, q=[_finite(points.get((v, t), {}).get("q")) for t in cfg.taus],
                       baseline=[_finite(points.get((v, t), {}).get("baseline")) for t in cfg.taus],
                       n_images=len(maps[0])) for v in cfg.variants]
    return curves, len(points) == len(cfg.taus) * len(cfg.variants)


def _check_config(cfg: SweepConfig, run: str) -> None:
    """Record the sweep's config in a new run; refuse to continue a run made with another one."""
    uri = storage.join(run, "config.json")
    mine = cfg.model_dump(mode="json", include={"train", "tau"})
    if storage.exists(uri):
        if json.loads(storage.read_bytes(uri)) != mine:
            raise ValueError(f"run {run} was made with another sweep config: choose another name")
    else:
        storage.write_bytes(uri, json.dumps(mine, indent=1).encode())


def run_sweep(cfg: SweepConfig, callbacks: list[tune.Callback] | None = None) -> SweepResult:
    """Run the sweeps of ``cfg`` into ``{output}/{name}`` (continuing an interrupted run of that name); write
    and return its ``result.json``. ``callbacks``: extra Tune callbacks of both experiments."""
    t0 = time.perf_counter()
    init_ray()
    run = storage.join(cfg.output, cfg.name)
    _check_config(cfg, run)
    result = SweepResult(run=run, complete=True, seconds=0.0)
    if cfg.train:
        result.metric = cfg.train.metric
        result.trials, result.best, done = hparam_sweep(cfg.train, run, callbacks)
        result.complete &= done
    if cfg.tau and result.complete:  # an interrupted (Ctrl-C) train sweep ends the job here
        result.tau, done = tau_sweep(cfg.tau, run, callbacks)
        result.complete &= done
    result.seconds = time.perf_counter() - t0
    storage.write_bytes(storage.join(run, "result.json"), result.model_dump_json(indent=1).encode())
    return result


def _fmt(x: float | None) -> str:
    return "  -  " if x is None else f"{x:+.3f}" if x < 0 else f"{x:.3f}"


def summary(result: SweepResult) -> str:
    """One screen: the trials and the best configuration, the τ curves."""
    lines = [f"sweep {result.run} ({result.seconds:.0f} s)"]
    if not result.complete:
        lines.append("INTERRUPTED: rerun the same command (same name) to continue it")
    if result.trials:
        lines.append(f"\n{len(result.trials)} trials, by {result.metric} at their last epoch:")
        for t in result.trials:
            lines.append(f"  {t.trial_id}  {_fmt(t.value)}  {t.epochs} epochs  {t.status:<22} {t.config}")
    if result.best:
        lines.append(f"best: {result.best.config}  {result.metric} = {_fmt(result.best.value)}"
                     f"\n      checkpoint: {result.best.checkpoint}")
    for c in result.tau:
        lines.append(f"\nQ_tau ({c.variant} variant, {c.n_images} images; baseline = shuffled phi_d):")
        lines.append("  tau      " + " ".join(f"{t:6.2f}" for t in c.tau))
        lines.append("  Q        " + " ".join(f"{_fmt(q):>6}" for q in c.q))
        lines.append("  baseline " + " ".join(f"{_fmt(b):>6}" for b in c.baseline))
    lines.append(f"\nTensorBoard: tensorboard --logdir {result.run}")
    return "\n".join(lines)

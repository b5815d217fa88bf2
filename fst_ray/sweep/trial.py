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

import pyarrow as pa
import torch
from ray import tune

from fst_ray.train.config import TrainConfig
from fst_ray.train.engine import fit
from fst_ray.train.labels import make_plan
from fst_ray.train.local import epoch_batches, eval_plan, labelled_batches, validate

__all__ = ["train_trial"]


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

    def report(history: list[dict], folder: str | None) -> None:
        tune.report(history[-1], checkpoint=tune.Checkpoint.from_directory(folder))

    fit(cfg, plan.classes, fake_share=plan.fake_share, steps_per_epoch=math.ceil(plan.num_rows / cfg.batch_size),
        batches=lambda epoch: epoch_batches(cfg, plan, epoch, device), report=report, device=device,
        checkpoint=tune.get_checkpoint(),
        score=lambda models: validate(models, labelled_batches(cfg.input, scoring, 256), cfg.image_size, device))

"""Config of ``jobs/train_encoders.py``: which encoders, on which frames, with which budget."""

from __future__ import annotations

import importlib
from typing import Literal

import timm
from pydantic import Field, field_validator, model_validator

from fst_ray import roles as role_registry, storage
from fst_ray.config import Compression, ImageSide, JobConfig, StrictModel, register_config, register_result

__all__ = ["TrainConfig", "TrainSummary"]



@register_config("train_encoders")
class TrainConfig(JobConfig):
    """Train several encoders in one Ray Train run: one read of the ``frames`` table feeds every role."""

    input: str = Field("runs/demo/prepared", description="ingest output URI; its `frames` table is read")
    roles: list[str] = Field(default_factory=lambda: ["source", "target", "det"],
                             description="models to train together: source, target, det, fst")
    arch: str = Field("resnet18", description="timm architecture of every encoder")
    weights: str | None = Field(None, description="backbone weights (local path, s3:// or package:// URI)")
    pretrained: bool = Field(False, description="start from ImageNet weights: those a package ships "
                                                "(tf_efficientnet_lite0), else timm's model hub (only where the "
                                                "cluster reaches it; else give `weights`)")
    train_set: Literal["full", "paired", "unpaired"] = Field(
        "full", description="detector frames: the whole train split, or H2's paired/unpaired set")
    holdout_fraction: float = Field(0.2, gt=0, lt=1, description="share of each source video's frame "
                                    "positions kept out of source/target training (frame-disjoint hold-out)")
    detector_compression: Compression | None = Field(
        None, description="compression of the detectors' training frames (the train split, or H2's paired/unpaired "
                          "set); None: raw, c23 and c40 together")
    output: str = Field("runs/demo/models", description="runs folder URI (local or s3://)")
    name: str = Field("encoders", description="run name: rerunning the same name resumes its last checkpoint")
    epochs: int = Field(3, ge=1)
    workers: int = Field(2, ge=1, description="data-parallel (DDP) workers")
    backend: Literal["ray_train", "local"] = Field(
        "ray_train", description="ray_train: Ray Train's workers fed by Ray Data (a cluster's GPUs and nodes); local: "
                                 "the same engine in this process, its frames streamed with pyarrow, for small runs "
                                 "where the start-up of Ray Train's controller, workers and data passes outweighs "
                                 "the training (one worker; checkpoints and resume alike)")
    gpu: bool = Field(False, description="one GPU per worker, mixed precision")
    cpus_per_worker: float | None = Field(
        None, gt=0, description="CPUs reserved per worker (its torch threads: the integer part, at least 1); "
                                "default: 1 with GPUs, else the cluster's CPUs minus 1 (left to Ray Data) shared "
                                "by the workers")
    image_size: ImageSide = Field(64, description="model input side in pixels (frames are resized to it)")
    batch_size: int = Field(32, ge=1, description="frames per worker per step")
    lr: float = Field(1e-3, gt=0, description="AdamW peak learning rate")
    weight_decay: float = Field(0.05, ge=0)
    warmup_fraction: float = Field(0.05, ge=0, lt=1, description="share of steps with linear warm-up")
    fst_lambda: float = Field(0.1, ge=0, description="weight of the FST interaction term (lambda)")
    scene_balance: bool = Field(False, description="weight the target encoder's frames so that each scene's "
                                                   "original and fakes weigh the same (removes the scene -> partner "
                                                   "label shortcut; fst_ray.train.labels.scene_balance)")
    balance_classes: bool = Field(True, description="weight the detectors' real and fake frames by their inverse "
                                                    "share (FF++ has 5 fakes per real)")
    degrade: float | None = Field(None, ge=0, le=1, description="probability of each of a Gaussian blur (sigma 0-3 "
                                  "px) and a JPEG round trip (quality 30-100) on the detectors' training frames, as "
                                  "Wang et al. 2020; default: their role's (none)")
    freeze_bn: bool | None = Field(None, description="BatchNorm statistics fixed during training (affine weights still "
                                                     "learnt); default: fixed when starting from pretrained weights, "
                                                     "whose statistics small batches would otherwise replace with "
                                                     "ones eval mode does not reproduce")
    select_epoch: Literal["last", "val_auc"] = Field(
        "last", description="which epoch's weights a detector's model file keeps: the last, or the one with the "
                            "highest frame-level AUC on the val split at the detectors' compression (scored after "
                            "every epoch; identity encoders keep the last)")
    amp: bool = Field(True, description="mixed precision (fp16 autocast); used on GPU only")
    shuffle_buffer: int = Field(2048, ge=0, description="rows in each worker's local shuffle buffer")
    cache: bool | None = Field(None, description="read and label the frames once into Ray's object store instead "
                                                 "of streaming them from Parquet every epoch; default: when the "
                                                 "frames table takes under a third of the object store")
    max_failures: int = Field(2, ge=-1, description="worker-group restarts from the last checkpoint")
    seed: int = 0

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, v: list[str]) -> list[str]:
        bad = [r for r in v if r not in role_registry.ROLES]
        if bad or not v or len(set(v)) != len(v):
            raise ValueError(f"roles must be distinct names from {role_registry.names()}, got {v}")
        return v

    @property
    def freezes_batchnorm(self) -> bool:
        """``freeze_bn``, its default resolved: on when the run starts from pretrained weights (ImageNet or a file)."""
        return (self.pretrained or self.weights is not None) if self.freeze_bn is None else self.freeze_bn

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, v: str) -> str:
        importlib.import_module("fst_ray.models")  # registers fst-ray's own architectures (the oracles) with timm
        if not timm.is_model(v):
            raise ValueError(f"unknown timm architecture {v!r}")
        return v

    @model_validator(mode="after")
    def _local_is_one_worker(self):
        if self.backend == "local" and self.workers != 1:
            raise ValueError("backend local trains in this one process: workers must be 1")
        return self

    @model_validator(mode="after")
    def _train_set_needs_detector(self):
        if self.train_set != "full" and not role_registry.detectors(self.roles):
            raise ValueError("train_set paired/unpaired chooses detector frames: add role det or fst")
        return self

    def outputs(self) -> list[str]:
        return [storage.join(self.output, self.name)]  # the run's folder: other runs share `output`


@register_result("train_encoders")
class TrainSummary(StrictModel):
    """What a training run produced."""

    run: str
    roles: list[str]
    arch: str
    epochs: int
    rows: int
    classes: dict[str, int]  # identity column -> its class count
    models: dict[str, str]
    seconds: float
    last_epoch: dict

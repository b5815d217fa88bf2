"""Config and result of ``jobs/sweep.py``: an architecture/hyperparameter sweep (ASHA) and a τ sweep of Q.

A search space maps :class:`~fst_ray.train.config.TrainConfig` fields to a :class:`Domain`, e.g.
``arch: {grid: [resnet18, efficientnet_b0]}``, ``lr: {loguniform: [1.0e-4, 3.0e-3]}``. Every trial
trains ``base`` with the sampled fields replaced.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from fst_ray import roles, storage
from fst_ray.config import JobConfig, Split, StrictModel, register_config, register_result
from fst_ray.metrics import OFFICIAL_TAUS, VARIANTS, check_taus
from fst_ray.train.config import TrainConfig

__all__ = ["Domain", "HparamSweep", "TauSweep", "SweepConfig", "TrialRow", "BestTrial", "TauCurve", "SweepResult",
           "SWEEP_OWNED", "NOT_SWEPT"]

#: TrainConfig fields the sweep decides itself (resources, storage): not settable in ``base``
SWEEP_OWNED = ("output", "name", "workers", "cpus_per_worker", "gpu", "max_failures")
#: fields no search space may vary: the data, what is trained and scored, and ASHA's ``max_t``
NOT_SWEPT = SWEEP_OWNED + ("input", "roles", "epochs")


class Domain(StrictModel):
    """Exactly one of: ``grid`` (every value, each ``num_samples`` times), ``choice`` (one value drawn per
    sample), ``uniform`` / ``loguniform`` ``[low, high]`` (floats), ``randint`` ``[low, high)`` (integers)."""

    grid: list[Any] | None = None
    choice: list[Any] | None = None
    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None
    randint: tuple[int, int] | None = None

    @model_validator(mode="after")
    def _exactly_one(self):
        given = [k for k, v in self if v is not None]
        if len(given) != 1:
            raise ValueError(f"a domain takes exactly one of grid, choice, uniform, loguniform, randint; got {given}")
        if self.grid == [] or self.choice == []:
            raise ValueError("grid/choice need at least one value")
        return self

    def values(self) -> list[Any] | None:
        """The listed values of a ``grid``/``choice`` domain (``None`` for ranges)."""
        return self.grid if self.grid is not None else self.choice

    def to_tune(self):
        """The Ray Tune search domain."""
        from ray import tune

        kind, arg = next((k, v) for k, v in self if v is not None)
        if kind in ("grid", "choice"):
            return tune.grid_search(arg) if kind == "grid" else tune.choice(arg)
        return getattr(tune, kind)(*arg)


class HparamSweep(StrictModel):
    """Architectures and training hyperparameters, early-stopped by ASHA on the validation AUC."""

    base: TrainConfig = Field(default_factory=lambda: TrainConfig(roles=["det"]),
                              description="the training every trial starts from (roles default: [det]); "
                                          "epochs = ASHA's max_t")
    space: dict[str, Domain] = Field(..., description="TrainConfig field -> domain (see module doc)")
    num_samples: int = Field(2, ge=1, description="samples of the space (a grid is repeated this many times)")
    max_concurrent: int = Field(2, ge=1, description="trials running at once")
    cpus_per_trial: float = Field(1.0, gt=0, description="CPUs per trial (also its torch threads)")
    gpus_per_trial: float = Field(0.0, ge=0, description="GPUs per trial (mixed precision when > 0)")
    grace_period: int = Field(1, ge=1, description="ASHA: epochs every trial gets before it may be stopped")
    reduction_factor: float = Field(2.0, gt=1, description="ASHA: keep 1/reduction_factor of trials per rung")
    val_split: Split = Field("val", description="split the detectors are scored on each epoch")

    @model_validator(mode="before")
    @classmethod
    def _det_by_default(cls, data):
        if isinstance(data, dict) and isinstance(data.get("base"), dict):
            data = {**data, "base": {"roles": ["det"], **data["base"]}}
        return data

    @field_validator("base")
    @classmethod
    def _base(cls, v: TrainConfig) -> TrainConfig:
        owned = sorted(set(SWEEP_OWNED) & v.model_fields_set)
        if owned:
            raise ValueError(f"base sets {owned}: the sweep decides these (output, name, cpus_per_trial, ...)")
        if not roles.detectors(v.roles):
            raise ValueError(f"base.roles {v.roles} train no detector (det or fst): nothing to score")
        return v

    @model_validator(mode="after")
    def _space(self):
        for key, domain in self.space.items():
            if key not in TrainConfig.model_fields or key in NOT_SWEPT:
                raise ValueError(f"space: {key!r} cannot be swept (a TrainConfig field other than {NOT_SWEPT})")
            for value in domain.values() or []:
                try:
                    TrainConfig.model_validate({**self.base.model_dump(), key: value})
                except ValidationError as e:  # e.g. an unknown timm name
                    raise ValueError(f"space.{key}: {value!r} is not valid: {e.errors()[0]['msg']}") from None
        if self.grace_period > self.base.epochs:
            raise ValueError(f"grace_period {self.grace_period} exceeds base.epochs {self.base.epochs}")
        return self

    @property
    def n_trials(self) -> int:
        """Trials of the whole sweep: ``num_samples`` times the product of the grid sizes."""
        return self.num_samples * math.prod(len(d.grid) for d in self.space.values() if d.grid is not None)

    @property
    def metric(self) -> str:
        """What ASHA and the best configuration go by: the first detector role's validation AUC."""
        return f"{roles.detectors(self.base.roles)[0]}/val_auc"


class TauSweep(StrictModel):
    """Q over a τ grid and both variants, one (τ, variant) per Tune trial, on a ``shapley`` table."""

    shapley: str = Field(..., description="URI of a `shapley` table (folder of Parquet files)")
    models: dict[str, str] | None = Field(
        None, description="model URI per role where the table holds several (source, target and one detector)")
    taus: list[float] = Field(default_factory=lambda: [float(t) for t in OFFICIAL_TAUS],
                              description="τ grid (both variants take τ in [0, 1))")
    variants: list[Literal["paper", "official"]] = Field(default_factory=lambda: list(VARIANTS))
    n_shuffles: int = Field(20, ge=1, description="shuffles of φ_d behind the random baseline")
    seed: int = 0

    @field_validator("models")
    @classmethod
    def _known_roles(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        for role in v or {}:
            roles.get(role)
        return v

    @field_validator("taus")
    @classmethod
    def _unit_interval(cls, v: list[float]) -> list[float]:
        return sorted(set(check_taus(v)))


@register_config("sweep")
class SweepConfig(JobConfig):
    """Ray Tune sweeps into ``{output}/{name}``; rerunning the same name continues an interrupted sweep."""

    output: str = Field("runs/sweeps", description="folder URI of sweep runs (local or s3://)")
    name: str = Field("sweep", description="run name: rerunning it continues (Tuner.restore) where it stopped")
    train: HparamSweep | None = Field(None, description="architecture / hyperparameter sweep")
    tau: TauSweep | None = Field(None, description="τ sweep of Q on Shapley maps")

    @model_validator(mode="after")
    def _something(self):
        if self.train is None and self.tau is None:
            raise ValueError("a sweep needs `train`, `tau` or both")
        return self

    def outputs(self) -> list[str]:
        return [storage.join(self.output, self.name)]


class TrialRow(StrictModel):
    """One trial of the hyperparameter sweep: its sampled fields, epochs run, last metric value."""

    trial_id: str
    config: dict[str, Any]
    epochs: int
    value: float | None
    status: str


class BestTrial(TrialRow):
    metric: str
    checkpoint: str | None = Field(None, description="URI of its last checkpoint (model files per role)")


class TauCurve(StrictModel):
    """Mean Q over images per τ (images where Q is undefined left out; ``None`` where it is undefined for
    every image), and the shuffled-φ_d baseline, of one variant."""

    variant: str
    tau: list[float]
    q: list[float | None]
    baseline: list[float | None]
    n_images: int


@register_result("sweep")
class SweepResult(StrictModel):
    """What ``jobs/sweep.py`` writes to ``{output}/{name}/result.json``."""

    run: str
    complete: bool = Field(..., description="false when the sweep was interrupted: rerun it to continue")
    metric: str | None = None
    best: BestTrial | None = None
    trials: list[TrialRow] = []
    tau: list[TauCurve] = []
    seconds: float

"""Config shared by the hypothesis jobs (``jobs/h1_intersection.py``, ``h2_paired.py``, ``h3_compression.py``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from fst_ray.config import CompressionList, Dataset, ImageSide, JobConfig, MethodList, StrictModel, merge, register_config
from fst_ray.ffpp import COMPRESSIONS
from fst_ray import metrics, roles
from fst_ray.metrics import OFFICIAL_TAUS
from fst_ray.shapley.config import Backgrounds, Baseline, Budget, Grid, ShapleySpec
from fst_ray.train.config import TrainConfig


#: a compression setting that takes the best compression the tables hold (raw, else c23, else c40)
BEST = "best"
#: the demo's methods (the defaults): one identity swap and one expression reenactment, the paper's two families
DEMO_METHODS = ("Deepfakes", "Face2Face")
COMPRESSION_CHOICES = (BEST, *COMPRESSIONS)
#: the jobs' training defaults (the demo's): the packaged ImageNet start, fine-tuned at a lower peak learning rate
DEFAULT_TRAIN = dict(epochs=3, pretrained=True, lr=5e-4)


# what each training run fits: the identity encoders on every video, the detectors (v_d and the FST model) on the
# train split, one H2 detector, or a target encoder trained with scene balance (the shortcut study). Encoders and
# detectors train in runs of their own: in one shared stream a batch held a few detector rows among many encoder
# rows (small-batch BatchNorm, few detector steps per epoch)
RUN_ROLES = {"encoders": roles.encoders(), "detectors": roles.detectors(), "paired": ["det"], "unpaired": ["det"],
             "balanced": ["target"]}
TRAIN_SETS = {"encoders": "full", "detectors": "full", "paired": "paired", "unpaired": "unpaired", "balanced": "full"}
#: the runs that train a detector (the others have no use for a detectors' compression)
DETECTOR_RUNS = {run for run, members in RUN_ROLES.items() if roles.detectors(members)}
#: the runs whose checkpoint keys name the detectors' compression (``detectors-raw``; ``-all``: every compression)
BY_COMPRESSION = ("detectors", "balanced")
#: the user's name (checkpoint keys ``{arch}/full/{role}``) for the models of the whole train split: the encoders'
#: run and the detectors' run at ``train_compression``
FULL = "full"


def run_roles(key: str) -> list[str]:
    """The roles the run named ``key`` in a checkpoint key trains (none for an unknown name)."""
    run, _, compression = key.partition("-")
    if key == FULL:
        return roles.names()
    if (run in BY_COMPRESSION) != bool(compression) or compression not in ("", *COMPRESSIONS, "all"):
        return []
    return RUN_ROLES.get(run, [])


class PrepareSpec(StrictModel):
    """How ``input`` is ingested into ``tables`` when ``tables`` holds no finished ingest."""

    frames_per_video: int = Field(4, ge=1)
    size: ImageSide = Field(64, description="aligned face side in pixels")
    dataset: Dataset = Field("auto", description="the input's layout "
                                                                                    "(fst_ray.datasets)")
    reencode: CompressionList = Field(default_factory=list, description="compressions to make by re-encoding the "
                                                                        "raw videos (Celeb-DF: c23, c40 for H3)")


class ExplainSpec(ShapleySpec):
    """Which test images are explained, and how (:class:`~fst_ray.shapley.config.ShapleySpec`, at the demo's
    size and under the background baseline by default)."""

    images_per_method: int = Field(6, ge=1, description="fake test frames explained per method (one per video "
                                                        "first, then more frames of the same videos)")
    compression: Literal[COMPRESSION_CHOICES] = Field(
        BEST, description="compression of the images explained by H1 and H2; 'best': raw (the authors' choice) "
                          "where the tables have it, else c23, else c40")
    grid: Grid = 4
    budget: Budget = 240
    baseline: Baseline = Field("background", description=ShapleySpec.model_fields["baseline"].description)
    backgrounds: Backgrounds = 1


@register_config("hypothesis")
class HypothesisConfig(JobConfig):
    """One config for H1, H2 and H3; each job reads the parts it needs. Models, tables and maps are
    cached under ``work`` and shared, so running H1 then H2 then H3 trains and explains nothing twice.
    The defaults are the CPU-sized demo (minutes on 2 cores); ``configs/ffpp.yaml`` is the paper's size."""

    input: str | None = Field("runs/demo/data", description="FF++-layout tree (real or synthetic), ingested "
                                                            "into `tables` if that holds no finished ingest")
    tables: str = Field("runs/demo/prepared", description="ingest output URI (frames, fst_pairs, errors)")
    work: str = Field("runs/demo/work", description="URI for trained models and Shapley maps shared by the jobs")
    output: str | None = Field(None, description="URI of this job's result.json, report.md and figures "
                                                 "(default: beside `work`, named after the job: .../h1)")
    methods: MethodList = Field(default_factory=lambda: list(DEMO_METHODS),
                                description="manipulation methods (default: the demo's two; configs/ffpp.yaml: "
                                            "FF++'s five)")
    archs: list[str] = Field(default_factory=lambda: ["tf_efficientnet_lite0"],
                             description="timm architectures (H1 compares them; H2 and H3 use the first)")
    checkpoints: dict[str, str] = Field(
        default_factory=dict, description="'{arch}/{run}/{role}' -> model file URI, to skip training that model "
                                          "(run: full (any role), encoders, paired, unpaired, or "
                                          "detectors-{compression} and balanced-{compression} (raw, c23, c40 or "
                                          "all), the matched AUC protocol's and the shortcut study's)")
    prepare: PrepareSpec = Field(default_factory=PrepareSpec)
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(**DEFAULT_TRAIN),
                               description="training settings (keys left out keep the defaults: an ImageNet start, "
                                           "epochs 3, lr 5e-4); data, output, name, roles, arch and train_set "
                                           "are set by the jobs")
    train_compression: Literal[COMPRESSION_CHOICES] | None = Field(
        BEST, description="compression the detectors (det, fst, H2's paired/unpaired) train on: the paper's H3 "
                          "protocol learns artifacts on raw and explains them at raw, c23 and c40; 'best': raw where "
                          "the tables have it, else c23, else c40; None: all three together")
    auc_protocol: Literal["trained", "matched"] = Field(
        "trained", description="H3's FST-vs-detector AUC table: 'trained' scores the detectors trained on "
                               "train_compression at every compression; 'matched' also trains a detector and an FST "
                               "model on each compression and scores each on its own (the paper's train-on-cX / "
                               "test-on-cX table)")
    shortcut_study: bool = Field(False, description="H1 also trains a target encoder with train.scene_balance and "
                                                    "reports where both target encoders' maps fall (face or scene) "
                                                    "and their hold-out accuracy")
    detector_epochs: int | None = Field(
        8, ge=1, description="epochs of the detectors (v_d and the FST model; None: train.epochs); they train "
                                "in a run of their own on the train split, far fewer frames than the encoders see")
    h2_epochs: int | None = Field(8, ge=1, description="epochs of H2's paired and unpaired detectors (None: "
                                                          "train.epochs); their equal-size sets are small")
    explain: ExplainSpec = Field(default_factory=ExplainSpec)
    variant: Literal["official", "paper"] = Field("official", description="Q_τ variant (fst_ray.metrics)")
    tau: list[float] = Field(default_factory=lambda: list(OFFICIAL_TAUS))
    n_boot: int = Field(1000, ge=100, description="bootstrap resamples for confidence intervals")
    family_wise: bool = Field(True, description="the CIs readings are made from hold at 95% together over the "
                                                "methods of a table (Bonferroni: each at 1 − 0.05/methods)")
    seed: int = 0

    def ci_level(self, tests: int) -> float:
        """The level of each reading's CI in a table of ``tests`` rows (:func:`fst_ray.metrics.family_level`)."""
        return metrics.family_level(tests) if self.family_wise else 0.95

    @field_validator("train", mode="before")
    @classmethod
    def _changes_the_default_training(cls, v):
        """A ``train`` block changes :data:`DEFAULT_TRAIN` key by key (one changed key keeps the ImageNet start)."""
        return merge(DEFAULT_TRAIN, v) if isinstance(v, dict) else v

    @field_validator("checkpoints")
    @classmethod
    def _checkpoint_keys(cls, v: dict[str, str]) -> dict[str, str]:
        """Every key names a run and a role that run trains: a mistyped key would be ignored, its model trained."""
        for key in v:
            arch, run, role = key.split("/") if key.count("/") == 2 else ("", "", "")
            if not arch or role not in run_roles(run):
                raise ValueError(f"checkpoints key {key!r}: not '{{arch}}/{{run}}/{{role}}' with a run of {FULL}, "
                                 "encoders, paired, unpaired, detectors-{compression}, balanced-{compression} "
                                 "(compression: raw, c23, c40 or all) and a role it trains (" + "; ".join(
                                     f"{r}: {', '.join(m)}" for r, m in RUN_ROLES.items()) + ")")
        return v

    @field_validator("tau")
    @classmethod
    def _taus(cls, v: list[float]) -> list[float]:
        return metrics.check_taus(v)

    @model_validator(mode="after")
    def _grid_fits_the_frames(self):
        if self.explain.grid > self.prepare.size:
            raise ValueError(f"explain.grid {self.explain.grid} has more cells per side than the frames have pixels "
                             f"(prepare.size {self.prepare.size})")
        return self

    def outputs(self) -> list[str]:
        return [self.tables, self.work, *([self.output] if self.output else [])]


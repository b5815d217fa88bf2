"""Config of ``jobs/shapley.py``: Shapley maps of ``frames`` images under trained encoders."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from fst_ray.config import CompressionList, JobConfig, Split, StrictModel, VideoMethods, one_of, register_config
from fst_ray.faithfulness import CURVE_STEPS
from fst_ray import attribution
from fst_ray.shapley import estimators
from fst_ray.shapley.estimate import COALITIONS, choose
from fst_ray.shapley.estimators import min_budget
from fst_ray.shapley import baselines
from fst_ray.shapley.game import VALUES
from fst_ray.shapley.precision import NAMES as PRECISION_NAMES

__all__ = ["ShapleySpec", "ShapleyConfig", "check_budget", "Baseline", "Estimator", "Attribution", "SHAPLEY", "Grid", "Budget", "Backgrounds",
           "MAX_GRID"]

#: a registered baseline (:mod:`fst_ray.shapley.baselines`)
Baseline = one_of(baselines.names, "baseline")
#: a registered estimator (:mod:`fst_ray.shapley.estimators`), or ``auto``
Estimator = one_of(estimators.names, "estimator", "auto")
#: a registered attribution method (:mod:`fst_ray.attribution`); ``shapley`` is the paper's, estimated by ``estimator``
Attribution = one_of(attribution.names, "attribution method")
SHAPLEY = "shapley"
#: the largest grid: 4,096 players (the paper's is 16)
MAX_GRID = 64


def check_budget(grid: int, budget: int, estimator: str, halves: bool) -> None:
    """Refuse a budget whose estimates (each half, with ``halves``) cannot afford the estimator's minimum."""
    n = grid ** 2
    each = budget // 2 if halves else budget
    try:
        estimator = choose(n, each) if estimator == "auto" else estimator
    except StopIteration:
        raise ValueError(f"budget {budget} fits no estimator at grid {grid} ({n} players): raise the budget or "
                         "lower the grid") from None
    if each < min_budget(estimator, n):
        raise ValueError(f"budget {budget} gives {each} evaluations per estimate{' (halves)' if halves else ''}, "
                         f"below {estimator}'s minimum {min_budget(estimator, n)} at grid {grid}: raise the budget")


def _split_commas(value):
    return [v for v in value.split(",") if v] if isinstance(value, str) else value


Grid = Annotated[int, Field(ge=2, le=MAX_GRID, description="G: the G x G cells are the players (paper: 16; at most "
                                                            "the frames' side)")]
Budget = Annotated[int, Field(ge=8, description="evaluations per map (coalitions; per image with coalitions: shared), "
                                                  "each evaluated on every background")]
Backgrounds = Annotated[int, Field(ge=1, le=64, description="K, real frames per image for the background baseline "
                                                           "(K forward passes per coalition)")]


class ShapleySpec(StrictModel):
    """How a map is estimated, and by what: the settings :func:`fst_ray.shapley.run.run_shapley` takes, shared by
    the Shapley job and the hypothesis jobs' ``explain`` (each with its own defaults for grid, budget, baseline
    and backgrounds)."""

    attribution: Attribution = Field(SHAPLEY, description="how a map is made: shapley (the paper's, by `estimator`), or "
                                                          "grad_cam, integrated_gradients, saliency, input_x_gradient, "
                                                          "occlusion, kernel_shap, lime, rise (fst_ray.attribution; "
                                                          "their `budget`: samples or steps)")
    grid: Grid = 16
    budget: Budget = 2560
    estimator: Estimator = Field("auto", description="estimator (fst_ray.shapley.estimators), or auto "
                                                     "(fst_ray.shapley.estimate.choose)")
    seed: int = Field(0, description="base seed; each map's seed is derived from it, the image key and the model")
    coalitions: Literal[COALITIONS] = Field(
        "per_model", description="per_model: independent estimator noise between any two maps, as Q_τ, H2 and δ "
                                 "need; shared: one masked image feeds every model (cheaper, biases Q's gap)")
    baseline: Baseline = Field(
        "zero", description="what removed cells show (fst_ray.shapley.baselines): zero (black, the paper's), mean, "
                            "blur, source (the FST counterfactual: a fake's cells replaced by its source's real "
                            "frame; reals are not explained with it), background (other people's real frames, "
                            "the value averaged over `backgrounds`), or background_raw (the same at raw for every "
                            "compression of a frame)")
    backgrounds: Backgrounds = 4
    value: Literal[VALUES] = Field("logit", description="the game's value, of the explained class (paper: logit)")
    target_ceiling: float | None = Field(
        None, gt=0, lt=1, description="estimate each map in rounds of `budget` evaluations until its centred noise "
                                      "ceiling (from its halves) reaches this, or `max_budget` is spent (None: one "
                                      "round, `budget`)")
    max_budget: int | None = Field(None, ge=1, description="with target_ceiling: the most evaluations a map may take "
                                                           "(default: 8 x budget); a map stopped there is reported")
    halves: bool = Field(True, description="estimate each map as the mean of two independent halves of the budget "
                                           "(both stored), so its noise ceiling can be measured (fst_ray.metrics)")
    curve_steps: int = Field(CURVE_STEPS, ge=0, description="points of each map's deletion/insertion curves (and a "
                                                            "random order's) after the first, recorded with the map; "
                                                            "0: none")
    precision: Literal[PRECISION_NAMES] = Field(
        "fp32", description="the evaluation actors' arithmetic: fp32, or autocast to bf16 or fp16 (a GPU's speed-up; "
                            "bench/precision.py measures the error it adds to a map against the estimator's noise)")
    channels_last: bool = Field(False, description="the actors' models and inputs in channels_last memory format")
    compile: bool = Field(False, description="the actors' models through torch.compile")
    actors: int | None = Field(None, ge=1, description="evaluation actors (default: one per GPU, else per CPU)")
    actor_cpus: float = Field(1.0, gt=0, description="CPUs per CPU actor")
    chunk_size: int = Field(512, ge=1, description="coalitions per actor task")
    batch_size: int = Field(256, ge=1, description="masked images per forward pass")
    flush_images: int = Field(32, ge=1, description="images per Parquet file written")

    @model_validator(mode="after")
    def _budget_fits(self):
        if self.attribution == SHAPLEY:
            check_budget(self.grid, self.budget, self.estimator, self.halves)
        elif self.value != "logit":
            raise ValueError(f"attribution {self.attribution} explains the logit: value must be logit")
        if self.target_ceiling is not None:
            if not self.halves or self.attribution != SHAPLEY:
                raise ValueError("target_ceiling is measured from a Shapley map's halves: attribution shapley, "
                                 "halves true")
            if self.max_budget is None:
                self.max_budget = 8 * self.budget
            if self.max_budget < self.budget:
                raise ValueError(f"max_budget {self.max_budget} is below one round's budget {self.budget}")
        return self


@register_config("shapley")
class ShapleyConfig(ShapleySpec, JobConfig):
    """Which images, which model files, how (:class:`ShapleySpec`); where the ``shapley`` table goes."""

    input: str = Field(..., description="ingest output URI (its `frames` table is read)")
    models: list[str] = Field(..., min_length=1, description="model files (*.pt); a comma-separated string works")
    output: str = Field(..., description="folder URI of the `shapley` table (Parquet files)")
    split: Split | None = Field("test", description="frames of this split (None: every split)")
    methods: VideoMethods | None = Field(None, description="FF++ methods to explain, 'original' included (None: all)")
    compressions: CompressionList | None = Field(None, description="raw, c23, c40 (None: all)")
    keys: list[str] | None = Field(None, description="explain only these frame keys (with the filters above)")
    max_images: int | None = Field(None, ge=1, description="explain at most this many frames (the first keys)")

    _models = field_validator("models", "methods", "compressions", mode="before")(_split_commas)

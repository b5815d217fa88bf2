"""``result.json`` of the hypothesis jobs: pydantic models whose JSON Schemas live in ``schemas/``."""

from __future__ import annotations

from pydantic import Field

from fst_ray.config import StrictModel, register_result


class QSummary(StrictModel):
    """Q averaged over the τ grid and over images, with its bootstrap CI and random baseline."""

    mean: float = Field(description="mean over images of the τ-averaged Q_τ")
    ci: tuple[float, float] = Field(description="95% percentile-bootstrap CI over images")
    baseline: float = Field(description="the same with φ_d shuffled over cells (random baseline)")
    n_images: int


@register_result("h1")
class H1Result(StrictModel):
    """H1: the detector's evidence lies outside what identifies source or target."""

    variant: str = Field(description="Q_τ variant: 'paper' or 'official' (fst_ray.metrics)")
    tau: list[float]
    q: dict[str, dict[str, QSummary]] = Field(description="method -> architecture -> Q summary")


@register_result("h2")
class H2Result(StrictModel):
    """H2: a detector trained on paired data learns more source/target-irrelevant evidence."""

    variant: str = "official"
    tau: list[float]
    q_paired: dict[str, list[float]] = Field(description="method -> mean Q_τ per τ, paired detector")
    q_unpaired: dict[str, list[float]] = Field(description="method -> mean Q_τ per τ, unpaired detector")
    ci_paired: dict[str, list[tuple[float, float]]] = Field(default_factory=dict)
    ci_unpaired: dict[str, list[tuple[float, float]]] = Field(default_factory=dict)
    baseline: dict[str, list[float]] = Field(default_factory=dict, description="method -> random baseline per τ")
    auc_paired: dict[str, float]
    auc_unpaired: dict[str, float]


class DeltaRow(StrictModel):
    source: float
    target: float
    detector: float
    fst: float | None = Field(None, description="the FST-Matching model's detector branch, where trained")
    ci: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="explained model (source, target, detector, fst) -> 95% bootstrap CI "
                                          "of δ, resampling source identities (clusters)")
    noise_ceiling: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="explained model -> compression -> noise ceiling of its maps (expected "
                                          "cosine of two independent estimates of the same image's map)")
    delta_ceiling: dict[str, float] = Field(
        default_factory=dict, description="explained model -> the δ that estimator noise alone leaves when the true "
                                          "maps do not change at all: ½[√(r_raw r_c23) + √(r_raw r_c40)]")
    corrected: dict[str, float] = Field(
        default_factory=dict, description="explained model -> δ disattenuated by the ceilings of the maps it compares")
    corrected_ci: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="explained model -> 95% cluster-bootstrap CI of the corrected δ")
    n_clusters: int = Field(0, description="source identities the images come from (the bootstrap's clusters)")


@register_result("h3")
class H3Result(StrictModel):
    """H3: source/target concepts are stable under compression, artifact concepts are not."""

    delta: dict[str, DeltaRow] = Field(description="method -> δ per explained model")
    auc: dict[str, dict[str, dict[str, float]]] = Field(
        default_factory=dict, description="method -> compression -> {'detector': AUC, 'fst': AUC}")
    n_images: dict[str, int] = Field(default_factory=dict)

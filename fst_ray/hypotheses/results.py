"""``result.json`` of the hypothesis jobs: pydantic models whose JSON Schemas live in ``schemas/``."""

from __future__ import annotations

from pydantic import Field

from fst_ray.config import StrictModel, register_result


class QSummary(StrictModel):
    """Q averaged over the τ grid and over images, with its bootstrap CI and random baseline."""

    mean: float = Field(description="mean over images of the τ-averaged Q_τ")
    ci: tuple[float, float] = Field(description="percentile-bootstrap CI resampling source identities (95% family-wise over the methods)")
    baseline: float = Field(description="the same with φ_d shuffled over cells (random baseline)")
    n_images: int
    gap: float = Field(float("nan"), description="mean over images of Q − its own shuffled baseline")
    gap_ci: tuple[float, float] = Field((float("nan"), float("nan")),
                                        description="cluster-bootstrap CI of the gap (source identities; 95% family-wise over the methods)")
    noise_ceiling: dict[str, float] = Field(default_factory=dict,
                                            description="role (source, target, det) -> noise ceiling of its maps")
    gap_corrected: float | None = Field(None, description="the gap divided by √(detector's noise ceiling)")
    n_clusters: int = Field(0, description="source identities of the images")


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
    ci_paired: dict[str, list[tuple[float, float]]] = Field(
        default_factory=dict, description="method -> 95% CI per τ (source identities resampled), paired detector")
    ci_unpaired: dict[str, list[tuple[float, float]]] = Field(default_factory=dict)
    baseline_paired: dict[str, list[float]] = Field(
        default_factory=dict, description="method -> the paired detector's own shuffled-φ_d baseline per τ")
    baseline_unpaired: dict[str, list[float]] = Field(
        default_factory=dict, description="method -> the unpaired detector's own baseline per τ")
    difference: dict[str, float] = Field(
        default_factory=dict, description="method -> mean over images and τ of (Q_p − b_p) − (Q_u − b_u)")
    difference_ci: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="method -> cluster-bootstrap CI of the paired difference (95% family-wise over the methods)")
    noise_ceiling: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="method -> map (source, target, paired, unpaired) -> noise ceiling")
    n_images: dict[str, int] = Field(default_factory=dict)
    n_clusters: dict[str, int] = Field(default_factory=dict)
    auc_paired: dict[str, float] = Field(default_factory=dict)
    auc_unpaired: dict[str, float] = Field(default_factory=dict)


class DeltaRow(StrictModel):
    source: float
    target: float
    detector: float
    fst: float | None = Field(None, description="the FST-Matching model's detector branch, where trained")
    ci: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="explained model (source, target, detector, fst) -> bootstrap CI "
                                          "of δ, resampling source identities (95% family-wise over the methods)")
    noise_ceiling: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="explained model -> compression -> noise ceiling of its maps (expected "
                                          "cosine of two independent estimates of the same image's map)")
    delta_ceiling: dict[str, float] = Field(
        default_factory=dict, description="explained model -> the δ that estimator noise alone leaves when the true "
                                          "maps do not change at all: ½[√(r_raw r_c23) + √(r_raw r_c40)]")
    corrected: dict[str, float] = Field(
        default_factory=dict, description="explained model -> δ disattenuated by the ceilings of the maps it compares")
    corrected_ci: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="explained model -> cluster-bootstrap CI of the corrected δ (95% "
                                                                 "family-wise over the methods)")
    n_clusters: int = Field(0, description="source identities the images come from (the bootstrap's clusters)")


@register_result("h3")
class H3Result(StrictModel):
    """H3: source/target concepts are stable under compression, artifact concepts are not."""

    delta: dict[str, DeltaRow] = Field(description="method -> δ per explained model")
    auc: dict[str, dict[str, dict[str, float]]] = Field(
        default_factory=dict, description="method -> compression -> {'detector': AUC, 'fst': AUC}")
    n_images: dict[str, int] = Field(default_factory=dict)

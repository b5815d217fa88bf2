"""``result.json`` of the hypothesis jobs: pydantic models whose JSON Schemas live in ``schemas/``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fst_ray import roles
from fst_ray.config import StrictModel, register_result

#: what a reading can conclude (fst_ray.hypotheses.readings)
VERDICTS = ("supports", "contradicts", "inconclusive", "too noisy", "not read", "not applicable")
#: the maps each hypothesis compares, by their names in its result: H1 by role (φ_s, φ_t, φ_d), H2's two
#: detectors by training set, H3's explained models by their words (and the three its reading compares)
H1_MAPS = ("source", "target", "det")
H2_DETECTORS = ("paired", "unpaired")
H3_MODELS = tuple(roles.get(r).word for r in roles.names())
H3_COMPARED = ("source", "target", "detector")


class Reading(StrictModel):
    """One verdict of a hypothesis job: what it concluded for one scope, from which number, and why."""

    hypothesis: Literal["H1", "H2", "H3"]
    method: str = Field(description="manipulation method ('all' where the verdict covers every one)")
    compression: str = Field(description="compression of the images explained")
    model: str = Field(description="architecture of the models read")
    verdict: Literal[VERDICTS]
    estimate: float | None = Field(None, description="the number read: H1 the gap Q − baseline, H2 the paired "
                                                     "difference, H3 min(δ_source, δ_target) − δ_detector "
                                                     "(noise-corrected, centred)")
    ci: tuple[float, float] | None = Field(None, description="its cluster-bootstrap CI (family-wise over the methods)")
    why: str = Field(description="the reason, with the numbers that decided it")


class Ceiling(StrictModel):
    """A model's noise ceiling, pooled over the images it explained at one compression
    (:func:`fst_ray.metrics.ceiling_summary`): the expected cosine of two independent estimates of one image's map."""

    centred: float = Field(description="of the centred maps (offset Σφ/G² removed): what the gates use")
    centred_ci: tuple[float, float] = Field(description="cluster-bootstrap 95% CI of `centred` (source identities)")
    plain: float = Field(description="of the maps as they are, offset included: what shrinks Q's gap")
    n_images: int = Field(description="images the ceiling rests on")
    n_clusters: int = Field(description="source identities of those images")
    readable: bool = Field(description="centred ≥ fst_ray.metrics.READABLE_CEILING: readings may use these maps")


class QSummary(StrictModel):
    """Q averaged over the τ grid and over images, with its bootstrap CI and random baseline."""

    mean: float = Field(description="mean over images of the τ-averaged Q_τ")
    ci: tuple[float, float] = Field(description="percentile-bootstrap CI resampling source identities (95% family-wise over the methods)")
    baseline: float = Field(description="the same with φ_d shuffled over cells (random baseline)")
    n_images: int
    gap: float = Field(float("nan"), description="mean over images of Q − its own shuffled baseline")
    gap_ci: tuple[float, float] = Field((float("nan"), float("nan")),
                                        description="cluster-bootstrap CI of the gap (source identities; 95% family-wise over the methods)")
    noise_ceiling: dict[str, Ceiling] = Field(
        default_factory=dict, description="role (source, target, det) -> noise ceiling of its maps, pooled over "
                                          "every method's images of this architecture")
    gap_corrected: float | None = Field(None, description="the gap divided by √(detector's plain noise ceiling); "
                                                          "null where a ceiling is below the readable one")
    n_clusters: int = Field(0, description="source identities of the images")
    baseline_degenerate: str | None = Field(None, description="why no reading is made from a degenerate baseline "
                                                              "(the detector's baseline check warns), else null")


class BaselineCheck(StrictModel):
    """Is the removal degenerate for this model? Its score on the all-baseline image against the images explained,
    and the sign of Σφ (docs/design.md §1, "Baselines"): where the all-baseline image scores the explained class at
    least as high as the images do, removing cells does not remove the evidence, Σφ ≤ 0 whatever the image shows,
    and a map's sign says more about the baseline than the image."""

    baseline: str = Field(description="what removed cells showed: zero, mean, blur or source")
    value: str = Field(description="the game's value: logit, probability or log-odds")
    p_empty: float = Field(description="mean probability of the explained class on the all-baseline image")
    p_full: float = Field(description="mean probability of the explained class on the whole image")
    confident_share: float = Field(description="share of images whose all-baseline image gets the explained "
                                               "class with p > 0.9")
    value_empty: float = Field(description="mean game value of the all-baseline image")
    value_full: float = Field(description="mean game value of the whole image")
    negative_sum_share: float = Field(description="share of maps with Σφ < 0")
    negative_cell_share: float = Field(description="share of cells with φ < 0")
    n_images: int
    warning: bool = Field(description="the removal is degenerate for this model: the all-baseline image scores the "
                                      "explained class at least as high as the images explained, Σφ < 0 in half "
                                      "the maps or more, or mean p > 0.9 on it (fst_ray.metrics.baseline_check)")
    why: str | None = Field(None, description="which of those holds, with the numbers")


class Faithfulness(StrictModel):
    """One model's maps scored against the planted manipulation masks (and, for every model, the face region
    of the aligned crop): :mod:`fst_ray.faithfulness`. CIs resample source identities."""

    n_images: int = Field(description="images with a mask (the mask scores' images; the face and curve scores use "
                                      "every explained image)")
    n_clusters: int
    noise_ceiling: float | None = Field(None, description="centred noise ceiling of these maps: estimator noise pulls "
                                                          "every score toward chance (the random order)")
    mask_area: float | None = Field(None, description="mean share of the image inside the mask (chance of "
                                                      "mass_in_mask)")
    mass_in_mask: float | None = Field(None, description="mean share of the map's positive mass inside the mask")
    mass_gap_ci: tuple[float, float] | None = Field(None, description="CI of per image mass_in_mask − mask_area")
    pointing: float | None = Field(None, description="share of images whose top cell is inside the mask")
    pointing_k: float | None = Field(None, description="share of the top-k cells inside the mask, k = the mask's "
                                                       "cells (its chance: pointing_chance)")
    pointing_chance: float | None = Field(None, description="mean share of cells inside the mask")
    face_area: float | None = Field(None, description="share of the crop on the face (the alignment template's "
                                                      "face ellipse)")
    mass_on_face: float | None = Field(None, description="mean share of the map's positive mass on the face; the "
                                                         "rest is on the scene")
    face_gap_ci: tuple[float, float] | None = Field(None, description="CI of per image mass_on_face − face_area")
    deletion: float | None = Field(None, description="mean area under the deletion curve in the map's order "
                                                     "(game value units; lower = more faithful)")
    deletion_random: float | None = Field(None, description="the same along a random order")
    deletion_gap_ci: tuple[float, float] | None = Field(None, description="CI of per image deletion − random")
    insertion: float | None = Field(None, description="mean area under the insertion curve (higher = more faithful)")
    insertion_random: float | None = None
    insertion_gap_ci: tuple[float, float] | None = Field(None, description="CI of per image insertion − random")
    curves: dict[str, list[float]] = Field(default_factory=dict, description="mean curve per kind (deletion, "
                                           "insertion, deletion_random, insertion_random) over the share of cells")


@register_result("h1")
class H1Result(StrictModel):
    """H1: the detector's evidence lies outside what identifies source or target."""

    readings: list[Reading] = Field(default_factory=list, description="every verdict, as data (reports render "
                                                                       "these)")

    variant: str = Field(description="Q_τ variant: 'paper' or 'official' (fst_ray.metrics)")
    tau: list[float]
    q: dict[str, dict[str, QSummary]] = Field(description="method -> architecture -> Q summary")
    protocol: dict[str, str] = Field(default_factory=dict, description="what the detectors trained on and what was "
                                                                       "explained, in the paper's terms")
    baseline_check: dict[str, BaselineCheck] = Field(
        default_factory=dict, description="explained model (source, target, detector) -> its baseline check, first "
                                          "architecture, all explained images")
    faithfulness: dict[str, dict[str, Faithfulness]] = Field(
        default_factory=dict, description="method -> explained model -> maps against the planted masks, first "
                                          "architecture")
    shortcut: dict[str, dict[str, float | None]] = Field(
        default_factory=dict, description="shortcut_study: target encoder (plain, scene-balanced) -> hold-out top-1 "
                                          "(all, originals, fakes) and frame counts, positive mass on face / in mask and their "
                                          "areas")


@register_result("h2")
class H2Result(StrictModel):
    """H2: a detector trained on paired data learns more source/target-irrelevant evidence."""

    readings: list[Reading] = Field(default_factory=list, description="every verdict, as data (reports render "
                                                                       "these)")

    variant: str = "official"
    tau: list[float]
    dataset: str = Field("ffpp", description="layout of the ingested dataset (fst_ray.datasets)")
    not_applicable: str | None = Field(None, description="why H2 does not apply to the dataset (then every table "
                                                         "is empty)")
    q_paired: dict[str, list[float]] = Field(default_factory=dict, description="method -> mean Q_τ per τ, paired "
                                                                                "detector")
    q_unpaired: dict[str, list[float]] = Field(default_factory=dict, description="method -> mean Q_τ per τ, "
                                                                                 "unpaired detector")
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
    noise_ceiling: dict[str, Ceiling] = Field(
        default_factory=dict, description="map (source, target, paired, unpaired) -> noise ceiling, pooled over "
                                          "every method's images")
    n_images: dict[str, int] = Field(default_factory=dict)
    n_clusters: dict[str, int] = Field(default_factory=dict)
    training_frames: dict[str, str] = Field(
        default_factory=dict, description="set (paired, unpaired) -> the Parquet file of the keys of the frames its "
                                          "detector trained on (beside its models)")
    auc_paired: dict[str, float] = Field(default_factory=dict)
    auc_unpaired: dict[str, float] = Field(default_factory=dict)
    protocol: dict[str, str] = Field(default_factory=dict)
    baseline_check: dict[str, BaselineCheck] = Field(
        default_factory=dict, description="explained model (source, target, paired, unpaired) -> its baseline check")


class DeltaRow(StrictModel):
    source: float
    target: float
    detector: float
    fst: float | None = Field(None, description="the FST-Matching model's detector branch, where trained")
    ci: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="explained model (source, target, detector, fst) -> bootstrap CI "
                                          "of δ, resampling source identities (95% family-wise over the methods)")
    centred: dict[str, float] = Field(
        default_factory=dict, description="explained model -> δ of the centred maps (offset Σφ/G² removed: an offset "
                                          "shared by a frame's maps at each compression raises the paper's δ "
                                          "whatever the maps show)")
    centred_ci: dict[str, tuple[float, float]] = Field(default_factory=dict)
    method_ceiling: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="explained model -> compression -> centred noise ceiling of its maps on "
                                          "this method's images alone (the gates use the pooled H3Result."
                                          "noise_ceiling)")
    delta_ceiling: dict[str, float] = Field(
        default_factory=dict, description="explained model -> the centred δ that estimator noise alone leaves when "
                                          "the true maps do not change at all: ½[√(r_raw r_c23) + √(r_raw r_c40)]")
    corrected: dict[str, float] = Field(
        default_factory=dict, description="explained model -> centred δ disattenuated by the ceilings of the maps it "
                                          "compares (what H3's reading uses; reports print it only where "
                                          "every ceiling it rests on is readable)")
    corrected_ci: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="explained model -> cluster-bootstrap CI of the corrected δ (95% "
                                                                 "family-wise over the methods)")
    contrast: float | None = Field(None, description="min(corrected δ source, corrected δ target) − corrected δ "
                                                     "detector, of centred maps: what H3's reading uses")
    contrast_ci: tuple[float, float] | None = Field(None, description="its cluster-bootstrap CI, the images resampled "
                                                                      "jointly for the three models")
    n_clusters: int = Field(0, description="source identities the images come from (the bootstrap's clusters)")


@register_result("h3")
class H3Result(StrictModel):
    """H3: source/target concepts are stable under compression, artifact concepts are not."""

    readings: list[Reading] = Field(default_factory=list, description="every verdict, as data (reports render "
                                                                       "these)")

    delta: dict[str, DeltaRow] = Field(description="method -> δ per explained model")
    auc: dict[str, dict[str, dict[str, float]]] = Field(
        default_factory=dict, description="method -> compression -> {'detector': AUC, 'fst': AUC} of the detectors "
                                          "trained on protocol['detectors trained on']")
    n_images: dict[str, int] = Field(default_factory=dict)
    auc_matched: dict[str, dict[str, dict[str, float]]] = Field(
        default_factory=dict, description="auc_protocol 'matched': method -> compression -> {'detector', 'fst'}: AUC "
                                          "of detectors trained on that compression (train-on-cX / test-on-cX)")
    protocol: dict[str, str] = Field(default_factory=dict)
    noise_ceiling: dict[str, dict[str, Ceiling]] = Field(
        default_factory=dict, description="explained model -> compression -> noise ceiling pooled over every "
                                          "method's images: what gates the readings")
    baseline_check: dict[str, dict[str, BaselineCheck]] = Field(
        default_factory=dict, description="compression -> explained model -> its baseline check")
    faithfulness: dict[str, dict[str, dict[str, Faithfulness]]] = Field(
        default_factory=dict, description="method -> compression -> explained model -> maps against the masks")

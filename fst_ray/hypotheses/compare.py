"""Every attribution method on the same detector and frames, scored alike: faithfulness against the planted masks
and the face (mass, pointing, deletion/insertion against a random order, with cluster CIs), agreement with the
Shapley map (centred cosine, beside the Shapley maps' own noise ceiling: the most agreement estimator noise
allows), H1's gap Q − baseline and H3's δ and contrast with the method's detector maps against the encoders'
Shapley maps, and cost (model calls per map, seconds per map on this machine). Maps come from the map cache of
each method (``explain.attribution``), made where missing; the frames and the detector are H1's (H3's: the same
frames at raw, c23 and c40, where the tables hold all three)."""

from __future__ import annotations

import time

import numpy as np
from pydantic import Field

from fst_ray import ffpp, frames, metrics, plots
from fst_ray.config import StrictModel, UserError, register_config, register_result
from fst_ray.hypotheses import checks, pipeline, report
from fst_ray.hypotheses.config import HypothesisConfig
from fst_ray.hypotheses.h3 import same_frames, stability_row
from fst_ray.hypotheses.results import Faithfulness
from fst_ray.shapley.config import SHAPLEY, Attribution

__all__ = ["CompareConfig", "CompareResult", "MethodScore", "run_compare", "COMPARED"]

#: the methods compared by default: Shapley first (the reference), then perturbation, then gradient methods
COMPARED = ("shapley", "occlusion", "kernel_shap", "lime", "rise", "integrated_gradients", "input_x_gradient",
            "saliency", "grad_cam")


@register_config("compare")
class CompareConfig(HypothesisConfig):
    """H1's frames and detector, explained by several attribution methods."""

    attributions: list[Attribution] = Field(default_factory=lambda: list(COMPARED),
                                            description="the methods compared (shapley, the reference, always)")


class MethodScore(StrictModel):
    faithfulness: Faithfulness
    agreement: float | None = Field(None, description="mean centred cosine with the Shapley map of the same image")
    agreement_ci: tuple[float, float] | None = None
    q_gap: float | None = Field(None, description="H1's gap Q − baseline with this method's detector maps against the "
                                                  "encoders' Shapley maps (τ-averaged, mean over images)")
    q_gap_ci: tuple[float, float] | None = None
    delta: float | None = Field(None, description="H3's δ of this method's detector maps: centred, corrected for "
                                                  "their noise (None: the tables lack c23 or c40)")
    delta_ci: tuple[float, float] | None = None
    h3_contrast: float | None = Field(None, description="H3's contrast min(δ source, δ target) − δ detector with "
                                                        "this method's detector maps and the encoders' Shapley maps")
    h3_contrast_ci: tuple[float, float] | None = None
    model_calls: float = Field(description="images through the model per map (its backward included)")
    seconds: float | None = Field(description="wall seconds per map on the machine that made them in this run "
                                              "(None: they were in the cache)")


@register_result("compare")
class CompareResult(StrictModel):
    """Per method, its maps of the same frames under the same detector, scored alike."""

    methods: dict[str, MethodScore]
    shapley_ceiling: float | None = Field(None, description="centred noise ceiling of the Shapley maps")
    n_images: int
    n_delta_images: int = Field(0, description="frames H3's δ is read on (each at raw, c23 and c40)")
    encoder_delta: dict[str, float] = Field(default_factory=dict, description="source, target -> corrected δ of "
                                                                              "their Shapley maps (every method's "
                                                                              "contrast uses them)")
    protocol: dict[str, str] = Field(default_factory=dict)


def _method_cfg(cfg: HypothesisConfig, method: str) -> HypothesisConfig:
    return cfg.model_copy(update={"explain": cfg.explain.model_copy(update={"attribution": method})})


def _cached(cfg: HypothesisConfig, keys: list[str], model: str) -> bool:
    try:
        pipeline.map_columns(cfg, keys, model, ["n_evals"])
        return True
    except UserError:
        return False


def run_compare(cfg: CompareConfig) -> CompareResult:
    """Train (or load) the detector, explain H1's (and H3's) frames by every method, score and write the report."""
    pipeline.ensure_tables(cfg)
    cfg = pipeline.resolve_compressions(cfg)
    keys = [k for ks in pipeline.explained_keys(cfg).values() for k in ks]
    triples = [t for ts in same_frames(cfg).values() for t in ts]
    at = {c: [t[c] for t in triples] for c in ffpp.COMPRESSIONS}
    every = list(dict.fromkeys(keys + [k for c in ffpp.COMPRESSIONS for k in at[c]]))
    clusters = pipeline.clusters_of(keys)
    models = pipeline.ensure_models(cfg, cfg.archs[0], "full", ["source", "target", "det"])
    det = models["det"]
    shapley = _method_cfg(cfg, SHAPLEY)
    encoders = pipeline.shapley_maps(shapley, every, [models["source"], models["target"]])
    phi_s, phi_t = (pipeline.stack(encoders, keys, models[r]) for r in ("source", "target"))

    def measured(mcfg: HypothesisConfig, got: dict, model: str) -> tuple[list, list]:
        return ([pipeline.stack(got, at[c], model) for c in ffpp.COMPRESSIONS],
                [pipeline.map_halves(mcfg, at[c], model) for c in ffpp.COMPRESSIONS])

    stable = {r: measured(shapley, encoders, models[r]) for r in ("source", "target")} if triples else {}
    methods = list(dict.fromkeys([SHAPLEY, *cfg.attributions]))
    maps, scores, row = {}, {}, None
    for method in methods:
        mcfg = _method_cfg(cfg, method)
        cached = _cached(mcfg, every, det)
        start = time.perf_counter()
        got = pipeline.shapley_maps(mcfg, every, [det])
        seconds = None if cached else (time.perf_counter() - start) / len(every)
        maps[method] = pipeline.stack(got, keys, det)
        calls = pipeline.map_columns(mcfg, keys, det, ["n_evals"])["n_evals"]
        faith = checks.faithfulness(mcfg, keys, {"detector": det}, clusters)["detector"]
        agreement = np.array([metrics.cosine(metrics.centre(a), metrics.centre(b))
                              for a, b in zip(maps[method], maps[SHAPLEY])])
        q, baseline = metrics.q_per_image(phi_s, phi_t, maps[method], cfg.tau, cfg.variant, seed=cfg.seed)
        if triples:
            row = stability_row({**stable, "detector": measured(mcfg, got, det)}, pipeline.clusters_of(at["raw"]),
                                cfg)
        scores[method] = MethodScore(
            faithfulness=faith, agreement=float(np.nanmean(agreement)),
            agreement_ci=metrics.cluster_bootstrap_ci(agreement, clusters, n_boot=cfg.n_boot, seed=cfg.seed),
            q_gap=float(np.nanmean(q - baseline)),
            q_gap_ci=metrics.cluster_bootstrap_ci(q - baseline, clusters, n_boot=cfg.n_boot, seed=cfg.seed),
            delta=row.corrected.get("detector") if row else None,
            delta_ci=row.corrected_ci.get("detector") if row else None,
            h3_contrast=row.contrast if row else None, h3_contrast_ci=row.contrast_ci if row else None,
            model_calls=float(np.mean(calls)), seconds=seconds)
    result = CompareResult(methods=scores, shapley_ceiling=scores[SHAPLEY].faithfulness.noise_ceiling,
                           n_images=len(keys), n_delta_images=len(triples),
                           encoder_delta={r: row.corrected[r] for r in ("source", "target") if r in row.corrected}
                           if row else {},
                           protocol=checks.protocol(cfg, explained=cfg.explain.compression))
    _write(cfg, result, keys[:3], {m: maps[m][:3] for m in methods})
    return result


def _write(cfg: CompareConfig, result: CompareResult, shown: list[str], maps: dict[str, np.ndarray]) -> None:
    ceiling = result.shapley_ceiling
    rows = [(m, s.faithfulness.mass_in_mask, s.faithfulness.pointing, s.faithfulness.mass_on_face,
             s.faithfulness.deletion, s.faithfulness.insertion,
             f"{s.agreement:.3f} {report.ci(s.agreement_ci)}" if s.agreement is not None else None,
             f"{s.q_gap:+.3f} {report.ci(s.q_gap_ci)}" if s.q_gap is not None else None,
             f"{s.delta:.3f} {report.ci(s.delta_ci)}" if s.delta is not None else None,
             f"{s.h3_contrast:+.3f} {report.ci(s.h3_contrast_ci)}" if s.h3_contrast is not None else None,
             f"{s.model_calls:,.0f}", "cached" if s.seconds is None else f"{s.seconds:.2f}")
            for m, s in result.methods.items()]
    chance = next(iter(result.methods.values())).faithfulness
    summary = [checks.protocol_line(result.protocol),
               f"{result.n_images} fake test frames, the detector's maps by {len(result.methods)} methods. Chance: "
               f"mass in mask {chance.mask_area or float('nan'):.3f}, pointing {chance.pointing_chance or float('nan'):.3f}, "
               f"mass on face {chance.face_area or float('nan'):.3f}; the Shapley maps' centred noise ceiling "
               f"{ceiling if ceiling is not None else float('nan'):.3f} is the most agreement with them that their own "
               "estimator noise allows. H3 (δ and contrast: centred, noise-corrected, as H3 reads them) on "
               f"{result.n_delta_images} of these frames at raw, c23 and c40" + (
                   ", the encoders' Shapley maps δ " + ", ".join(f"{r} {v:.3f}" for r, v in result.encoder_delta.items())
                   if result.encoder_delta else "") + ".",
               report.md_table(["method", "mass in mask", "pointing", "mass on face", "deletion (lower: faithful)",
                                "insertion (higher: faithful)", "agreement with Shapley [CI]",
                                "H1's Q − baseline [CI]", "H3's δ detector [CI]", "H3's contrast [CI]",
                                "model calls / map",
                                "s / map"], rows)]
    images = {k: frames.images(cfg.tables, [k])[k] for k in shown}
    figure = plots.method_maps(images, maps, title="the detector's maps of the same frames, one method per row")
    details = ["![maps by method](compare_maps.png)",
               *checks.faithfulness_lines({"detector": {m: s.faithfulness for m, s in result.methods.items()}},
                                          "95% bootstrap CIs")]
    report.write(cfg.output, result, "Attribution methods compared", summary, details,
                 {"compare_maps.png": figure})

"""H3: source and target concepts are stable under compression, a detector's artifact concepts are not
(δ of the encoders > δ of the detector); and the FST-Matching model against the plain detector (AUC)."""

from __future__ import annotations

import numpy as np

from fst_ray import ffpp, frames, metrics, plots, roles
from fst_ray.evaluate import model_metrics
from fst_ray.hypotheses import pipeline, report
from fst_ray.hypotheses.config import HypothesisConfig
from fst_ray.hypotheses.h1 import stack
from fst_ray.hypotheses.results import DeltaRow, H3Result

TITLE = "H3 — stability under compression, and the FST-Matching model"
# explained model, by its word in results (source, target, detector, fst) -> its role in the ``full`` run
EXPLAINED = {roles.get(r).word: r for r in roles.names()}


def same_frames(cfg: HypothesisConfig) -> dict[str, list[dict[str, str]]]:
    """Per method, the explained frames as ``{compression: key}``, kept only where all three exist."""
    present = set(frames.read_index(cfg.tables)["key"].to_pylist())
    out = {}
    for method, keys in pipeline.explained_keys(cfg).items():
        triples = [frames.same_frame_keys(k) for k in keys]
        out[method] = [t for t in triples if all(t[c] in present for c in ffpp.COMPRESSIONS)]
    return out


def run_h3(cfg: HypothesisConfig) -> H3Result:
    """Explain the same frames at raw, c23 and c40 under v_s, v_t, v_d and the FST model; δ and AUC."""
    pipeline.ensure_tables(cfg)
    arch = cfg.archs[0]
    models = pipeline.ensure_models(cfg, arch, "full", list(EXPLAINED.values()))
    triples_by_method = same_frames(cfg)
    all_keys = [t[c] for ts in triples_by_method.values() for t in ts for c in ffpp.COMPRESSIONS]
    maps = pipeline.shapley_maps(cfg, all_keys, [models[r] for r in EXPLAINED.values()])
    auc = {name: pipeline.frame_auc(model_metrics(cfg.tables, models[EXPLAINED[name]])) for name in (roles.get(r).word for r in roles.detectors())}
    delta, aucs, n_images, figures = {}, {}, {}, {}
    for method, triples in triples_by_method.items():
        if not triples:
            continue
        per_model, ci = {}, {}
        for name, role in EXPLAINED.items():
            raw, c23, c40 = (stack(maps, [t[c] for t in triples], models[role]) for c in ffpp.COMPRESSIONS)
            per_image = metrics.stability_per_image(raw, c23, c40)
            per_model[name] = float(per_image.mean())
            ci[name] = metrics.bootstrap_ci(per_image, n_boot=cfg.n_boot, seed=cfg.seed)
        delta[method] = DeltaRow(**per_model, ci=ci)
        aucs[method] = {c: {name: auc[name].get(method, {}).get(c, float("nan")) for name in auc}
                        for c in ffpp.COMPRESSIONS}
        n_images[method] = len(triples)
        example = triples[0]
        pixels = frames.images(cfg.tables, list(example.values()))
        figures[f"h3_maps_{method}.png"] = plots.compression_maps(
            {c: pixels[example[c]] for c in ffpp.COMPRESSIONS},
            {name: {c: maps[(example[c], models[role])] for c in ffpp.COMPRESSIONS} for name, role in EXPLAINED.items()},
            title=f"H3, {method}: {example['raw'].split('/', 2)[2]} at raw / c23 / c40")
    result = H3Result(delta=delta, auc=aucs, n_images=n_images)
    figures["h3_delta.png"] = plots.table(
        [(m, *(_with_ci(r, name) for name in EXPLAINED)) for m, r in delta.items()],
        ["method", "δ source", "δ target", "δ detector", "δ FST"], title=f"H3: δ ({arch}), 95% CI over images")
    report.write(cfg.output, result, TITLE, h3_summary(result, cfg), h3_details(result, figures), figures)
    return result


def reading(row: DeltaRow) -> str:
    """What a δ row says about H3, the 95% CIs taken into account."""
    if min(row.source, row.target) <= row.detector:
        return "detector as stable as an encoder or more (contradicts the hypothesis)"
    if min(row.ci["source"][0], row.ci["target"][0]) > row.ci["detector"][1]:
        return "encoders more stable than the detector (CIs disjoint)"
    return "encoders more stable than the detector, but the CIs overlap (inconclusive)"


def _with_ci(row: DeltaRow, name: str) -> str:
    lo, hi = row.ci[name]
    return f"{getattr(row, name):.3f} [{lo:.2f}, {hi:.2f}]"


def h3_summary(result: H3Result, cfg: HypothesisConfig) -> list[str]:
    """The report's readings: how δ was computed, and the δ table."""
    delta_rows = [(m, *(_with_ci(r, name) for name in EXPLAINED), result.n_images[m], reading(r))
                  for m, r in result.delta.items()]
    return [
        "δ = mean over images of ½[cos(φ^c23, φ^raw) + cos(φ^c40, φ^raw)], the same frame (video, index) at "
        f"the three compressions; {cfg.explain.grid}×{cfg.explain.grid} grid, budget {cfg.explain.budget}; "
        "95% bootstrap CIs over images in brackets. "
        "The paper reports ≈0.73 for source/target and ≈0.17 for the baseline detector on FaceSwap.",
        report.md_table(["method", "δ source", "δ target", "δ detector", "δ FST", "images", "reading"], delta_rows),
    ]


def h3_details(result: H3Result, figures: dict[str, bytes]) -> list[str]:
    """The δ figure, the FST-vs-detector AUC table and the maps."""
    auc_rows = [(m, c, v["detector"], v["fst"], v["fst"] - v["detector"])
                for m, by_c in result.auc.items() for c, v in by_c.items()]
    mean_gain = {c: float(np.nanmean([r[4] for r in auc_rows if r[1] == c])) for c in ffpp.COMPRESSIONS}
    return [
        "![δ table](h3_delta.png)",
        "## FST-Matching model vs the plain detector (frame-level AUC, test split)",
        report.md_table(["method", "compression", "detector", "FST", "FST − detector"], auc_rows),
        "Mean AUC gain of the FST model: " + ", ".join(f"{c} {g:+.3f}" for c, g in mean_gain.items()) + ".",
        "## Maps at raw / c23 / c40",
        *[f"![{name}]({name})" for name in figures if name.startswith("h3_maps_")],
    ]

"""H3: source and target concepts are stable under compression, a detector's artifact concepts are not
(δ of the encoders > δ of the detector); and the FST-Matching model against the plain detector (AUC)."""

from __future__ import annotations

import numpy as np

from fst_ray import ffpp, frames, metrics, plots, roles
from fst_ray.evaluate import model_metrics
from fst_ray.hypotheses import checks, pipeline, report
from fst_ray.hypotheses.config import HypothesisConfig
from fst_ray.hypotheses.h1 import clusters_of, stack
from fst_ray.hypotheses.results import DeltaRow, H3Result
from fst_ray.shapley.config import SOURCE
from fst_ray.shapley.run import source_key

TITLE = "H3 — stability under compression, and the FST-Matching model"
# explained model, by its word in results (source, target, detector, fst) -> its role in the ``full`` run
EXPLAINED = {roles.get(r).word: r for r in roles.names()}


def same_frames(cfg: HypothesisConfig) -> dict[str, list[dict[str, str]]]:
    """Per method, the explained frames as ``{compression: key}``, kept only where all three exist (and, with
    the ``source`` baseline, their source frames too)."""
    index = frames.read_index(cfg.tables).to_pylist()
    present = {r["key"] for r in index}
    source = {r["key"]: source_key(r) for r in index} if cfg.explain.baseline == SOURCE else {}
    out = {}
    for method, keys in pipeline.explained_keys(cfg).items():
        triples = [frames.same_frame_keys(k) for k in keys]
        out[method] = [t for t in triples if all(t[c] in present and source.get(t[c], t[c]) in present
                                                 for c in ffpp.COMPRESSIONS)]
    return out


def delta_row(cfg: HypothesisConfig, maps: dict, models: dict[str, str], triples: list[dict[str, str]],
              level: float = 0.95) -> DeltaRow:
    """δ of every explained model on one method's frames, with CIs that resample source identities, and,
    where the maps were estimated in halves, their noise ceilings and the noise-corrected δ
    (:func:`fst_ray.metrics.stability_with_noise`)."""
    clusters = clusters_of([t["raw"] for t in triples])
    out = {"ci": {}, "noise_ceiling": {}, "delta_ceiling": {}, "corrected": {}, "corrected_ci": {},
           "n_clusters": len(set(clusters))}
    for name, role in EXPLAINED.items():
        keys = {c: [t[c] for t in triples] for c in ffpp.COMPRESSIONS}
        s = metrics.stability_with_noise([stack(maps, keys[c], models[role]) for c in ffpp.COMPRESSIONS],
                                         [pipeline.map_halves(cfg, keys[c], models[role]) for c in ffpp.COMPRESSIONS],
                                         clusters, n_boot=cfg.n_boot, seed=cfg.seed, level=level)
        out[name], out["ci"][name] = s["delta"], s["ci"]
        for field in ("noise_ceiling", "delta_ceiling", "corrected", "corrected_ci"):
            if field in s:
                out[field][name] = s[field]
    return DeltaRow(**out)


def run_h3(cfg: HypothesisConfig) -> H3Result:
    """Explain the same frames at raw, c23 and c40 under v_s, v_t, v_d and the FST model; δ and AUC."""
    pipeline.ensure_tables(cfg)
    cfg = pipeline.resolve_compressions(cfg)
    arch = cfg.archs[0]
    models = pipeline.ensure_models(cfg, arch, "full", list(EXPLAINED.values()))
    triples_by_method = same_frames(cfg)
    all_keys = [t[c] for ts in triples_by_method.values() for t in ts for c in ffpp.COMPRESSIONS]
    maps = pipeline.shapley_maps(cfg, all_keys, [models[r] for r in EXPLAINED.values()])
    auc = detector_aucs(cfg, models)
    matched = matched_aucs(cfg, arch, models) if cfg.auc_protocol == "matched" else {}
    words = {name: models[role] for name, role in EXPLAINED.items()}
    n_methods = sum(1 for t in triples_by_method.values() if t)
    delta, aucs, n_images, figures, faithful = {}, {}, {}, {}, {}
    for method, triples in triples_by_method.items():
        if not triples:
            continue
        delta[method] = delta_row(cfg, maps, models, triples, cfg.ci_level(n_methods))
        aucs[method] = {c: {name: auc[name].get(method, {}).get(c, float("nan")) for name in auc}
                        for c in ffpp.COMPRESSIONS}
        clusters = clusters_of([t["raw"] for t in triples])
        faithful[method] = {c: checks.faithfulness(cfg, [t[c] for t in triples], words, clusters,
                                                   cfg.ci_level(n_methods)) for c in ffpp.COMPRESSIONS}
        n_images[method] = len(triples)
        example = triples[0]
        pixels = frames.images(cfg.tables, list(example.values()))
        figures[f"h3_maps_{method}.png"] = plots.compression_maps(
            {c: pixels[example[c]] for c in ffpp.COMPRESSIONS},
            {name: {c: maps[(example[c], models[role])] for c in ffpp.COMPRESSIONS} for name, role in EXPLAINED.items()},
            title=f"H3, {method}: {example['raw'].split('/', 2)[2]} at raw / c23 / c40")
    result = H3Result(delta=delta, auc=aucs, n_images=n_images, auc_matched=_by_method(matched, delta),
                      protocol=checks.protocol(cfg, explained="raw, c23 and c40"), faithfulness=faithful,
                      baseline_check={c: checks.baseline_checks(cfg, [t[c] for ts in triples_by_method.values()
                                                                      for t in ts], words)
                                      for c in ffpp.COMPRESSIONS})
    figures["h3_delta.png"] = plots.table(
        [(m, *(_with_ci(r, name) for name in EXPLAINED)) for m, r in delta.items()],
        ["method", "δ source", "δ target", "δ detector", "δ FST"], title=f"H3: δ ({arch}), CIs over source identities")
    report.write(cfg.output, result, TITLE, h3_summary(result, cfg), h3_details(result, cfg, figures), figures)
    return result


def detector_aucs(cfg: HypothesisConfig, models: dict[str, str]) -> dict[str, dict[str, dict[str, float]]]:
    """Detector word -> method -> compression -> frame-level test AUC of ``models`` (role -> URI)."""
    return {roles.get(r).word: pipeline.frame_auc(model_metrics(cfg.tables, models[r])) for r in roles.detectors()}


def matched_aucs(cfg: HypothesisConfig, arch: str, models: dict[str, str]) -> dict[str, dict]:
    """The paper's train-on-cX / test-on-cX protocol: compression -> detector word -> method -> the AUC at
    that compression of detectors trained on it (the ``full`` run's where it trained on that compression)."""
    out = {}
    for c in ffpp.COMPRESSIONS:
        own = models if c == cfg.train_compression else pipeline.ensure_models(
            cfg, arch, "detectors", roles.detectors(), compression=c)
        out[c] = {w: {m: v.get(c, float("nan")) for m, v in by_method.items()}
                  for w, by_method in detector_aucs(cfg, own).items()}
    return out


def _by_method(matched: dict, methods) -> dict[str, dict[str, dict[str, float]]]:
    return {m: {c: {w: by_w[w].get(m, float("nan")) for w in by_w} for c, by_w in matched.items()}
            for m in methods} if matched else {}


def reading(row: DeltaRow, baseline_check: dict | None = None) -> str:
    """What a δ row says about H3: read on the noise-corrected δ and its cluster-bootstrap CIs, and not at all
    where a map's noise ceiling is below :data:`fst_ray.metrics.READABLE_CEILING` or, at any compression
    (``baseline_check``: compression -> model -> check), the baseline is degenerate for a model the reading
    compares (the maps then share an offset that raises their cosines whatever compression does)."""
    names = ("source", "target", "detector")
    for by_model in (baseline_check or {}).values():
        not_read = checks.degenerate(by_model, names)
        if not_read:
            return not_read
    if all(n in row.noise_ceiling for n in names):
        low = {n: min(row.noise_ceiling[n].values()) for n in names}
        noisy = [f"{n} {low[n]:.2f}" for n in names if low[n] < metrics.READABLE_CEILING]
        if noisy:
            return f"too noisy to read (noise ceiling {', '.join(noisy)} < {metrics.READABLE_CEILING})"
        value, ci, how = row.corrected, row.corrected_ci, "noise-corrected, "
    else:
        value, ci, how = {n: getattr(row, n) for n in names}, row.ci, "noise not measured, "
    if min(ci["source"][0], ci["target"][0]) > ci["detector"][1]:
        return f"encoders more stable than the detector ({how}CIs disjoint: supports the hypothesis)"
    if ci["detector"][0] > max(ci["source"][1], ci["target"][1]):
        return f"detector more stable than the encoders ({how}CIs disjoint: contradicts the hypothesis)"
    more = "encoders" if min(value["source"], value["target"]) > value["detector"] else "detector"
    return f"{more} more stable in the point estimates, but the CIs overlap ({how}inconclusive)"


def _with_ci(row: DeltaRow, name: str) -> str:
    lo, hi = row.ci[name]
    return f"{getattr(row, name):.3f} [{lo:.2f}, {hi:.2f}]"


def _corrected_cell(row: DeltaRow, name: str) -> str:
    if name not in row.corrected:
        return "–"
    lo, hi = row.corrected_ci[name]
    return f"{row.corrected[name]:.2f} [{lo:.2f}, {hi:.2f}] (ceiling {min(row.noise_ceiling[name].values()):.2f})"


def h3_summary(result: H3Result, cfg: HypothesisConfig) -> list[str]:
    """The report's readings: how δ was computed, and the δ table."""
    delta_rows = [(m, *(_with_ci(r, name) for name in EXPLAINED), f"{result.n_images[m]} / {r.n_clusters}",
                   reading(r, result.baseline_check)) for m, r in result.delta.items()]
    corrected_rows = [(m, *(_corrected_cell(r, name) for name in EXPLAINED)) for m, r in result.delta.items()]
    return [
        checks.protocol_line(result.protocol),
        "δ = mean over images of ½[cos(φ^c23, φ^raw) + cos(φ^c40, φ^raw)], the same frame (video, index) at "
        f"the three compressions; {cfg.explain.grid}×{cfg.explain.grid} grid, budget {cfg.explain.budget}; "
        f"{report.ci_words(cfg.ci_level(len(result.delta)), len(result.delta))} in brackets, resampling source "
        "identities (frames of one source are not independent). "
        "The paper reports ≈0.73 for source/target and ≈0.17 for the baseline detector on FaceSwap.",
        report.md_table(["method", "δ source", "δ target", "δ detector", "δ FST", "images / clusters", "reading"],
                        delta_rows),
        "Estimator noise: each map is the mean of two independent half-budget estimates; their agreement gives "
        "its noise ceiling r (the expected cosine of two independent maps of the same image; 1 = exact). Noise "
        "alone pulls a δ of unchanged maps down to ½[√(r_raw r_c23) + √(r_raw r_c40)]; the corrected δ divides "
        "each cosine by √(r₁ r₂) of the maps it compares. Readings use the corrected δ, and none is made where "
        f"a ceiling is below {metrics.READABLE_CEILING} (fst_ray/metrics.py).",
        report.md_table(["method", *(f"corrected δ {name}" for name in EXPLAINED)], corrected_rows),
        report.budget_guidance({name: [c for r in result.delta.values() for c in r.noise_ceiling.get(name, {}).values()]
                                for name in EXPLAINED if any(name in r.noise_ceiling for r in result.delta.values())},
                               cfg.explain.budget, cfg.explain.grid),
        *[line for i, (c, by_model) in enumerate(result.baseline_check.items())
          for line in checks.baseline_lines(by_model, f" of the {c} maps", explain=i == 0)],
    ]


def _auc_lines(auc: dict, trained: str) -> list[str]:
    rows = [(m, c, v["detector"], v["fst"], v["fst"] - v["detector"])
            for m, by_c in auc.items() for c, v in by_c.items()]
    gain = {c: float(np.nanmean([r[4] for r in rows if r[1] == c])) for c in ffpp.COMPRESSIONS}
    return [report.md_table(["method", "tested on", "detector", "FST", "FST − detector"], rows),
            f"Mean AUC gain of the FST model ({trained}): " + ", ".join(f"{c} {g:+.3f}" for c, g in gain.items()) + "."]


def h3_details(result: H3Result, cfg: HypothesisConfig, figures: dict[str, bytes]) -> list[str]:
    """The δ figure, the FST-vs-detector AUC tables, faithfulness and the maps."""
    trained = cfg.train_compression or "raw, c23 and c40 together"
    matched = ["### Trained and tested on each compression (the paper's table)",
               *_auc_lines(result.auc_matched, "each trained on the compression it is tested on")] \
        if result.auc_matched else []
    table = {f"{m}, {c}": by_model for m, by_c in result.faithfulness.items() for c, by_model in by_c.items()}
    return [
        "![δ table](h3_delta.png)",
        "## FST-Matching model vs the plain detector (frame-level AUC, test split)",
        f"### Both trained on {trained}, tested at each compression",
        *_auc_lines(result.auc, f"trained on {trained}"),
        *matched,
        *checks.faithfulness_lines(table, report.ci_words(cfg.ci_level(len(result.delta)), len(result.delta))),
        "## Maps at raw / c23 / c40",
        *[f"![{name}]({name})" for name in figures if name.startswith("h3_maps_")],
    ]

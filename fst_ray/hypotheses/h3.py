"""H3: source and target concepts are stable under compression, a detector's artifact concepts are not
(δ of the encoders > δ of the detector); and the FST-Matching model against the plain detector (AUC)."""

from __future__ import annotations

from fst_ray import ffpp, frames, metrics, roles
from fst_ray.evaluate import model_metrics
from fst_ray.hypotheses import checks, pipeline, readings, render
from fst_ray.hypotheses.config import HypothesisConfig
from fst_ray.hypotheses.pipeline import ceilings, clusters_of, stack
from fst_ray.hypotheses.results import H3_COMPARED, DeltaRow, H3Result
from fst_ray.shapley import baselines

# explained model, by its word in results (source, target, detector, fst) -> its role (models of ``full``)
EXPLAINED = {roles.get(r).word: r for r in roles.names()}


def same_frames(cfg: HypothesisConfig) -> dict[str, list[dict[str, str]]]:
    """Per method, the explained frames as ``{compression: key}``, kept only where all three exist (and, with a
    baseline made of other frames, those frames too)."""
    index = {r["key"]: r for r in frames.read_index(cfg.tables).to_pylist()}
    spec = baselines.get(cfg.explain.baseline)
    triples = {m: [frames.same_frame_keys(k) for k in keys] for m, keys in pipeline.explained_keys(cfg).items()}
    wanted = [index[k] for ts in triples.values() for t in ts for k in t.values() if k in index]
    filled = spec.others(cfg.tables, wanted, 1, cfg.explain.seed) if spec.others else {}
    return {m: [t for t in ts if all(t[c] in index and (not spec.others or filled[t[c]]) for c in ffpp.COMPRESSIONS)]
            for m, ts in triples.items()}


def delta_row(cfg: HypothesisConfig, maps: dict, models: dict[str, str], triples: list[dict[str, str]],
              level: float = 0.95) -> DeltaRow:
    """:func:`stability_row` of one method's frames ``triples``, its maps and halves read from the map cache."""
    keys = {c: [t[c] for t in triples] for c in ffpp.COMPRESSIONS}
    measured = {name: ([stack(maps, keys[c], models[role]) for c in ffpp.COMPRESSIONS],
                       [pipeline.map_halves(cfg, keys[c], models[role]) for c in ffpp.COMPRESSIONS])
                for name, role in EXPLAINED.items()}
    return stability_row(measured, clusters_of(keys["raw"]), cfg, level)


def stability_row(measured: dict[str, tuple[list, list]], clusters: list[str], cfg: HypothesisConfig,
                  level: float = 0.95) -> DeltaRow:
    """δ of every explained model on one method's frames (plain and centred), with CIs that resample source
    identities, and, where the maps were estimated in halves, their noise ceilings, the noise-corrected centred
    δ and H3's contrast min(δ_source, δ_target) − δ_detector with a joint CI
    (:func:`fst_ray.metrics.stability_with_noise`, :func:`fst_ray.metrics.stability_contrast`). ``measured``:
    model word -> (its maps ``[N, G²]`` at raw, c23, c40; their halves ``(phi_a, phi_b)`` or ``None`` each)."""
    fields = {"centred": "centred", "centred_ci": "centred_ci", "noise_ceiling": "method_ceiling",
              "delta_ceiling": "delta_ceiling", "corrected": "corrected", "corrected_ci": "corrected_ci"}
    out = {"ci": {}, **{f: {} for f in fields.values()}, "n_clusters": len(set(clusters))}
    for name, (maps_at, halves_at) in measured.items():
        s = metrics.stability_with_noise(maps_at, halves_at, clusters, n_boot=cfg.n_boot, seed=cfg.seed, level=level)
        out[name], out["ci"][name] = s["delta"], s["ci"]
        for got, field in fields.items():
            if got in s:
                out[field][name] = s[got]
    if all(h is not None for name in H3_COMPARED for h in measured[name][1]):
        out["contrast"], out["contrast_ci"] = metrics.stability_contrast(
            [measured["source"], measured["target"]], measured["detector"], clusters, n_boot=cfg.n_boot,
            seed=cfg.seed, level=level)
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
    delta, aucs, n_images, examples, faithful = {}, {}, {}, {}, {}
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
        examples[method] = {"key": example["raw"].split("/", 2)[2],
                            "images": {c: pixels[example[c]] for c in ffpp.COMPRESSIONS},
                            "maps": {name: {c: maps[(example[c], models[role])] for c in ffpp.COMPRESSIONS}
                                     for name, role in EXPLAINED.items()}}
    keys_at = {c: [t[c] for ts in triples_by_method.values() for t in ts] for c in ffpp.COMPRESSIONS}
    pooled = {name: {c: ceiling for c in ffpp.COMPRESSIONS
                     for ceiling in ceilings(cfg, keys_at[c], {name: models[role]}).values()}
              for name, role in EXPLAINED.items()}
    result = H3Result(delta=delta, auc=aucs, n_images=n_images, auc_matched=_by_method(matched, delta),
                      protocol=checks.protocol(cfg, explained="raw, c23 and c40"), faithfulness=faithful,
                      noise_ceiling={name: by_c for name, by_c in pooled.items() if by_c},
                      baseline_check={c: checks.baseline_checks(cfg, keys_at[c], words) for c in ffpp.COMPRESSIONS})
    result.readings = readings.read_h3(result)
    render.write_h3(cfg, result, examples)
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



"""H1: a detector's evidence lies outside what identifies the source or the target (Q_τ > its baseline)."""

from __future__ import annotations

import numpy as np

from fst_ray import ffpp, frames, metrics, roles
from fst_ray.evaluate import model_metrics
from fst_ray.hypotheses import checks, pipeline, readings, render
from fst_ray.hypotheses.pipeline import ceilings, clusters_of, stack
from fst_ray.hypotheses.config import HypothesisConfig
from fst_ray.hypotheses.results import H1_MAPS, Ceiling, H1Result, QSummary

BALANCED = "target (scene-balanced)"  # the shortcut study's target encoder


def q_summary(phi_s: np.ndarray, phi_t: np.ndarray, phi_d: np.ndarray, cfg: HypothesisConfig,
              clusters: list[str], ceilings: dict[str, Ceiling] | None = None, level: float = 0.95) -> QSummary:
    """τ-averaged Q over images (maps ``[N, G²]``), its shuffled-φ_d baseline, and per image Q − baseline
    with CIs at ``level`` that resample ``clusters`` (the images' source identities); ``ceilings``: role ->
    noise ceiling (the gap is corrected only where every one is readable)."""
    per_image, baseline = metrics.q_per_image(phi_s, phi_t, phi_d, cfg.tau, cfg.variant, seed=cfg.seed)
    gap = per_image - baseline
    ceilings = ceilings or {}
    readable = "det" in ceilings and all(c.readable for c in ceilings.values())
    return QSummary(
        mean=float(np.nanmean(per_image)), baseline=float(np.nanmean(baseline)), n_images=len(per_image),
        ci=metrics.cluster_bootstrap_ci(per_image, clusters, n_boot=cfg.n_boot, level=level, seed=cfg.seed),
        gap=float(np.nanmean(gap)),
        gap_ci=metrics.cluster_bootstrap_ci(gap, clusters, n_boot=cfg.n_boot, level=level, seed=cfg.seed),
        noise_ceiling=ceilings, n_clusters=len(set(clusters)),
        gap_corrected=metrics.q_corrected(np.nanmean(gap), 0.0, ceilings["det"].plain) if readable else None)


def run_h1(cfg: HypothesisConfig) -> H1Result:
    """Train (or load) v_s, v_t, v_d per architecture, explain fake test frames, compute Q_τ, write the report."""
    pipeline.ensure_tables(cfg)
    cfg = pipeline.resolve_compressions(cfg)
    keys = pipeline.explained_keys(cfg)
    all_keys = [k for ks in keys.values() for k in ks]
    q: dict[str, dict[str, QSummary]] = {m: {} for m in keys if keys[m]}
    rows, checked = [], {}
    for arch in cfg.archs:
        models = pipeline.ensure_models(cfg, arch, "full", list(H1_MAPS))
        explained = words(models)
        if cfg.shortcut_study and arch == cfg.archs[0]:
            explained[BALANCED] = pipeline.ensure_models(cfg, arch, "balanced", ["target"])["target"]
        maps = pipeline.shapley_maps(cfg, all_keys, list(explained.values()))
        checked_baseline = checks.baseline_checks(cfg, all_keys, explained)
        pooled_ceilings = ceilings(cfg, all_keys, {r: models[r] for r in H1_MAPS})
        for method, ks in keys.items():
            if not ks:
                continue
            s, t, d = (stack(maps, ks, models[r]) for r in H1_MAPS)
            q[method][arch] = q_summary(s, t, d, cfg, clusters_of(ks), pooled_ceilings, level=cfg.ci_level(len(q)))
            q[method][arch].baseline_degenerate = readings.degenerate(checked_baseline, ["detector"])
            if arch == cfg.archs[0]:
                checked[method] = checks.faithfulness(cfg, ks, explained, clusters_of(ks), cfg.ci_level(len(q)))
                tau = cfg.tau[len(cfg.tau) // 2]
                rows.append(dict(key=ks[0], phi_s=s[0], phi_t=t[0], phi_d=d[0], tau=tau,
                                 mask=metrics.intersection_mask(s[0], t[0], tau, cfg.variant),
                                 q=metrics.q_tau(s[0], t[0], d[0], tau, cfg.variant)))
        if arch == cfg.archs[0]:
            baseline = checked_baseline
            pooled = checks.faithfulness(cfg, all_keys, explained, clusters_of(all_keys))
            shortcut = shortcut_rows(cfg, {w: u for w, u in explained.items() if w.startswith("target")}, pooled) \
                if cfg.shortcut_study else {}
    pixels = frames.images(cfg.tables, [r["key"] for r in rows])
    for r in rows:
        r["image"] = pixels[r["key"]]
        r["label"] = f"{r['key']} (τ={r['tau']:.2f})"
    result = H1Result(variant=cfg.variant, tau=list(cfg.tau), q=q,
                      protocol=checks.protocol(cfg, explained=cfg.explain.compression, archs=cfg.archs), baseline_check=baseline,
                      faithfulness={**checked, "all": pooled}, shortcut=shortcut)
    result.readings = readings.read_h1(result)
    render.write_h1(cfg, result, rows)
    return result


def words(models: dict[str, str]) -> dict[str, str]:
    """``role -> URI`` of the explained models as ``word -> URI`` (their names in results)."""
    return {roles.get(r).word: models[r] for r in H1_MAPS}


def shortcut_rows(cfg: HypothesisConfig, targets: dict[str, str], pooled: dict) -> dict[str, dict[str, float | None]]:
    """The target encoder's scene shortcut, measured: per target encoder (plain, scene-balanced) its hold-out
    top-1 accuracy at the explained compression (all frames; fakes only, where the scene points at the partner)
    and where its maps' positive mass falls (face vs scene, mask)."""
    out = {}
    for word, uri in targets.items():
        rows = [r for r in model_metrics(cfg.tables, uri).identity if r.compression == cfg.explain.compression]
        fakes = [r.top1 for r in rows if r.method not in ("all", ffpp.ORIGINAL)]
        f = pooled[word]
        out[word] = {"holdout_top1": next((r.top1 for r in rows if r.method == "all"), None),
                     "holdout_frames": next((r.n for r in rows if r.method == "all"), None),
                     "holdout_top1_originals": next((r.top1 for r in rows if r.method == ffpp.ORIGINAL), None),
                     "holdout_frames_originals": next((r.n for r in rows if r.method == ffpp.ORIGINAL), None),
                     "holdout_top1_fakes": float(sum(fakes) / len(fakes)) if fakes else None,
                     "mass_on_face": f.mass_on_face, "face_area": f.face_area, "mass_in_mask": f.mass_in_mask,
                     "mask_area": f.mask_area}
    return out



"""H1: a detector's evidence lies outside what identifies the source or the target (Q_τ > its baseline)."""

from __future__ import annotations

import numpy as np

from fst_ray import frames, metrics, plots
from fst_ray.hypotheses import pipeline, report
from fst_ray.hypotheses.config import HypothesisConfig
from fst_ray.hypotheses.results import H1Result, QSummary

TITLE = "H1 — does the detector look outside source and target?"
ROLES = ("source", "target", "det")  # the maps Q_τ compares: φ_s, φ_t, φ_d


def q_summary(phi_s: np.ndarray, phi_t: np.ndarray, phi_d: np.ndarray, cfg: HypothesisConfig) -> QSummary:
    """τ-averaged Q over images (maps ``[N, G²]``), its bootstrap CI and the shuffled-φ_d baseline."""
    per_image = np.nanmean(metrics.q_curve(phi_s, phi_t, phi_d, cfg.tau, cfg.variant), axis=1)
    baseline = metrics.q_baseline(phi_s, phi_t, phi_d, cfg.tau, cfg.variant, seed=cfg.seed)
    return QSummary(mean=float(np.nanmean(per_image)), ci=metrics.bootstrap_ci(per_image, n_boot=cfg.n_boot,
                                                                                seed=cfg.seed),
                    baseline=float(np.nanmean(baseline)), n_images=len(per_image))


def verdict(q: QSummary) -> str:
    """What a Q summary says about its hypothesis, in words."""
    lo, hi = q.ci
    if lo > q.baseline:
        return "above its random baseline (supports the hypothesis)"
    if hi < q.baseline:
        return "below its random baseline (contradicts the hypothesis)"
    return "not distinguishable from its random baseline (inconclusive)"


def stack(maps: dict, keys: list[str], model: str) -> np.ndarray:
    return np.stack([maps[(k, model)] for k in keys])


def run_h1(cfg: HypothesisConfig) -> H1Result:
    """Train (or load) v_s, v_t, v_d per architecture, explain fake test frames, compute Q_τ, write the report."""
    pipeline.ensure_tables(cfg)
    keys = pipeline.explained_keys(cfg)
    all_keys = [k for ks in keys.values() for k in ks]
    q: dict[str, dict[str, QSummary]] = {m: {} for m in keys if keys[m]}
    rows = []
    for arch in cfg.archs:
        models = pipeline.ensure_models(cfg, arch, "full", list(ROLES))
        maps = pipeline.shapley_maps(cfg, all_keys, [models[r] for r in ROLES])
        for method, ks in keys.items():
            if not ks:
                continue
            s, t, d = (stack(maps, ks, models[r]) for r in ROLES)
            q[method][arch] = q_summary(s, t, d, cfg)
            if arch == cfg.archs[0]:
                tau = cfg.tau[len(cfg.tau) // 2]
                rows.append(dict(key=ks[0], phi_s=s[0], phi_t=t[0], phi_d=d[0], tau=tau,
                                 mask=metrics.intersection_mask(s[0], t[0], tau, cfg.variant),
                                 q=metrics.q_tau(s[0], t[0], d[0], tau, cfg.variant)))
    pixels = frames.images(cfg.tables, [r["key"] for r in rows])
    for r in rows:
        r["image"] = pixels[r["key"]]
        r["label"] = f"{r['key']} (τ={r['tau']:.2f})"
    result = H1Result(variant=cfg.variant, tau=list(cfg.tau), q=q)
    figure = plots.h1_rows(rows, title=f"H1, {cfg.archs[0]}: φ of a fake test frame per method "
                                       f"(red raises the explained logit; {cfg.variant} Q_τ)")
    report.write(cfg.output, result, TITLE, h1_summary(result, cfg), [
        "![H1 maps](h1_maps.png)",
        "Each row: a fake test frame, the source encoder's φ_s, the target encoder's φ_t, the detector's "
        "φ_d, and φ_d outside the intersection mask M_τ of the most source/target-relevant cells."],
        {"h1_maps.png": figure})
    return result


def h1_summary(result: H1Result, cfg: HypothesisConfig) -> list[str]:
    """The report's readings: how Q was computed, and the table."""
    rows = [(m, a, s.mean, report.ci(s.ci), s.baseline, s.n_images, verdict(s))
            for m, by_arch in result.q.items() for a, s in by_arch.items()]
    return [
        f"Q_τ variant **{result.variant}** (see `fst_ray/metrics.py`), averaged over τ ∈ "
        f"{result.tau[0]:.2f}..{result.tau[-1]:.2f} ({len(result.tau)} values) and over explained fake test "
        f"frames at {cfg.explain.compression}; 95% bootstrap CI over images; baseline = the same Q with φ_d "
        f"shuffled over cells. Shapley maps: {cfg.explain.grid}×{cfg.explain.grid} grid, budget "
        f"{cfg.explain.budget} evaluations per image, estimator `{cfg.explain.estimator}`.",
        report.md_table(["method", "arch", "Q", "95% CI", "baseline", "images", "reading"], rows),
    ]

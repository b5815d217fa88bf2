"""H1: a detector's evidence lies outside what identifies the source or the target (Q_τ > its baseline)."""

from __future__ import annotations

import numpy as np

from fst_ray import ffpp, frames, metrics, plots, roles
from fst_ray.evaluate import model_metrics
from fst_ray.hypotheses import checks, pipeline, report
from fst_ray.hypotheses.config import HypothesisConfig
from fst_ray.hypotheses.results import H1Result, QSummary
from fst_ray.shapley.config import SOURCE

TITLE = "H1 — does the detector look outside source and target?"
ROLES = ("source", "target", "det")  # the maps Q_τ compares: φ_s, φ_t, φ_d
BALANCED = "target (scene-balanced)"  # the shortcut study's target encoder


def q_summary(phi_s: np.ndarray, phi_t: np.ndarray, phi_d: np.ndarray, cfg: HypothesisConfig,
              clusters: list[str], ceilings: dict[str, float] | None = None, level: float = 0.95) -> QSummary:
    """τ-averaged Q over images (maps ``[N, G²]``), its shuffled-φ_d baseline, and per image Q − baseline
    with CIs at ``level`` that resample ``clusters`` (the images' source identities); ``ceilings``: role ->
    noise ceiling."""
    per_image = np.nanmean(metrics.q_curve(phi_s, phi_t, phi_d, cfg.tau, cfg.variant), axis=1)
    baseline = np.nanmean(metrics.q_baseline(phi_s, phi_t, phi_d, cfg.tau, cfg.variant, seed=cfg.seed), axis=1)
    gap = per_image - baseline
    ceilings = ceilings or {}
    return QSummary(
        mean=float(np.nanmean(per_image)), baseline=float(np.nanmean(baseline)), n_images=len(per_image),
        ci=metrics.cluster_bootstrap_ci(per_image, clusters, n_boot=cfg.n_boot, level=level, seed=cfg.seed),
        gap=float(np.nanmean(gap)),
        gap_ci=metrics.cluster_bootstrap_ci(gap, clusters, n_boot=cfg.n_boot, level=level, seed=cfg.seed),
        noise_ceiling=ceilings, n_clusters=len(set(clusters)),
        gap_corrected=metrics.q_corrected(np.nanmean(gap), 0.0, ceilings["det"]) if "det" in ceilings else None)


def verdict(q: QSummary) -> str:
    """What a Q summary says about its hypothesis: read on the per-image gap Q − baseline and its cluster CI,
    and not at all where a map's noise ceiling is below :data:`fst_ray.metrics.READABLE_CEILING` or the
    detector's baseline is degenerate (then the sign of Σφ_d, not the matching, drives Q)."""
    noisy = [f"{r} {c:.2f}" for r, c in q.noise_ceiling.items() if c < metrics.READABLE_CEILING]
    if noisy:
        return f"too noisy to read (noise ceiling {', '.join(noisy)} < {metrics.READABLE_CEILING})"
    if q.baseline_degenerate:
        return q.baseline_degenerate
    lo, hi = q.gap_ci
    if lo > 0:
        return "above its random baseline (supports the hypothesis)"
    if hi < 0:
        return "below its random baseline (contradicts the hypothesis)"
    return "not distinguishable from its random baseline (inconclusive)"


def clusters_of(keys: list[str]) -> list[str]:
    """The source identity of each frame key (frames of one video, and fakes of one source, are not
    independent draws): the bootstrap's clusters."""
    return [frames.split_key(k)[2].split("_")[0] for k in keys]


def ceilings(cfg: HypothesisConfig, keys: list[str], models: dict[str, str]) -> dict[str, float]:
    """Role -> the noise ceiling of its maps of ``keys`` (empty when the maps were made in one piece)."""
    out = {}
    for role, uri in models.items():
        halves = pipeline.map_halves(cfg, keys, uri)
        if halves is not None:
            out[role] = metrics.noise_ceiling(*halves)
    return out


def stack(maps: dict, keys: list[str], model: str) -> np.ndarray:
    return np.stack([maps[(k, model)] for k in keys])


def run_h1(cfg: HypothesisConfig) -> H1Result:
    """Train (or load) v_s, v_t, v_d per architecture, explain fake test frames, compute Q_τ, write the report."""
    pipeline.ensure_tables(cfg)
    cfg = pipeline.resolve_compressions(cfg)
    keys = pipeline.explained_keys(cfg)
    all_keys = [k for ks in keys.values() for k in ks]
    q: dict[str, dict[str, QSummary]] = {m: {} for m in keys if keys[m]}
    rows, checked = [], {}
    for arch in cfg.archs:
        models = pipeline.ensure_models(cfg, arch, "full", list(ROLES))
        explained = words(models)
        if cfg.shortcut_study and arch == cfg.archs[0]:
            explained[BALANCED] = pipeline.ensure_models(cfg, arch, "balanced", ["target"])["target"]
        maps = pipeline.shapley_maps(cfg, all_keys, list(explained.values()))
        checked_baseline = checks.baseline_checks(cfg, all_keys, explained)
        for method, ks in keys.items():
            if not ks:
                continue
            s, t, d = (stack(maps, ks, models[r]) for r in ROLES)
            q[method][arch] = q_summary(s, t, d, cfg, clusters_of(ks),
                                        ceilings(cfg, ks, {r: models[r] for r in ROLES}), level=cfg.ci_level(len(q)))
            q[method][arch].baseline_degenerate = checks.degenerate(checked_baseline, ["detector"])
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
                      protocol=checks.protocol(cfg, explained=cfg.explain.compression), baseline_check=baseline,
                      faithfulness={**checked, "all": pooled}, shortcut=shortcut)
    figures = {"h1_maps.png": plots.h1_rows(rows, title=f"H1, {cfg.archs[0]}: φ of a fake test frame per method "
                                                        f"(red raises the explained {cfg.explain.value}; "
                                                        f"{cfg.variant} Q_τ)"),
               "h1_faithfulness.png": faithfulness_figure(pooled, cfg)}
    report.write(cfg.output, result, TITLE, h1_summary(result, cfg), [
        "![H1 maps](h1_maps.png)",
        "Each row: a fake test frame, the source encoder's φ_s, the target encoder's φ_t, the detector's "
        "φ_d, and φ_d outside the intersection mask M_τ of the most source/target-relevant cells.",
        "### Faithfulness per method",
        *checks.faithfulness_lines(checked, report.ci_words(cfg.ci_level(len(q)), len(q)), explain=False),
        "![H1 faithfulness](h1_faithfulness.png)",
        f"Curves and shares over all explained images ({cfg.archs[0]}).",
        *shortcut_lines(shortcut)],
        figures)
    return result


def words(models: dict[str, str]) -> dict[str, str]:
    """``role -> URI`` of the explained models as ``word -> URI`` (their names in results)."""
    return {roles.get(r).word: models[r] for r in ROLES}


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


def shortcut_lines(shortcut: dict) -> list[str]:
    if not shortcut:
        return []
    rows = [(w, f"{r['holdout_top1']:.3f} (n = {r['holdout_frames']})",
             f"{r['holdout_top1_originals']:.3f} (n = {r['holdout_frames_originals']})", r["holdout_top1_fakes"],
             r["mass_on_face"], r["face_area"], r["mass_in_mask"], r["mask_area"]) for w, r in shortcut.items()]
    return ["## The target encoder's scene shortcut",
            "A scene (source video A) shows in its original (target label A) and in every fake A_B (label B): the "
            "scene alone predicts the partner's label. The scene-balanced target encoder (`train.scene_balance`) "
            "weighs each scene's original and fakes equally, so only the face tells A from B. Where do their maps "
            "fall? (mass on face vs the face's area; in the mask vs its area; hold-out top-1 on all frames, on "
            "originals — where the scene points at the wrong label — and on fakes; n: frames, which cluster in videos, "
            "so a binomial interval on n would be too narrow; the mass shares' CIs are in the faithfulness table)",
            report.md_table(["target encoder", "hold-out top-1", "on originals", "on fakes", "mass on face",
                             "face area", "mass in mask", "mask area"], rows)]


def faithfulness_figure(pooled: dict, cfg: HypothesisConfig) -> bytes:
    return plots.faithfulness(
        {w: f.curves for w, f in pooled.items()},
        {w: {"mask": (f.mass_in_mask, f.mask_area) if f.mass_in_mask is not None else None,
             "face": (f.mass_on_face, f.face_area) if f.mass_on_face is not None else None} for w, f in pooled.items()},
        value=cfg.explain.value, title=f"H1, {cfg.archs[0]}: maps against the planted masks and the face")


def h1_summary(result: H1Result, cfg: HypothesisConfig) -> list[str]:
    """The report's readings: how Q was computed, and the table."""
    rows = [(m, a, s.mean, report.ci(s.ci), s.baseline, s.gap, report.ci(s.gap_ci), s.gap_corrected,
             ", ".join(f"{r} {c:.2f}" for r, c in s.noise_ceiling.items()) or "–", f"{s.n_images} / {s.n_clusters}",
             verdict(s)) for m, by_arch in result.q.items() for a, s in by_arch.items()]
    return [
        checks.protocol_line(result.protocol),
        f"Q_τ variant **{result.variant}** (see `fst_ray/metrics.py`), averaged over τ ∈ "
        f"{result.tau[0]:.2f}..{result.tau[-1]:.2f} ({len(result.tau)} values) and over explained fake test "
        f"frames at {cfg.explain.compression}; baseline = the same Q with φ_d shuffled over cells; gap = per image "
        f"Q − baseline; {report.ci_words(cfg.ci_level(len(result.q)), len(result.q))} resample source identities. Noise ceiling: the expected cosine of two "
        f"independent maps of the same image, from the two half-budget estimates of each map; the gap divided by "
        f"√(detector's ceiling) is its noise-corrected value; no reading below a ceiling of "
        f"{metrics.READABLE_CEILING}. Shapley maps: {cfg.explain.grid}×{cfg.explain.grid} grid, budget "
        f"{cfg.explain.budget} evaluations per image, estimator `{cfg.explain.estimator}`.",
        report.md_table(["method", "arch", "Q", "CI", "baseline", "gap", "gap CI", "gap corrected",
                         "noise ceiling", "images / clusters", "reading"], rows),
        report.budget_guidance({r: [s.noise_ceiling[r] for by_arch in result.q.values() for s in by_arch.values()
                                    if r in s.noise_ceiling] for r in ROLES
                                if any(r in s.noise_ceiling for b in result.q.values() for s in b.values())},
                               cfg.explain.budget, cfg.explain.grid),
        *checks.baseline_lines(result.baseline_check, f" ({cfg.archs[0]})"),
        *([f"Under the **{SOURCE}** baseline a cell where the fake equals its source cannot contribute, so every "
           "model's map is confined to the manipulated cells (and, where crops are not pixel-aligned, their "
           "surroundings): M_τ and φ_d then overlap by construction, and Q compares them inside the manipulated "
           "region only — not the paper's Q."] if cfg.explain.baseline == SOURCE else []),
        *checks.faithfulness_lines({"all methods": result.faithfulness["all"]}, "95% bootstrap CIs"),
    ]

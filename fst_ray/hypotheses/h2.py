"""H2: a detector trained on *paired* data (reals = the fakes' sources and targets) learns more
source/target-irrelevant evidence than one trained on *unpaired* data of the same size."""

from __future__ import annotations

import numpy as np

from fst_ray import metrics, plots
from fst_ray.evaluate import model_metrics
from fst_ray.hypotheses import checks, pipeline, report
from fst_ray.hypotheses.config import HypothesisConfig
from fst_ray.hypotheses.h1 import ceilings, clusters_of, stack
from fst_ray.hypotheses.results import H2Result

TITLE = "H2 — paired vs unpaired training"
SETS = ("paired", "unpaired")


def paired_difference(gap_paired: np.ndarray, gap_unpaired: np.ndarray, clusters: list[str], n_boot: int,
                      seed: int, level: float = 0.95) -> tuple[float, tuple[float, float]]:
    """H2's comparison on the shared images: per image the τ-averaged (Q_p − b_p) − (Q_u − b_u) from the two
    detectors' gaps ``[N, τ]`` (each Q minus its own detector's baseline); its mean and CI at ``level``
    resampling ``clusters``."""
    diff = np.nanmean(gap_paired - gap_unpaired, axis=1)
    return float(np.nanmean(diff)), metrics.cluster_bootstrap_ci(diff, clusters, n_boot=n_boot, level=level,
                                                                 seed=seed)


def run_h2(cfg: HypothesisConfig) -> H2Result:
    """Train paired and unpaired detectors, explain the same fake test frames, compare Q_τ curves and AUC; on a
    dataset without donor videos, a result that says H2 does not apply."""
    pipeline.ensure_tables(cfg)
    layout = pipeline.dataset_layout(cfg)
    if not layout.donor_videos:
        why = (f"H2 does not apply to {layout.title}: a fake's target there is an identity with many videos, not one "
               "donor video, so there is no paired set (reals = exactly the fakes' source and target videos) to "
               "train on. H1 and H3 apply.")
        result = H2Result(variant=cfg.variant, tau=list(cfg.tau), dataset=layout.name, not_applicable=why)
        report.write(cfg.output, result, TITLE, [why], [], {})
        return result
    cfg = pipeline.resolve_compressions(cfg)
    arch = cfg.archs[0]
    encoders = pipeline.ensure_models(cfg, arch, "full", ["source", "target"])
    detectors = {s: pipeline.ensure_models(cfg, arch, s, ["det"])["det"] for s in SETS}
    keys = pipeline.explained_keys(cfg)
    all_keys = [k for ks in keys.values() for k in ks]
    maps = pipeline.shapley_maps(cfg, all_keys, [encoders["source"], encoders["target"], *detectors.values()])
    auc = {s: pipeline.frame_auc(model_metrics(cfg.tables, detectors[s])) for s in SETS}
    fields: dict[str, dict] = {f: {} for f in H2Result.model_fields
                               if f not in ("variant", "tau", "dataset", "not_applicable", "protocol",
                                            "baseline_check")}
    n_methods = sum(1 for ks in keys.values() if ks)
    for method, ks in keys.items():
        if not ks:
            continue
        clusters = clusters_of(ks)
        phi_s, phi_t = stack(maps, ks, encoders["source"]), stack(maps, ks, encoders["target"])
        gaps = {}
        for s in SETS:
            phi_d = stack(maps, ks, detectors[s])
            curve = metrics.q_curve(phi_s, phi_t, phi_d, cfg.tau, cfg.variant)  # [N, τ]
            base = metrics.q_baseline(phi_s, phi_t, phi_d, cfg.tau, cfg.variant, seed=cfg.seed)  # its own
            gaps[s] = curve - base
            fields[f"q_{s}"][method] = np.nanmean(curve, axis=0).tolist()
            fields[f"baseline_{s}"][method] = np.nanmean(base, axis=0).tolist()
            fields[f"ci_{s}"][method] = [metrics.cluster_bootstrap_ci(curve[:, j], clusters, n_boot=cfg.n_boot,
                                                                      seed=cfg.seed) for j in range(len(cfg.tau))]
            fields[f"auc_{s}"][method] = auc[s].get(method, {}).get(cfg.explain.compression, float("nan"))
        fields["difference"][method], fields["difference_ci"][method] = paired_difference(
            gaps["paired"], gaps["unpaired"], clusters, cfg.n_boot, cfg.seed, cfg.ci_level(n_methods))
        fields["noise_ceiling"][method] = ceilings(cfg, ks, {"source": encoders["source"],
                                                             "target": encoders["target"], **detectors})
        fields["n_images"][method], fields["n_clusters"][method] = len(ks), len(set(clusters))
    explained = {"source": encoders["source"], "target": encoders["target"], **detectors}
    result = H2Result(variant=cfg.variant, tau=list(cfg.tau), dataset=layout.name,
                      protocol=checks.protocol(cfg, cfg.explain.compression),
                      baseline_check=checks.baseline_checks(cfg, all_keys, explained), **fields)
    curves = {m: {"paired": result.q_paired[m], "unpaired": result.q_unpaired[m],
                  "baseline paired": result.baseline_paired[m], "baseline unpaired": result.baseline_unpaired[m]}
              for m in result.q_paired}
    bands = {m: {"paired": result.ci_paired[m], "unpaired": result.ci_unpaired[m]} for m in result.q_paired}
    figure = plots.q_curves(result.tau, curves, bands, ylabel=f"Q_τ ({cfg.variant})",
                            title=f"H2, {arch}: paired vs unpaired detector (95% CI, source identities resampled)")
    report.write(cfg.output, result, TITLE, h2_summary(result, cfg, keys), ["![H2 Q curves](h2_q_curves.png)"],
                 {"h2_q_curves.png": figure})
    return result


def reading(result: H2Result, method: str) -> str:
    """H2's reading for one method, from the paired difference's CI; none where a map is too noisy."""
    ceil = result.noise_ceiling.get(method, {})
    noisy = [f"{r} {c:.2f}" for r, c in ceil.items() if c < metrics.READABLE_CEILING]
    if noisy:
        return f"too noisy to read (noise ceiling {', '.join(noisy)} < {metrics.READABLE_CEILING})"
    not_read = checks.degenerate(result.baseline_check, SETS)
    if not_read:
        return not_read
    weak = [f"{s} {a:.2f}" for s, a in (("paired", result.auc_paired.get(method, float("nan"))),
                                        ("unpaired", result.auc_unpaired.get(method, float("nan"))))
            if not a >= metrics.USEFUL_AUC]
    if weak:
        return f"a detector at chance (AUC {', '.join(weak)} < {metrics.USEFUL_AUC}): nothing to read"
    lo, hi = result.difference_ci[method]
    if lo > 0:
        return "paired above unpaired (supports the hypothesis)"
    if hi < 0:
        return "paired below unpaired (contradicts the hypothesis)"
    return "difference not distinguishable from 0 (inconclusive)"


def h2_summary(result: H2Result, cfg: HypothesisConfig, keys: dict[str, list[str]]) -> list[str]:
    """The report's readings: the protocol, and the table."""
    rows = []
    for m in result.q_paired:
        ceil = result.noise_ceiling.get(m, {})
        rows.append((m, float(np.nanmean(result.q_paired[m])), float(np.nanmean(result.baseline_paired[m])),
                     float(np.nanmean(result.q_unpaired[m])), float(np.nanmean(result.baseline_unpaired[m])),
                     result.difference[m], report.ci(result.difference_ci[m]),
                     ", ".join(f"{r} {c:.2f}" for r, c in ceil.items()) or "–",
                     result.auc_paired[m], result.auc_unpaired[m], f"{result.n_images[m]} / {result.n_clusters[m]}",
                     reading(result, m)))
    return [
        checks.protocol_line(result.protocol),
        f"Two detectors ({cfg.archs[0]}) trained on sets of equal size that share their fakes: *paired* "
        "takes as reals exactly the source and target videos of those fakes, *unpaired* reals from videos "
        "that are neither. Both are explained on the same fake test frames "
        f"({cfg.explain.compression}; the sets are built at the detectors' training compression); Q_τ variant "
        f"**{result.variant}**, mean over τ in the table, per τ in the "
        "figure. Each detector has its own shuffled-φ_d baseline; the comparison is paired per image: "
        "difference = mean over τ of (Q_paired − baseline_paired) − (Q_unpaired − baseline_unpaired), with "
        f"{report.ci_words(cfg.ci_level(len(rows)), len(rows))} over the shared images that resample source "
        "identities. Noise ceilings from each "
        f"map's two half-budget estimates; no reading below {metrics.READABLE_CEILING}, nor where a detector's test "
        f"AUC is below {metrics.USEFUL_AUC} (it detects too little to explain). AUC: frame level, test "
        "split (identity-disjoint), same compression.",
        report.md_table(["method", "Q paired", "baseline paired", "Q unpaired", "baseline unpaired", "difference",
                         "CI", "noise ceiling", "AUC paired", "AUC unpaired", "images / clusters", "reading"],
                        rows),
        *checks.baseline_lines(result.baseline_check),
    ]

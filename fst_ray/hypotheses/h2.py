"""H2: a detector trained on *paired* data (reals = the fakes' sources and targets) learns more
source/target-irrelevant evidence than one trained on *unpaired* data of the same size."""

from __future__ import annotations

import numpy as np

from fst_ray import metrics, storage
from fst_ray.evaluate import model_metrics
from fst_ray.hypotheses import checks, pipeline, readings, render
from fst_ray.hypotheses.config import HypothesisConfig
from fst_ray.hypotheses.pipeline import ceilings, clusters_of, stack
from fst_ray.hypotheses.results import H2_DETECTORS, H2Result

SETS = H2_DETECTORS


def paired_difference(gap_paired: np.ndarray, gap_unpaired: np.ndarray, clusters: list[str], n_boot: int,
                      seed: int, level: float = 0.95) -> tuple[float, tuple[float, float]]:
    """H2's comparison on the shared images: per image the τ-averaged (Q_p − b_p) − (Q_u − b_u) from the two
    detectors' gaps ``[N, τ]`` (each Q minus its own detector's baseline); its mean and CI at ``level``
    resampling ``clusters``."""
    diff = np.nanmean(gap_paired - gap_unpaired, axis=1)
    return float(np.nanmean(diff)), metrics.cluster_bootstrap_ci(diff, clusters, n_boot=n_boot, level=level,
                                                                 seed=seed)


def method_fields(phi_s: np.ndarray, phi_t: np.ndarray, phi_d: dict[str, np.ndarray], clusters: list[str],
                  cfg: HypothesisConfig, level: float = 0.95) -> dict:
    """One method's H2 numbers from its maps ``[N, G²]`` (``phi_d``: detector set -> maps of the same images):
    per set its Q_τ curve, its own shuffled baseline and the curve's CIs; the paired difference and its CI at
    ``level`` (:func:`paired_difference`); the images and clusters they rest on. Keys are
    :class:`H2Result`'s fields."""
    out, gaps = {"n_images": len(clusters), "n_clusters": len(set(clusters))}, {}
    for s in SETS:
        curve = metrics.q_curve(phi_s, phi_t, phi_d[s], cfg.tau, cfg.variant)  # [N, τ]
        base = metrics.q_baseline(phi_s, phi_t, phi_d[s], cfg.tau, cfg.variant, seed=cfg.seed)  # its own
        gaps[s] = curve - base
        out[f"q_{s}"] = np.nanmean(curve, axis=0).tolist()
        out[f"baseline_{s}"] = np.nanmean(base, axis=0).tolist()
        out[f"ci_{s}"] = [metrics.cluster_bootstrap_ci(curve[:, j], clusters, n_boot=cfg.n_boot, seed=cfg.seed)
                          for j in range(len(cfg.tau))]
    out["difference"], out["difference_ci"] = paired_difference(gaps["paired"], gaps["unpaired"], clusters,
                                                                cfg.n_boot, cfg.seed, level)
    return out


def run_h2(cfg: HypothesisConfig) -> H2Result:
    """Train paired and unpaired detectors, explain the same fake test frames, compare Q_τ curves and AUC; on a
    dataset without donor videos, a result that says H2 does not apply."""
    pipeline.ensure_tables(cfg)
    layout = pipeline.dataset_layout(cfg)
    if not layout.donor_videos:
        why = (f"H2 does not apply to {layout.title}: a fake's target there is an identity with many videos, not one "
               "donor video, so there is no paired set (reals = exactly the fakes' source and target videos) to "
               "train on. H1 and H3 apply.")
        result = H2Result(variant=cfg.variant, tau=list(cfg.tau), dataset=layout.name, not_applicable=why,
                          protocol={"architecture": cfg.archs[0]})
        result.readings = readings.read_h2(result)
        render.write_h2(cfg, result)
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
                                            "baseline_check", "noise_ceiling", "training_frames", "readings")}
    n_methods = sum(1 for ks in keys.values() if ks)
    for method, ks in keys.items():
        if not ks:
            continue
        row = method_fields(stack(maps, ks, encoders["source"]), stack(maps, ks, encoders["target"]),
                            {d: stack(maps, ks, detectors[d]) for d in SETS}, clusters_of(ks), cfg,
                            cfg.ci_level(n_methods))
        for name, value in row.items():
            fields[name][method] = value
        for d in SETS:
            fields[f"auc_{d}"][method] = auc[d].get(method, {}).get(cfg.explain.compression, float("nan"))
    explained = {"source": encoders["source"], "target": encoders["target"], **detectors}
    result = H2Result(variant=cfg.variant, tau=list(cfg.tau), dataset=layout.name,
                      protocol=checks.protocol(cfg, cfg.explain.compression),
                      baseline_check=checks.baseline_checks(cfg, all_keys, explained),
                      noise_ceiling=ceilings(cfg, all_keys, explained),
                      training_frames={s: f for s in SETS
                                       if storage.exists(f := pipeline.training_frames(detectors[s]))}, **fields)
    result.readings = readings.read_h2(result)
    render.write_h2(cfg, result)
    return result

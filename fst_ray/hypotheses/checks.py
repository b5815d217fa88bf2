"""What every hypothesis report checks besides its hypothesis: the protocol it followed, whether its baseline
is degenerate for each explained model, and whether the maps point at the planted artifacts (faithfulness).
Reads the map cache that :func:`fst_ray.hypotheses.pipeline.shapley_maps` filled; numbers come from
:mod:`fst_ray.metrics` and :mod:`fst_ray.faithfulness`."""

from __future__ import annotations

import json

import numpy as np

from fst_ray import faithfulness as fa
from fst_ray import frames, metrics, storage
from fst_ray.data import align
from fst_ray.data.records import PARAMS_FILE
from fst_ray.models.backbone import PACKAGED_IMAGENET
from fst_ray.hypotheses import pipeline, report
from fst_ray.hypotheses.config import HypothesisConfig
from fst_ray.hypotheses.readings import alternatives, degenerate_for
from fst_ray.hypotheses.results import BaselineCheck, Faithfulness
from fst_ray.shapley import baselines
from fst_ray.shapley.config import SHAPLEY
from fst_ray.shapley.run import CURVE_COLUMNS as CURVES


def protocol(cfg: HypothesisConfig, explained: str, archs: list[str] | None = None) -> dict[str, str]:
    """The protocol of a job's numbers in the paper's terms (named in every result and report); ``archs``: the
    architectures read (default: the first, which H2 and H3 use)."""
    t, archs = cfg.train, archs or cfg.archs[:1]
    init = f"weights {t.weights}" if t.weights else "random" if not t.pretrained else (
        "ImageNet (packaged)" if all(a in PACKAGED_IMAGENET for a in archs) else "ImageNet (timm hub)")
    options = {"detectors' blur + JPEG": f"p = {t.degrade} each"} if t.degrade else {}
    options |= {"detectors' epoch": "best val AUC"} if t.select_epoch == "val_auc" else {}
    given = [f"{k} = {v}" for k, v in cfg.checkpoints.items() if k.split("/")[0] in archs]
    return {"dataset": pipeline.dataset_layout(cfg).title,
            "detectors trained on": cfg.train_compression or "raw, c23 and c40 together",
            "explained": explained, "initialisation": init, **options,
            **({"models given (not trained here)": ", ".join(given)} if given else {}),
            "baseline": baselines.get(cfg.explain.baseline).describe(cfg.explain.backgrounds),
            "value": cfg.explain.value, "grid": f"{cfg.explain.grid}x{cfg.explain.grid}",
            "budget": str(cfg.explain.budget), "estimator": cfg.explain.estimator,
            **({"attribution": cfg.explain.attribution} if cfg.explain.attribution != SHAPLEY else {}),
            "coalitions": cfg.explain.coalitions, "architecture": ", ".join(archs)}


def protocol_line(p: dict[str, str]) -> str:
    return "Protocol: " + "; ".join(f"{k} **{v}**" for k, v in p.items()) + "."


def baseline_checks(cfg: HypothesisConfig, keys: list[str], models: dict[str, str]) -> dict[str, BaselineCheck]:
    """Explained model (its word) -> its baseline check on ``keys`` (``models``: word -> model URI)."""
    out = {}
    for word, uri in models.items():
        c = pipeline.map_columns(cfg, keys, uri, ["phi", "value_empty", "value_full", "p_empty", "p_full"])
        if any(v is None for v in c["p_empty"]):  # maps cached before these columns existed
            continue
        out[word] = BaselineCheck(baseline=cfg.explain.baseline, value=cfg.explain.value,
                                  **metrics.baseline_check(c["phi"], c["value_empty"], c["value_full"], c["p_empty"],
                                                           c["p_full"]))
    return out


def baseline_lines(checks: dict[str, BaselineCheck], where: str = "", explain: bool = True) -> list[str]:
    """The report's baseline check: a table, and a warning per degenerate model; ``explain``: with the paragraph
    that says how to read it."""
    if not checks:
        return []
    first = next(iter(checks.values()))
    rows = [(w, c.p_empty, c.confident_share, c.p_full, c.value_empty, c.value_full, c.negative_sum_share,
             c.negative_cell_share, c.n_images) for w, c in checks.items()]
    how = (" p = the model's probability of the explained class on the all-baseline image (every cell removed) "
           "and on the whole image; where the all-baseline image scores the explained class as high as the images "
           "explained (or Σφ < 0 in half the maps), removing cells does not remove the evidence and no reading is "
           "made from the model's maps.") if explain else ""
    lines = [f"Baseline check{where}: baseline **{first.baseline}**, value **{first.value}**.{how}",
             report.md_table(["model", "p all-baseline", f"share p > {metrics.CONFIDENT_BASELINE}", "p whole",
                              f"{first.value} all-baseline", f"{first.value} whole", "share Σφ < 0",
                              "share of cells φ < 0", "images"], rows)]
    lines += [f"**Warning: the {first.baseline} baseline is degenerate for the {w}** ({c.why}): removing its "
              "cells does not remove the evidence for the explained class, so its maps' signs say more about the "
              f"baseline than the image; try another baseline (`explain.baseline`: {alternatives(c.baseline)})."
              for w, c in checks.items() if degenerate_for(w, c)]
    return lines


def face_coverage(cfg: HypothesisConfig) -> np.ndarray | None:
    """``[G²]`` cell coverage of the face ellipse of the ingest's alignment template (``None`` when the
    ingest recorded no alignment)."""
    uri = storage.join(cfg.tables, PARAMS_FILE)
    if not storage.exists(uri):
        return None
    p = json.loads(storage.read_bytes(uri))
    if "size" not in p:
        return None
    points = align.template(p["size"], p.get("margin", 1.3), p.get("alignment", "arcface"))
    return fa.cell_coverage(fa.face_region(points, p["size"]), cfg.explain.grid)


def _mean_ci(values: np.ndarray, clusters: list[str], cfg: HypothesisConfig, level: float):
    ok = np.isfinite(values)
    if not ok.any():
        return None, None
    kept = [c for c, k in zip(clusters, ok) if k]
    return float(values[ok].mean()), metrics.cluster_bootstrap_ci(values[ok], kept, n_boot=cfg.n_boot,
                                                                  level=level, seed=cfg.seed)


def faithfulness(cfg: HypothesisConfig, keys: list[str], models: dict[str, str], clusters: list[str],
                 level: float = 0.95) -> dict[str, Faithfulness]:
    """Explained model (its word) -> its maps of ``keys`` scored against the frames' masks, the face region and
    their deletion/insertion curves (:mod:`fst_ray.faithfulness`); CIs at ``level`` resample ``clusters``."""
    rows = frames.read(cfg.tables, ["key", "mask", "size"], keys)
    masks = {k: frames.decode_mask(m, s) for k, m, s in zip(rows["key"].to_pylist(), rows["mask"].to_pylist(),
                                                             rows["size"].to_pylist())}
    grid = cfg.explain.grid
    has_mask = np.array([masks.get(k) is not None and masks[k].any() for k in keys])
    cover = np.array([fa.cell_coverage(masks[k], grid) if m else np.full(grid * grid, np.nan)
                      for k, m in zip(keys, has_mask)])
    face = face_coverage(cfg)
    out = {}
    for word, uri in models.items():
        c = pipeline.map_columns(cfg, keys, uri, ["phi", "phi_a", "phi_b", *CURVES])  # one read per model
        phi = np.array(c["phi"], dtype=np.float64)
        f: dict = {"n_images": int(has_mask.sum()), "n_clusters": len({cl for cl, m in zip(clusters, has_mask) if m})}
        f["noise_ceiling"] = None if any(a is None for a in c["phi_a"]) else metrics.noise_ceiling(
            np.array(c["phi_a"], dtype=np.float64), np.array(c["phi_b"], dtype=np.float64), centred=True)
        if has_mask.any():
            share = fa.mass_share(phi, np.nan_to_num(cover))
            share[~has_mask] = np.nan  # and NaN where a map has no positive value
            area = fa.area_share(np.nan_to_num(cover))
            scored = np.isfinite(share)
            f["mask_area"] = float(area[scored].mean()) if scored.any() else float(area[has_mask].mean())
            f["mass_in_mask"] = float(share[scored].mean()) if scored.any() else None
            _, f["mass_gap_ci"] = _mean_ci(share - area, clusters, cfg, level)
            idx = np.flatnonzero(has_mask)
            inside = (cover[idx] >= fa.INSIDE).sum(axis=1)
            idx = idx[inside > 0]  # images whose mask covers at least one cell: something to point at
            if len(idx):
                f["pointing"] = float(np.mean(fa.pointing(phi[idx], cover[idx])))
                f["pointing_k"] = float(np.mean([fa.pointing(phi[i], cover[i], int(k))[0]
                                                 for i, k in zip(idx, inside[inside > 0])]))
                f["pointing_chance"] = float(np.mean(fa.pointing_chance(cover[idx])))
        if face is not None:
            f["face_area"] = float(face.mean())
            on_face, f["face_gap_ci"] = _mean_ci(fa.mass_share(phi, face[None]) - face.mean(), clusters, cfg, level)
            f["mass_on_face"] = f["face_area"] + on_face if on_face is not None else None  # one area for all
        if all(v is not None for v in c["deletion"]):
            curves = {k: np.array(c[k], dtype=np.float64) for k in CURVES}
            areas = {k: fa.curve_area(v) for k, v in curves.items()}
            for kind in ("deletion", "insertion"):
                f[kind] = float(areas[kind].mean())
                f[f"{kind}_random"] = float(areas[f"{kind}_random"].mean())
                _, f[f"{kind}_gap_ci"] = _mean_ci(areas[kind] - areas[f"{kind}_random"], clusters, cfg, level)
            f["curves"] = {k: v.mean(axis=0).tolist() for k, v in curves.items()}
        out[word] = Faithfulness(**f)
    return out


def faithfulness_lines(table: dict[str, dict[str, Faithfulness]], level_words: str, explain: bool = True) -> list[str]:
    """The report's faithfulness section: masks, face and curves, one row per (group, model); ``explain``:
    with its heading and the paragraph that says how to read it."""
    if not table:
        return []

    def cell(mean, ci, chance=None, reference="chance"):
        if mean is None:
            return "–"
        text = f"{mean:.3f}"
        if chance is not None:
            text += f" ({reference} {chance:.3f})"
        return text + (f" {report.ci(ci)}" if ci is not None else "")

    rows = [(g, w, cell(f.mass_in_mask, f.mass_gap_ci, f.mask_area), cell(f.pointing, None, f.pointing_chance),
             cell(f.pointing_k, None, f.pointing_chance), cell(f.mass_on_face, f.face_gap_ci, f.face_area),
             cell(f.deletion, f.deletion_gap_ci, f.deletion_random, "random"),
             cell(f.insertion, f.insertion_gap_ci, f.insertion_random, "random"),
             f"{f.n_images} / {f.n_clusters}", "–" if f.noise_ceiling is None else f"{f.noise_ceiling:.2f}" + (
                 " (too noisy to read)" if f.noise_ceiling < metrics.READABLE_CEILING else ""))
            for g, by_model in table.items() for w, f in by_model.items()]
    how = [
        "## Faithfulness: do the maps point at the planted artifacts?",
        "Against the manipulation masks (where the corpus has them; the synthetic corpus does): *mass in mask* is "
        "the share of a map's positive mass inside the mask, against the mask's share of the image (chance); "
        "*pointing*: the top cell inside the mask, *pointing@k*: the share of the top-k cells inside it, k = the "
        "mask's cells (chance: the share of cells inside it). *Mass on face*: the share on the face (the alignment "
        "template's face ellipse) against the face's share of the crop — for the source and target encoders "
        "this measures how much they read the scene instead of the face. *Deletion*/*insertion*: area under the "
        "explained value as cells are removed from the image / added to the baseline in the map's order (a "
        "faithful map: deletion below, insertion above the random order's). The bracketed "
        f"intervals are {level_words} of the difference from chance (or from the random order), resampling "
        "source identities. Estimator noise pulls every score toward chance: a row whose maps' noise ceiling is "
        f"below {metrics.READABLE_CEILING} is too noisy to read."]
    return how * explain + [
        report.md_table(["group", "model", "mass in mask", "pointing", "pointing@k", "mass on face", "deletion",
                         "insertion", "images / clusters", "noise ceiling"], rows),
    ]

"""Rendering the hypothesis jobs' reports and figures from their result objects: tables, prose, PNGs. Readings come
from :mod:`fst_ray.hypotheses.readings` (stored in each result); nothing here computes a statistic."""

from __future__ import annotations

import numpy as np

from fst_ray import ffpp, metrics, plots
from fst_ray.hypotheses import checks, report
from fst_ray.hypotheses.config import HypothesisConfig
from fst_ray.hypotheses.readings import reading_of
from fst_ray.hypotheses.results import H1_MAPS, H3_MODELS, DeltaRow, H1Result, H2Result, H3Result, Reading
from fst_ray.shapley import baselines

READ = ("supports", "contradicts", "inconclusive")  # the verdicts of a reading made
H1_TITLE = "H1 — does the detector look outside source and target?"
H2_TITLE = "H2 — paired vs unpaired training"
H3_TITLE = "H3 — stability under compression, and the FST-Matching model"


def verdict_cell(r: Reading) -> str:
    """A reading in a table cell: the verdict, then why."""
    return f"**{r.verdict}**: {r.why}"


def verdict_table(readings: list[Reading]) -> list[str]:
    """The first screen of a report over several hypotheses: one table, hypothesis × method, each cell a verdict
    (with its estimate and CI where read), and one line saying what could be read and what not, and why."""
    methods = list(dict.fromkeys(r.method for r in readings if r.method != "all")) or ["all"]
    hypotheses = list(dict.fromkeys(r.hypothesis for r in readings))

    def cell(h: str, m: str) -> str:
        got = [r for r in readings if r.hypothesis == h and r.method in (m, "all")]
        named = len({r.model for r in got}) > 1  # several architectures: say which is which
        return "; ".join((f"{r.model}: " if named else "") + f"**{r.verdict}**" + (
            f" {r.estimate:+.3f} {report.ci(r.ci)}" if r.verdict in READ and r.ci is not None else "")
            for r in got) or "–"

    read = [r for r in readings if r.verdict in READ]
    unread: dict[str, list[Reading]] = {}
    for r in readings:
        if r not in read:
            unread.setdefault(r.verdict, []).append(r)
    reasons = "; ".join(f"{len(rs)} {verdict} ({rs[0].hypothesis} {rs[0].method}: {rs[0].why})"
                        for verdict, rs in unread.items())
    line = (f"**{len(read)} of {len(readings)} readings could be made**" + (f"; not made: {reasons}." if reasons else
                                                                            "."))
    return [report.md_table(["hypothesis", *methods], [(h, *(cell(h, m) for m in methods)) for h in hypotheses]),
            line]


def coalition_words(coalitions: str) -> str:
    """What the maps' coalitions mean for the Q readings, in one sentence."""
    if coalitions == "per_model":
        return ("Every map is estimated from coalitions of its own (`explain.coalitions: per_model`), so the maps Q "
                "compares carry independent estimator noise, which cannot make a gap.")
    return ("**The maps share their coalitions** (`explain.coalitions: shared`): their estimator noise is correlated "
            "cell by cell, which biases Q's gap, so no reading is made from them.")


def write_h1(cfg: HypothesisConfig, result: H1Result, examples: list[dict]) -> None:
    """H1's report, summary and figures under ``cfg.output``; ``examples``: one explained frame per method for the
    map figure (:func:`fst_ray.plots.h1_rows`'s rows)."""
    arch = cfg.archs[0]
    pooled = next((s.noise_ceiling for s in (b.get(arch) for b in result.q.values()) if s is not None), {})
    panel = {f"phi_{r[0]}": (pooled[r].centred, pooled[r].readable) for r in H1_MAPS if r in pooled}
    figures = {"h1_maps.png": plots.h1_rows(examples, ceilings=panel,
                                            title=f"H1, {arch}: φ of a fake test frame per method (red raises the "
                                                  f"explained {cfg.explain.value}; {cfg.variant} Q_τ; one colour "
                                                  "scale per model; centred noise ceilings pooled over the images)"),
               "h1_faithfulness.png": faithfulness_figure(result.faithfulness["all"], cfg)}
    per_method = {m: f for m, f in result.faithfulness.items() if m != "all"}
    n = len(result.q)
    report.write(cfg.output, result, H1_TITLE, h1_summary(result, cfg), [
        "![H1 maps](h1_maps.png)",
        "Each row: a fake test frame, the source encoder's φ_s, the target encoder's φ_t, the detector's "
        "φ_d, and φ_d outside the intersection mask M_τ of the most source/target-relevant cells. Each model's "
        "maps share one colour scale (its bar below); hatched maps are too noisy to read.",
        "### Faithfulness per method",
        *checks.faithfulness_lines(per_method, report.ci_words(cfg.ci_level(n), n), explain=False),
        "![H1 faithfulness](h1_faithfulness.png)",
        f"Curves and shares over all explained images ({arch}).",
        *shortcut_lines(result.shortcut)], figures)


def write_h2(cfg: HypothesisConfig, result: H2Result) -> None:
    """H2's report, summary and Q-curve figure under ``cfg.output``."""
    if result.not_applicable:
        report.write(cfg.output, result, H2_TITLE, [result.not_applicable], [], {})
        return
    curves = {m: {"paired": result.q_paired[m], "unpaired": result.q_unpaired[m],
                  "baseline paired": result.baseline_paired[m], "baseline unpaired": result.baseline_unpaired[m]}
              for m in result.q_paired}
    bands = {m: {"paired": result.ci_paired[m], "unpaired": result.ci_unpaired[m]} for m in result.q_paired}
    figure = plots.q_curves(result.tau, curves, bands, ylabel=f"Q_τ ({cfg.variant})",
                            title=f"H2, {cfg.archs[0]}: paired vs unpaired detector (95% CI, source identities "
                                  "resampled)")
    report.write(cfg.output, result, H2_TITLE, h2_summary(result, cfg), ["![H2 Q curves](h2_q_curves.png)"],
                 {"h2_q_curves.png": figure})


def write_h3(cfg: HypothesisConfig, result: H3Result, examples: dict[str, dict]) -> None:
    """H3's report, summary and figures under ``cfg.output``; ``examples``: method -> one frame's ``images``
    (compression -> pixels) and ``maps`` (model -> compression -> φ) for the map figures."""
    panel = {name: {c: (ceiling.centred, ceiling.readable) for c, ceiling in by_c.items()}
             for name, by_c in result.noise_ceiling.items()}
    figures = {f"h3_maps_{m}.png": plots.compression_maps(
        e["images"], e["maps"], ceilings=panel,
        title=f"H3, {m}: {e['key']} at raw / c23 / c40 (one colour scale per model; centred noise ceilings pooled "
              "over the images)") for m, e in examples.items()}
    figures["h3_delta.png"] = plots.delta_bars(
        {m: {name: {"corrected": r.corrected.get(name), "corrected_ci": r.corrected_ci.get(name),
                    "centred": r.centred[name], "noise_alone": r.delta_ceiling.get(name),
                    "readable": readable(result, name) if name in result.noise_ceiling else None}
               for name in H3_MODELS} for m, r in result.delta.items()},
        title=f"H3, {cfg.archs[0]}: δ of centred maps, corrected for noise (bars, CI), measured (●) and what noise "
              "alone leaves of unchanged maps (—)")
    report.write(cfg.output, result, H3_TITLE, h3_summary(result, cfg), h3_details(result, cfg, figures), figures)




def h1_summary(result: H1Result, cfg: HypothesisConfig) -> list[str]:
    """The report's readings: how Q was computed, the table, and the ceilings the readings are gated on."""
    rows = [(m, a, verdict_cell(reading_of(result.readings, m, a)), s.gap, report.ci(s.gap_ci), s.gap_corrected,
             s.mean, report.ci(s.ci), s.baseline, f"{s.n_images} / {s.n_clusters}")
            for m, by_arch in result.q.items() for a, s in by_arch.items()]
    pooled = {a: s.noise_ceiling for by_arch in result.q.values() for a, s in by_arch.items() if s.noise_ceiling}
    return [
        checks.protocol_line(result.protocol),
        f"Q_τ variant **{result.variant}** (see `fst_ray/metrics.py`), averaged over τ ∈ "
        f"{result.tau[0]:.2f}..{result.tau[-1]:.2f} ({len(result.tau)} values) and over explained fake test "
        f"frames at {cfg.explain.compression}; baseline = the same Q with φ_d shuffled over cells; gap = per image "
        f"Q − baseline; {report.ci_words(cfg.ci_level(len(result.q)), len(result.q))} resample source identities. "
        f"{coalition_words(cfg.explain.coalitions)} Noise ceiling: the "
        "expected cosine of two independent maps of the same image, from the two half-budget estimates of each "
        "map, pooled over every method's images; readings are gated on the *centred* ceiling (offset Σφ/G² "
        "removed: the offset is noise-free and would lift a ceiling whatever the map shows), and no reading is "
        f"made below {metrics.READABLE_CEILING}; the gap divided by √(detector's plain ceiling) is its "
        "noise-corrected value (the unit norm includes the offset), given only where the maps are readable. "
        f"Shapley maps: {cfg.explain.grid}×{cfg.explain.grid} grid, budget {cfg.explain.budget} evaluations per "
        f"map, estimator `{cfg.explain.estimator}`.",
        report.md_table(["method", "arch", "reading", "gap", "gap CI", "gap corrected", "Q", "Q CI", "baseline",
                         "images / clusters"], rows),
        *([report.ceiling_table(pooled)] if pooled else []),
        report.budget_guidance({r: [c[r].centred for c in pooled.values() if r in c] for r in H1_MAPS
                                if any(r in c for c in pooled.values())}, cfg.explain.budget, cfg.explain.grid),
        *checks.baseline_lines(result.baseline_check, f" ({cfg.archs[0]})"),
        *([note] if (note := baselines.get(cfg.explain.baseline).note) else []),
        *checks.faithfulness_lines({"all methods": result.faithfulness["all"]}, "95% bootstrap CIs"),
    ]


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


def h2_summary(result: H2Result, cfg: HypothesisConfig) -> list[str]:
    """The report's readings: the protocol, the table, and the ceilings the readings are gated on."""
    rows = [(m, verdict_cell(reading_of(result.readings, m)), result.difference[m], report.ci(result.difference_ci[m]),
             float(np.nanmean(result.q_paired[m])), float(np.nanmean(result.baseline_paired[m])),
             float(np.nanmean(result.q_unpaired[m])), float(np.nanmean(result.baseline_unpaired[m])),
             result.auc_paired[m], result.auc_unpaired[m], f"{result.n_images[m]} / {result.n_clusters[m]}")
            for m in result.q_paired]
    return [
        checks.protocol_line(result.protocol),
        f"Two detectors ({cfg.archs[0]}) trained on sets of equal size that share their fakes: *paired* "
        "takes as reals exactly the source and target videos of those fakes, *unpaired* reals from videos "
        "that are neither (their frames' keys: `training_frames`, beside each run's models). Both are explained "
        f"on the same fake test frames ({cfg.explain.compression}; the sets are built at the detectors' training "
        f"compression). {coalition_words(cfg.explain.coalitions)} Q_τ "
        f"variant **{result.variant}**, mean over τ in the table, per τ in the "
        "figure. Each detector has its own shuffled-φ_d baseline; the comparison is paired per image: "
        "difference = mean over τ of (Q_paired − baseline_paired) − (Q_unpaired − baseline_unpaired), with "
        f"{report.ci_words(cfg.ci_level(len(rows)), len(rows))} over the shared images that resample source "
        "identities. Noise ceilings from each map's two half-budget estimates, centred (offset removed) and pooled "
        f"over every method's images; no reading below {metrics.READABLE_CEILING}, nor where a detector's test "
        f"AUC is below {metrics.USEFUL_AUC} (it detects too little to explain). AUC: frame level, test "
        "split (identity-disjoint), same compression.",
        report.md_table(["method", "reading", "difference", "CI", "Q paired", "baseline paired", "Q unpaired",
                         "baseline unpaired", "AUC paired", "AUC unpaired", "images / clusters"], rows),
        *([report.ceiling_table({cfg.archs[0]: result.noise_ceiling})] if result.noise_ceiling else []),
        *checks.baseline_lines(result.baseline_check),
    ]


def readable(result: H3Result, name: str) -> bool:
    """Every pooled ceiling of ``name``'s maps is readable (its corrected δ may be printed)."""
    return name in result.noise_ceiling and all(c.readable for c in result.noise_ceiling[name].values())


def _with_ci(row: DeltaRow, name: str) -> str:
    lo, hi = row.ci[name]
    return f"{getattr(row, name):.3f} [{lo:.2f}, {hi:.2f}]"


def _centred_cell(row: DeltaRow, name: str) -> str:
    lo, hi = row.centred_ci[name]
    return f"{row.centred[name]:.3f} [{lo:.2f}, {hi:.2f}]"


def _contrast_cell(row: DeltaRow) -> str:
    return "–" if row.contrast is None else f"{row.contrast:.3f} {report.ci(row.contrast_ci)}"


def _corrected_cell(row: DeltaRow, result: H3Result, name: str) -> str:
    if name not in row.corrected:
        return "–"
    if not readable(result, name):
        return "too noisy"
    lo, hi = row.corrected_ci[name]
    return f"{row.corrected[name]:.2f} [{lo:.2f}, {hi:.2f}] (noise alone: {row.delta_ceiling[name]:.2f})"


def h3_summary(result: H3Result, cfg: HypothesisConfig) -> list[str]:
    """The report's readings: how δ was computed, the δ tables, and the ceilings the readings are gated on."""
    level = report.ci_words(cfg.ci_level(len(result.delta)), len(result.delta))
    delta_rows = [(m, verdict_cell(reading_of(result.readings, m)), _contrast_cell(r),
                   *(_corrected_cell(r, result, name) for name in H3_MODELS), f"{result.n_images[m]} / {r.n_clusters}")
                  for m, r in result.delta.items()]
    plain_rows = [(m, *(_with_ci(r, name) for name in H3_MODELS), *(_centred_cell(r, name) for name in H3_MODELS))
                  for m, r in result.delta.items()]
    return [
        checks.protocol_line(result.protocol),
        "δ = mean over images of ½[cos(φ^c23, φ^raw) + cos(φ^c40, φ^raw)], the same frame (video, index) at "
        f"the three compressions; {cfg.explain.grid}×{cfg.explain.grid} grid, budget {cfg.explain.budget} per map; "
        f"{level} in brackets, resampling source identities (frames of one source are not independent). Readings "
        "use the **centred** δ (each map minus its mean, the offset Σφ/G²: a model that scores a frame alike at "
        "every compression gives its maps one offset, which raises the paper's δ whatever the maps show) "
        "**corrected for estimator noise**: each map is the mean of two independent half-budget estimates, whose "
        "agreement gives its noise ceiling r; noise alone pulls the δ of unchanged maps down to "
        "½[√(r_raw r_c23) + √(r_raw r_c40)] (*noise alone*), and the corrected δ divides each cosine by √(r₁ r₂) "
        "of the maps it compares. No reading, and no corrected value, where a pooled centred ceiling is below "
        f"{metrics.READABLE_CEILING} (fst_ray/metrics.py).",
        report.md_table(["method", "reading", "min(δ source, δ target) − δ detector [CI]",
                         *(f"corrected δ {name}" for name in H3_MODELS), "images / clusters"], delta_rows),
        "The reading: the lower of the encoders' corrected δ minus the detector's, with a CI that resamples the "
        "images jointly for the three models (above 0: supports H3).",
        "The paper's δ (maps with their offset; ≈0.73 for source/target and ≈0.17 for the baseline detector on "
        "FaceSwap in the paper) and the centred δ, both before noise correction:",
        report.md_table(["method", *(f"δ {name}" for name in H3_MODELS), *(f"centred δ {name}" for name in H3_MODELS)],
                        plain_rows),
        *([report.ceiling_table({f"{name}, {c}": {name: ceiling} for name, by_c in result.noise_ceiling.items()
                                 for c, ceiling in by_c.items()})] if result.noise_ceiling else []),
        report.budget_guidance({name: [c.centred for c in by_c.values()] for name, by_c in result.noise_ceiling.items()},
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

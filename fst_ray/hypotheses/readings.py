"""What the hypothesis results say: each reading a :class:`~fst_ray.hypotheses.results.Reading` made from a result
object alone (no maps, no models, no Ray), so that a program can ask what H1 concluded for FaceSwap, and reports
only render them. The rules, in the same order for every hypothesis:

1. noise not measured (maps made in one piece) → ``not read``; a map too noisy (pooled centred noise ceiling
   below :data:`fst_ray.metrics.READABLE_CEILING`) → ``too noisy``;
2. maps that share coalitions where the statistic compares them (H1, H2 with ``coalitions: shared``: correlated
   noise biases Q's gap) → ``not read``;
3. a degenerate removal for a model read (:func:`degenerate`) → ``not read``; H2: a detector that does not detect
   (test AUC below :data:`fst_ray.metrics.USEFUL_AUC`) → ``not read``;
4. else the estimate's CI against 0 → ``supports`` / ``contradicts`` / ``inconclusive`` (a CI that is not finite
   → ``not read``).
"""

from __future__ import annotations

import math

from fst_ray import metrics
from fst_ray.hypotheses.results import (H2_DETECTORS, H3_COMPARED, BaselineCheck, Ceiling, DeltaRow, H1Result,
                                        H2Result, H3Result, Reading)
from fst_ray.shapley import baselines

#: a CI bound this close to 0 is 0: the statistics are O(1) sums, whose rounding leaves ~1e-16 where they are 0
ROUNDING = 1e-12
NOT_MEASURED = "noise not measured (maps made in one piece: explain.halves off), so it cannot gate the reading"
SHARED = ("the maps compared share their coalitions (explain.coalitions: shared): their estimator noise is "
          "correlated cell by cell, which biases Q's gap")


def too_noisy(ceilings: dict[str, Ceiling]) -> str | None:
    """Why no reading is made from maps with these ceilings, or ``None`` when every one is readable."""
    noisy = [f"{r} {c.centred:.3f} [{c.centred_ci[0]:.3f}, {c.centred_ci[1]:.3f}] from {c.n_images} images"
             for r, c in ceilings.items() if not c.readable]
    return f"centred noise ceiling {'; '.join(noisy)} < {metrics.READABLE_CEILING}" if noisy else None


def degenerate_for(word: str, check: BaselineCheck) -> bool:
    """The check warns, except for the model whose all-baseline image is its own class by design (the source
    encoder under the ``source`` baseline: its own identity's frame)."""
    return check.warning and word != baselines.get(check.baseline).own_class_role


def alternatives(baseline: str) -> str:
    """The other baselines to try where ``baseline`` is degenerate."""
    return ", ".join(b for b in baselines.names() if b not in (baseline, "zero"))


def degenerate(checks: dict[str, BaselineCheck], models) -> str | None:
    """Why no reading can be made from ``models``' maps (words), or ``None``: their baseline check warns that
    the removal is degenerate (removing cells does not take the explained class's evidence away: Σφ's sign is
    then the baseline's, and so is what the maps' values mean)."""
    bad = [w for w in models if w in checks and degenerate_for(w, checks[w])]
    if not bad:
        return None
    baseline = checks[bad[0]].baseline
    what = baselines.get(baseline).degenerate_why
    return (f"the {baseline} baseline is degenerate (" + "; ".join(f"{w}: {checks[w].why}" for w in bad) + what
            + f"; try explain.baseline {alternatives(baseline)})")


def _gate(ceilings: dict[str, Ceiling], coalitions: str | None = None) -> tuple[str, str] | None:
    """Rules 1 and 2: ``(verdict, why)`` where noise stops the reading, else ``None``."""
    if not ceilings:
        return "not read", NOT_MEASURED
    noisy = too_noisy(ceilings)
    if noisy:
        return "too noisy", noisy
    if coalitions == "shared":
        return "not read", SHARED
    return None


def _by_ci(ci: tuple[float, float] | None, above: str, below: str) -> tuple[str, str]:
    """Rule 4: the verdict of an estimate's CI against 0."""
    if ci is None or not all(math.isfinite(v) for v in ci):
        return "not read", "the CI is not finite (too few finite values to resample)"
    lo, hi = ci
    if lo > ROUNDING:
        return "supports", above
    if hi < -ROUNDING:
        return "contradicts", below
    return "inconclusive", "its CI covers 0"


def read_h1(result: H1Result) -> list[Reading]:
    """Per method and architecture, on the per-image gap Q − baseline and its cluster CI."""
    out = []
    for method, by_arch in result.q.items():
        for arch, q in by_arch.items():
            scope = dict(hypothesis="H1", method=method, compression=result.protocol.get("explained", ""),
                         model=arch, estimate=q.gap, ci=q.gap_ci)
            verdict, why = _gate(q.noise_ceiling, result.protocol.get("coalitions")) or (
                ("not read", q.baseline_degenerate) if q.baseline_degenerate else
                _by_ci(q.gap_ci, "Q above its random baseline: the detector looks outside the source/target "
                                 "intersection", "Q below its random baseline"))
            out.append(Reading(**scope, verdict=verdict, why=why))
    return out


def read_h2(result: H2Result) -> list[Reading]:
    """Per method, on the paired difference (Q_p − b_p) − (Q_u − b_u) and its cluster CI."""
    arch = result.protocol.get("architecture", "")
    if result.not_applicable:
        return [Reading(hypothesis="H2", method="all", compression="", model=arch, verdict="not applicable",
                        why=result.not_applicable)]
    out = []
    for method in result.difference:
        scope = dict(hypothesis="H2", method=method, compression=result.protocol.get("explained", ""),
                     model=arch, estimate=result.difference[method], ci=result.difference_ci[method])
        degenerate_why = degenerate(result.baseline_check, H2_DETECTORS)
        weak = [f"{s} {a:.2f}" for s, a in (("paired", result.auc_paired.get(method, float("nan"))),
                                            ("unpaired", result.auc_unpaired.get(method, float("nan"))))
                if not a >= metrics.USEFUL_AUC]
        verdict, why = _gate(result.noise_ceiling, result.protocol.get("coalitions")) or (
            ("not read", degenerate_why) if degenerate_why else
            ("not read", f"a detector at chance (test AUC {', '.join(weak)} < {metrics.USEFUL_AUC}): nothing to "
                         "explain") if weak else
            _by_ci(result.difference_ci[method], "the paired detector's gap above the unpaired one's",
                   "the paired detector's gap below the unpaired one's"))
        out.append(Reading(**scope, verdict=verdict, why=why))
    return out


def _h3_reading(method: str, row: DeltaRow, result: H3Result) -> Reading:
    scope = dict(hypothesis="H3", method=method, compression="raw vs c23, c40",
                 model=result.protocol.get("architecture", ""), estimate=row.contrast, ci=row.contrast_ci)
    ceilings = {f"{n} {c}": ceiling for n in H3_COMPARED for c, ceiling in result.noise_ceiling.get(n, {}).items()}
    measured = all(n in result.noise_ceiling for n in H3_COMPARED) and row.contrast_ci is not None
    gate = _gate(ceilings if measured else {})
    if gate:
        return Reading(**scope, verdict=gate[0], why=gate[1])
    for by_model in result.baseline_check.values():
        why = degenerate(by_model, H3_COMPARED)
        if why:
            return Reading(**scope, verdict="not read", why=why)
    verdict, why = _by_ci(row.contrast_ci, "both encoders' corrected centred δ above the detector's",
                          "the detector's corrected centred δ above an encoder's")
    return Reading(**scope, verdict=verdict, why=why)


def read_h3(result: H3Result) -> list[Reading]:
    """Per method, on the contrast min(δ_source, δ_target) − δ_detector of noise-corrected centred δ and its
    joint cluster CI (an offset shared by a frame's maps raises the paper's δ whatever compression does; δ
    compares maps of different images, whose coalitions differ whatever ``coalitions`` says)."""
    return [_h3_reading(method, row, result) for method, row in result.delta.items()]


def reading_of(readings: list[Reading], method: str, model: str | None = None) -> Reading:
    """The reading of ``method`` (and ``model``) among ``readings``."""
    return next(r for r in readings if r.method == method and (model is None or r.model == model))

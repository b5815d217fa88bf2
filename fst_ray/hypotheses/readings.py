"""What the hypothesis results say: each reading a :class:`~fst_ray.hypotheses.results.Reading` made from a result
object alone (no maps, no models), so that a program can ask what H1 concluded for FaceSwap, and reports only
render them. The rules, in order: a map too noisy to read (pooled centred noise ceiling below
:data:`fst_ray.metrics.READABLE_CEILING`) → ``too noisy``; a degenerate removal or a detector that does not
detect → ``not read``; else the estimate's CI against 0 → ``supports`` / ``contradicts`` / ``inconclusive``."""

from __future__ import annotations

from fst_ray import metrics
from fst_ray.hypotheses import checks
from fst_ray.hypotheses.results import Ceiling, DeltaRow, H1Result, H2Result, H3Result, Reading

DETECTORS = ("paired", "unpaired")  # H2's maps, by their names in its results
H3_COMPARED = ("source", "target", "detector")  # the models H3's reading compares


def too_noisy(ceilings: dict[str, Ceiling]) -> str | None:
    """Why no reading is made from maps with these ceilings, or ``None`` when every one is readable."""
    noisy = [f"{r} {c.centred:.3f} [{c.centred_ci[0]:.3f}, {c.centred_ci[1]:.3f}] from {c.n_images} images"
             for r, c in ceilings.items() if not c.readable]
    return f"centred noise ceiling {'; '.join(noisy)} < {metrics.READABLE_CEILING}" if noisy else None


def _by_ci(ci: tuple[float, float], above: str, below: str) -> tuple[str, str]:
    lo, hi = ci
    if lo > 0:
        return "supports", above
    if hi < 0:
        return "contradicts", below
    return "inconclusive", "its CI covers 0"


def read_h1(result: H1Result) -> list[Reading]:
    """Per method and architecture, on the per-image gap Q − baseline and its cluster CI."""
    out = []
    for method, by_arch in result.q.items():
        for arch, q in by_arch.items():
            scope = dict(hypothesis="H1", method=method, compression=result.protocol.get("explained", ""),
                         model=arch, estimate=q.gap, ci=q.gap_ci)
            noisy = too_noisy(q.noise_ceiling)
            if noisy:
                out.append(Reading(**scope, verdict="too noisy", why=noisy))
            elif q.baseline_degenerate:
                out.append(Reading(**scope, verdict="not read", why=q.baseline_degenerate))
            else:
                verdict, why = _by_ci(q.gap_ci, "Q above its random baseline: the detector looks outside the "
                                                "source/target intersection", "Q below its random baseline")
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
        noisy = too_noisy(result.noise_ceiling)
        degenerate = checks.degenerate(result.baseline_check, DETECTORS)
        weak = [f"{s} {a:.2f}" for s, a in (("paired", result.auc_paired.get(method, float("nan"))),
                                            ("unpaired", result.auc_unpaired.get(method, float("nan"))))
                if not a >= metrics.USEFUL_AUC]
        if noisy:
            out.append(Reading(**scope, verdict="too noisy", why=noisy))
        elif degenerate:
            out.append(Reading(**scope, verdict="not read", why=degenerate))
        elif weak:
            out.append(Reading(**scope, verdict="not read", why=f"a detector at chance (test AUC {', '.join(weak)} "
                                                                f"< {metrics.USEFUL_AUC}): nothing to explain"))
        else:
            verdict, why = _by_ci(result.difference_ci[method], "the paired detector's gap above the unpaired one's",
                                  "the paired detector's gap below the unpaired one's")
            out.append(Reading(**scope, verdict=verdict, why=why))
    return out


def _h3_reading(method: str, row: DeltaRow, result: H3Result) -> Reading:
    scope = dict(hypothesis="H3", method=method, compression="raw vs c23, c40",
                 model=result.protocol.get("architecture", ""), estimate=row.contrast, ci=row.contrast_ci)
    for by_model in result.baseline_check.values():
        degenerate = checks.degenerate(by_model, H3_COMPARED)
        if degenerate:
            return Reading(**scope, verdict="not read", why=degenerate)
    if not all(n in result.noise_ceiling for n in H3_COMPARED) or row.contrast_ci is None:
        return Reading(**{**scope, "estimate": None, "ci": None}, verdict="not read",
                       why="noise not measured (maps made in one piece): δ cannot be corrected for it")
    noisy = too_noisy({f"{n} {c}": ceiling for n in H3_COMPARED for c, ceiling in result.noise_ceiling[n].items()})
    if noisy:
        return Reading(**scope, verdict="too noisy", why=noisy)
    verdict, why = _by_ci(row.contrast_ci, "both encoders' corrected centred δ above the detector's",
                          "the detector's corrected centred δ above an encoder's")
    return Reading(**scope, verdict=verdict, why=why)


def read_h3(result: H3Result) -> list[Reading]:
    """Per method, on the contrast min(δ_source, δ_target) − δ_detector of noise-corrected centred δ and its
    joint cluster CI (an offset shared by a frame's maps raises the paper's δ whatever compression does)."""
    return [_h3_reading(method, row, result) for method, row in result.delta.items()]


def reading_of(readings: list[Reading], method: str, model: str | None = None) -> Reading:
    """The reading of ``method`` (and ``model``) among ``readings``."""
    return next(r for r in readings if r.method == method and (model is None or r.model == model))

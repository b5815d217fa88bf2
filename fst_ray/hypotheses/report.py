"""Writing a hypothesis job's outputs: ``result.json``, figures (PNG), ``report.md`` and ``summary.md``
(the report's first part, its readings: what the job prints and the demo's report collects)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel

from fst_ray import metrics, storage
from fst_ray.markdown import md_table  # noqa: F401 (report.md_table: the one table builder)


def write(output: str, result: BaseModel, title: str, summary: Sequence[str], details: Sequence[str],
          figures: Mapping[str, bytes]) -> list[str]:
    """Write everything under ``output``: ``report.md`` is ``# title``, the ``summary`` paragraphs and the
    ``details``; ``summary.md`` the summary alone. Returns the URIs written."""
    written = []
    for name, png in figures.items():
        written.append(storage.join(output, name))
        storage.write_bytes(written[-1], png)
    markdown = "\n\n".join([f"# {title}", *summary, *details]) + "\n"
    for name, data in (("result.json", result.model_dump_json(indent=1)), ("report.md", markdown),
                       ("summary.md", "\n\n".join(summary) + "\n")):
        written.append(storage.join(output, name))
        storage.write_bytes(written[-1], data.encode())
    return written


def ceiling_table(ceilings: Mapping[str, Mapping[str, BaseModel]]) -> str:
    """The noise ceilings a report's readings are gated on (``group -> model -> Ceiling``), one row per model."""
    rows = [(g, name, f"{c.centred:.3f} {ci(c.centred_ci)}", f"{c.plain:.3f}", f"{c.n_images} / {c.n_clusters}",
             "yes" if c.readable else f"no (< {metrics.READABLE_CEILING})")
            for g, by_model in ceilings.items() for name, c in by_model.items()]
    return md_table(["", "model", "centred ceiling [95% CI]", "plain ceiling", "images / clusters", "readable"], rows)


def budget_guidance(ceilings: Mapping[str, Sequence[float]], budget: int, grid: int) -> str:
    """One line: per model, the budget its maps need for a noise ceiling of 0.9 (from its lowest measured
    ceiling, :func:`fst_ray.metrics.budget_for_ceiling`)."""
    parts = []
    for name, values in ceilings.items():
        low = min(values)
        need = metrics.budget_for_ceiling(low, budget)
        parts.append(f"{name} {low:.2f} → ≈{need:,.0f}" if np.isfinite(need) else f"{name} {low:.2f} → unreachable")
    return (f"Budget for a noise ceiling of 0.9 at G={grid} (lowest measured centred ceiling at budget {budget} → "
            f"evaluations per map needed, noise energy ∝ 1/budget): " + "; ".join(parts) + "." if parts else
            "Noise not measured (maps estimated in one piece).")


def ci_words(level: float, tests: int) -> str:
    """How a table's CIs are made, in words: their level, and the family-wise level they keep together."""
    if tests <= 1 or level <= 0.95 + 1e-9:
        return "95% bootstrap CIs"
    return f"{100 * level:.1f}% bootstrap CIs (95% family-wise over the {tests} methods, Bonferroni)"


def ci(lo_hi) -> str:
    lo, hi = lo_hi
    return f"[{lo:.3f}, {hi:.3f}]"

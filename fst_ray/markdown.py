"""The one Markdown table builder of reports, evaluations and benches."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["md_table"]


def cell(v) -> str:
    """A table cell: floats with 3 decimals, ``None`` and NaN as an en dash."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def md_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A GitHub Markdown table of ``rows`` under ``header`` (cells as :func:`cell`)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)

"""Writing a hypothesis job's outputs: ``result.json``, figures (PNG), ``report.md`` and ``summary.md``
(the report's first part, its readings: what the job prints and the demo's report collects)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel

from fst_ray import storage


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


def md_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A Markdown table; floats with 3 decimals, ``None`` as an en dash."""
    def fmt(v):
        if v is None:
            return "–"
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def ci(lo_hi) -> str:
    lo, hi = lo_hi
    return f"[{lo:.3f}, {hi:.3f}]"

"""Writing a hypothesis job's outputs: ``result.json``, figures (PNG) and ``report.md``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel

from fst_ray import storage


def write(output: str, result: BaseModel, markdown: str, figures: Mapping[str, bytes]) -> list[str]:
    """Write everything under ``output``; return the URIs written."""
    written = []
    for name, png in figures.items():
        written.append(storage.join(output, name))
        storage.write_bytes(written[-1], png)
    for name, data in (("result.json", result.model_dump_json(indent=1)), ("report.md", markdown)):
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

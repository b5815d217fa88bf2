"""Write (or check) ``schemas/``: JSON Schemas of every config and result model, Arrow schemas of tables.

    python -m fst_ray.schemas          # regenerate schemas/
    python -m fst_ray.schemas --check  # exit 1 if any file in schemas/ is stale

A module that defines configs, results or tables registers them (``fst_ray.config.register_config``,
``register_result``, ``fst_ray.tables.register_table``) and is listed in ``MODULES``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from fst_ray import config, tables

MODULES = [
    "fst_ray.frames",
    "fst_ray.synth.config",
    "fst_ray.data.config",
    "fst_ray.data.manifest",
    "fst_ray.demo",
    "fst_ray.hypotheses.results",
    "fst_ray.train.config",
    "fst_ray.evaluate",
    "fst_ray.shapley.config",
    "fst_ray.hypotheses.config",
    "fst_ray.sweep.config",
    "fst_ray.models.importer",
    "fst_ray.hypotheses.compare",
]

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


def render() -> dict[str, str]:
    """File name -> text of every schema file."""
    for m in MODULES:
        importlib.import_module(m)
    out: dict[str, str] = {}
    for kind, registry in (("config", config.CONFIGS), ("result", config.RESULTS)):
        for name, model in registry.items():
            out[f"{kind}.{name}.json"] = json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n"
    for name, schema in tables.TABLES.items():
        out[f"table.{name}.json"] = json.dumps(tables.describe(schema), indent=2) + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="report stale files instead of writing")
    ap.add_argument("--dir", type=Path, default=SCHEMA_DIR)
    args = ap.parse_args(argv)
    wanted = render()
    present = {p.name for p in args.dir.glob("*.json")} if args.dir.exists() else set()
    stale = sorted(n for n, t in wanted.items() if not (args.dir / n).exists() or (args.dir / n).read_text() != t)
    extra = sorted(present - set(wanted))
    if args.check:
        for n in stale:
            print(f"stale or missing: schemas/{n}")
        for n in extra:
            print(f"no longer generated: schemas/{n}")
        if stale or extra:
            print("run: python -m fst_ray.schemas")
        return int(bool(stale or extra))
    args.dir.mkdir(parents=True, exist_ok=True)
    for n in stale:
        (args.dir / n).write_text(wanted[n])
    for n in extra:
        (args.dir / n).unlink()
    print(f"schemas/: {len(wanted)} files, {len(stale)} written, {len(extra)} removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The command line shared by the hypothesis jobs: ``--config FILE --output URI``."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from pydantic import BaseModel

from fst_ray import storage
from fst_ray.hypotheses.config import HypothesisConfig


def main(run: Callable[[HypothesisConfig], BaseModel], name: str, doc: str, argv: list[str] | None = None) -> BaseModel:
    """Parse the flags, run ``run`` on the config, print the summary; ``name`` (h1, h2, h3) names the
    default output folder, beside ``work``."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="YAML HypothesisConfig (local path or URI); flags override it")
    ap.add_argument("--output", help="URI of result.json, report.md and the figures")
    args = ap.parse_args(argv)
    cfg = HypothesisConfig.load(args.config, output=args.output)
    if cfg.output is None:
        cfg = cfg.model_copy(update={"output": storage.join(cfg.work.rstrip("/").rsplit("/", 1)[0], name)})
    start = time.perf_counter()
    result = run(cfg)
    print(f"\n{type(result).__name__} in {time.perf_counter() - start:.0f} s -> {cfg.output}")
    print(storage.read_bytes(storage.join(cfg.output, "report.md")).decode().split("\n\n![")[0])
    return result

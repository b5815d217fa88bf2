"""The command line shared by the hypothesis jobs: :mod:`fst_ray.cli` over :class:`HypothesisConfig`."""

from __future__ import annotations

import time
from collections.abc import Callable

from pydantic import BaseModel

from fst_ray import cli, storage
from fst_ray.hypotheses.config import HypothesisConfig
from fst_ray.layout import RunLayout


def main(run: Callable[[HypothesisConfig], BaseModel], name: str, doc: str, argv: list[str] | None = None,
         config: type[HypothesisConfig] = HypothesisConfig) -> int:
    """Parse the flags into ``config``, run ``run`` on it, print the summary; ``name`` (h1, h2, h3) names the
    default output folder, beside ``work``. Returns the exit code (2: a user's mistake, :func:`fst_ray.cli.main`)."""

    def job(cfg: HypothesisConfig) -> None:
        if cfg.output is None:
            cfg = cfg.model_copy(update={"output": RunLayout.of(cfg).job_output(name)})
        start = time.perf_counter()
        result = run(cfg)
        print(f"\n{type(result).__name__} in {time.perf_counter() - start:.0f} s -> {cfg.output}")
        print(storage.read_bytes(storage.join(cfg.output, "summary.md")).decode())

    return cli.main(config, job, doc, argv)

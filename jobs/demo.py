"""Run the whole pipeline on the embedded default (local Ray, local files) and write ``runs/demo/``.

    python jobs/demo.py [--output runs/demo] [--config FILE]

Every config field is a flag (--help lists them).
"""

from __future__ import annotations

import sys

from fst_ray import cli
from fst_ray.demo import DemoConfig, run_demo


def run(cfg: DemoConfig) -> None:
    print("\n\n".join(run_demo(cfg)))


def main(argv: list[str] | None = None) -> int:
    return cli.main(DemoConfig, run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())

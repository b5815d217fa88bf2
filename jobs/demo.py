"""Run the whole pipeline on the embedded default (local Ray, local files) and write ``runs/demo/``.

    python jobs/demo.py [--output runs/demo] [--config FILE]
"""

from __future__ import annotations

import argparse

from fst_ray.demo import DemoConfig, run_demo


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="YAML DemoConfig (flags override it)")
    ap.add_argument("--output", help="root URI of the demo's outputs")
    args = ap.parse_args(argv)
    cfg = DemoConfig.load(args.config, output=args.output)
    print("\n\n".join(run_demo(cfg)))


if __name__ == "__main__":
    main()

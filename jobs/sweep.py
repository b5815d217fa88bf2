"""Ray Tune sweeps: architectures and training hyperparameters with ASHA, and τ for Q.

    python jobs/sweep.py --config configs/sweep_cpu.yaml [--output runs/sweeps] [--name cpu]

Each trial's TensorBoard events land in its folder: ``tensorboard --logdir <output>/<name>``. Rerunning
the same --name continues an interrupted sweep (Tuner.restore); a finished one is only reported again.
"""

from __future__ import annotations

import argparse

from fst_ray.sweep.config import SweepConfig
from fst_ray.sweep.run import run_sweep, summary


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="YAML sweep config (flags override it)")
    ap.add_argument("--output", help="folder URI of sweep runs (local or s3://)")
    ap.add_argument("--name", help="run name (same name: continue it)")
    args = vars(ap.parse_args(argv))
    result = run_sweep(SweepConfig.load(args.pop("config"), **args))
    print("\n" + summary(result))
    print(f"result: {result.run}/result.json")


if __name__ == "__main__":
    main()

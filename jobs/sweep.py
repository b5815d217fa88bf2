"""Ray Tune sweeps: architectures and training hyperparameters with ASHA, and τ for Q.

    python jobs/sweep.py --config configs/sweep_cpu.yaml [--output runs/sweeps] [--name cpu]

Each trial's TensorBoard events land in its folder: ``tensorboard --logdir <output>/<name>``. Rerunning
the same --name continues an interrupted sweep (Tuner.restore); a finished one is only reported again.
Every config field is a flag (--help lists them).
"""

from __future__ import annotations

import sys

from fst_ray import cli
from fst_ray.sweep.config import SweepConfig
from fst_ray.sweep.run import run_sweep, summary


def run(cfg: SweepConfig) -> None:
    result = run_sweep(cfg)
    print("\n" + summary(result))
    print(f"result: {result.run}/result.json")


def main(argv: list[str] | None = None) -> int:
    return cli.main(SweepConfig, run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())

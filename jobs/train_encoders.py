"""Train source/target/detection encoders (and the FST-Matching model) on Ray Train.

    python jobs/train_encoders.py --input runs/demo/prepared --roles source,target,det[,fst]
        [--arch resnet18] [--epochs 3] [--workers 2] [--gpu] [--train-set full|paired|unpaired]
        [--output runs/demo/models] [--name encoders] [--config configs/train_cpu.yaml]

Rerunning with the same --name resumes from its last checkpoint. Every config field is a flag (--help).
"""

from __future__ import annotations

import sys

from fst_ray import cli
from fst_ray.train.config import TrainConfig
from fst_ray.train.trainer import train_encoders


def run(cfg: TrainConfig) -> None:
    s = train_encoders(cfg)
    last = s.last_epoch
    print(f"\nrun {s.run}: {', '.join(s.roles)} ({s.arch}), {s.epochs} epochs, {s.rows} training frames, "
          f"{s.classes['source_id']} source / {s.classes['target_id']} target classes, {s.seconds:.0f} s, {last.get('images_per_s', 0):.0f} images/s")
    for role in s.roles:
        print(f"  {role:<7} loss {last.get(f'{role}/loss', float('nan')):.3f}  train acc "
              f"{last.get(f'{role}/acc', float('nan')):.3f}  -> {s.models[role]}")
    print(f"logs: {s.run}/metrics.json, TensorBoard: {s.run}/tensorboard")


def main(argv: list[str] | None = None) -> int:
    return cli.main(TrainConfig, run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())

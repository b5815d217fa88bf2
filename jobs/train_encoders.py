"""Train source/target/detection encoders (and the FST-Matching model) on Ray Train.

    python jobs/train_encoders.py --data runs/demo/prepared --roles source,target,det[,fst]
        [--arch resnet18] [--epochs 3] [--workers 2] [--gpu] [--train-set full|paired|unpaired]
        [--output runs/demo/models] [--name encoders] [--config configs/train_cpu.yaml]

Rerunning with the same --name resumes from its last checkpoint. Flags override the YAML config.
"""

from __future__ import annotations

import argparse

from fst_ray.train.config import TrainConfig
from fst_ray.train.trainer import train_encoders


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="YAML config (flags override it)")
    ap.add_argument("--data", help="ingest output URI")
    ap.add_argument("--roles", type=lambda s: s.split(","), help="comma-separated: source,target,det,fst")
    ap.add_argument("--arch", help="timm architecture")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--workers", type=int)
    ap.add_argument("--gpu", action="store_true", default=None, help="one GPU per worker, mixed precision")
    ap.add_argument("--train-set", dest="train_set", choices=["full", "paired", "unpaired"])
    ap.add_argument("--output", help="runs folder URI (local or s3://)")
    ap.add_argument("--name", help="run name (same name: resume)")
    args = vars(ap.parse_args(argv))
    cfg = TrainConfig.load(args.pop("config"), **args)
    s = train_encoders(cfg)
    last = s.last_epoch
    print(f"\nrun {s.run}: {', '.join(s.roles)} ({s.arch}), {s.epochs} epochs, {s.rows} training frames, "
          f"{s.classes} identity classes, {s.seconds:.0f} s, {last.get('images_per_s', 0):.0f} images/s")
    for role in s.roles:
        print(f"  {role:<7} loss {last.get(f'{role}/loss', float('nan')):.3f}  train acc "
              f"{last.get(f'{role}/acc', float('nan')):.3f}  -> {s.models[role]}")
    print(f"logs: {s.run}/metrics.json, TensorBoard: {s.run}/tensorboard")


if __name__ == "__main__":
    main()

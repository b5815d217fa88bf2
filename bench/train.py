"""Encoder training throughput, side by side in one run, on one toy ``frames`` table.

    python bench/train.py [--arch resnet18] [--image-size 64] [--batch-size 32] [--epochs 3]
        [--identities 8] [--frames 64] [--roles det] [--rounds 2] [--work DIR]

Variants, same model, batch size, augmentation and training engine (``fst_ray.train.engine.fit``):
- ``plain``: the engine in one plain process, the table read and decoded once into memory, shuffled
  per epoch (the strongest baseline: no per-epoch reading at all);
- ``ray-1-stream``: ``train_encoders`` with 1 worker, Ray Data re-reading the Parquet every epoch;
- ``ray-1``: 1 worker, frames read once into Ray's object store (``cache``, as the plain loop does);
- ``ray-2``: 2 DDP workers, ``cache``.
Each uses the same number of torch threads per worker (``cpus_per_worker``, at least 1). images/s is
measured over the training batches of an epoch (epoch 0 warms up and is left out). The variants run in
``--rounds`` interleaved rounds and each reports its best epoch (best-of-N, as ``timeit`` does: on a
shared machine the slower samples measure the neighbours). Wall times include Ray's start-up. For Ray
runs, "data wait" is the share of epoch time the training loop spent waiting for its next batch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fst_ray import frames, storage  # noqa: E402
from fst_ray.train.config import TrainConfig  # noqa: E402
from fst_ray.train.engine import fit  # noqa: E402
from fst_ray.train.labels import READ_COLUMNS, label_batch, make_plan  # noqa: E402
from fst_ray.train.toy import write_toy_frames  # noqa: E402


def plain_loop(cfg: TrainConfig) -> tuple[list[float], float, list[float]]:
    """Images/s per epoch and wall seconds of the training engine in one plain process."""
    t_start = time.perf_counter()
    torch.set_num_threads(max(1, int(cfg.cpus_per_worker)))
    plan = make_plan(frames.read_index(cfg.input), cfg.roles, cfg.train_set, cfg.seed, cfg.holdout_fraction,
                     cfg.detector_compression, cfg.scene_balance)
    table = frames.read(cfg.input, READ_COLUMNS)
    cols = {c: np.asarray(table[c].to_pylist(), dtype=object if table[c].type in ("string", "binary") else None)
            for c in table.column_names}
    data = {k: torch.from_numpy(v) for k, v in label_batch(cols, plan).items()}
    n = len(data["image"])

    def batches(epoch: int):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed + epoch))
        return ({k: v[order[i:i + cfg.batch_size]] for k, v in data.items()} for i in range(0, n, cfg.batch_size))

    history: list[dict] = []
    fit(cfg, plan.classes, fake_share=plan.fake_share, steps_per_epoch=-(-n // cfg.batch_size),
        batches=batches, report=lambda h, _: history.append(h[-1]), device=torch.device("cpu"))
    return [r["images_per_s"] for r in history], time.perf_counter() - t_start, [0.0] * len(history)


def ray_run(cfg: TrainConfig) -> tuple[list[float], float, list[float]]:
    """Images/s per epoch (all workers together), wall seconds and per-epoch data-wait shares of a Ray
    Train run."""
    from fst_ray.train.trainer import train_encoders

    t0 = time.perf_counter()
    summary = train_encoders(cfg)
    wall = time.perf_counter() - t0
    history = json.loads(storage.read_bytes(storage.join(summary.run, "metrics.json")))
    return [r["images_per_s"] for r in history], wall, [r["data_wait_s"] / r["seconds"] for r in history]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--identities", type=int, default=8)
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--roles", default="det")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    args = ap.parse_args(argv)
    work = args.work or tempfile.mkdtemp(prefix="bench-train-")
    data = os.path.join(work, "prepared")
    if not storage.exists(frames.uri(data)):
        write_toy_frames(data, files=4, identities=args.identities, frames=args.frames, size=args.image_size,
                         methods=("Deepfakes", "Face2Face"), train_pairs=args.identities // 2 - 1)
    base = dict(input=data, roles=args.roles.split(","), arch=args.arch, epochs=args.epochs, image_size=args.image_size,
                batch_size=args.batch_size, output=os.path.join(work, "runs"), warmup_fraction=0.0)
    variants = {
        "plain": (plain_loop, dict(workers=1, cpus_per_worker=1.0)),
        "ray-1-stream": (ray_run, dict(workers=1, cpus_per_worker=1.0, cache=False)),
        "ray-1": (ray_run, dict(workers=1, cpus_per_worker=1.0, cache=True)),
        "ray-2": (ray_run, dict(workers=2, cpus_per_worker=0.5, cache=True)),
    }
    samples = {k: {"rates": [], "walls": [], "waits": []} for k in variants}
    for round_ in range(args.rounds):
        for name, (fn, scale) in variants.items():
            cfg = TrainConfig(**base, **scale, name=f"{name}-{round_}-{time.time_ns()}")
            rates, wall, waits = fn(cfg)
            samples[name]["rates"] += rates[1:] or rates
            samples[name]["waits"] += waits[1:] or waits
            samples[name]["walls"].append(wall)
            print(f"round {round_} {name}: images/s per epoch {[round(r, 1) for r in rates]}, wall {wall:.1f} s, "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)

    best = {k: max(v["rates"]) for k, v in samples.items()}
    print(f"\n== bench/train.py: {args.arch} at {args.image_size}px, batch {args.batch_size}, roles {args.roles}, "
          f"{os.cpu_count()} CPUs, {args.rounds} rounds x {args.epochs - 1} timed epochs ==")
    print(f"{'variant':<13} {'best images/s':>14} {'median':>8} {'data wait':>10} {'wall s (min)':>13}")
    for k, v in samples.items():
        print(f"{k:<13} {best[k]:>14.1f} {np.median(v['rates']):>8.1f} {100 * np.median(v['waits']):>9.0f}% "
              f"{min(v['walls']):>13.1f}")
    for k in ("ray-1", "ray-1-stream"):
        print(f"Ray overhead, {k} vs plain loop (best epochs): {100 * (1 - best[k] / best['plain']):+.1f} % "
              f"(target <= 10 %)")
    print(f"2 workers vs 1 (best epochs): x{best['ray-2'] / best['ray-1']:.2f}")

if __name__ == "__main__":
    main()

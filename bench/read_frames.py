"""Reading an ingest's ``frames`` into Ray: ``ray.data.read_parquet`` vs ``frames_dataset``, side by side.

    python bench/read_frames.py --data runs/demo/prepared [--rounds 3]

Both materialise the same columns of every row (the pixels included); best of ``--rounds`` interleaved
rounds. The ingest writes one Parquet file per video, so the reader's per-file cost is what differs.
"""

from __future__ import annotations

import argparse
import time

import ray.data

from fst_ray import frames, storage
from fst_ray.data import views
from fst_ray.data.stream import DRIVER_READ_BYTES, frames_dataset
from fst_ray.runtime import init_ray

COLUMNS = ["key", "image", "size", "det_label", "source_id", "target_id"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="an ingest output URI")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    init_ray()
    files = len(storage.list_files(frames.uri(args.data)))
    fs, path = storage.resolve(frames.uri(args.data))
    variants = {
        "ray.data.read_parquet": lambda: ray.data.read_parquet(path, filesystem=fs).select_columns(COLUMNS),
        "frames_dataset": lambda: frames_dataset(args.data, COLUMNS),
    }
    best = {name: float("inf") for name in variants}
    for _ in range(args.rounds):
        for name, make in variants.items():
            t = time.perf_counter()
            rows = make().materialize().count()
            best[name] = min(best[name], time.perf_counter() - t)
    mb = views.table_bytes(args.data, "frames") / 2 ** 20
    print(f"frames: {files} files, {mb:.1f} MiB, {rows} rows (driver read below "
          f"{DRIVER_READ_BYTES / 2 ** 20:.0f} MiB)")
    for name, seconds in best.items():
        print(f"  {name:22s} {seconds:6.2f} s   {1000 * seconds / files:6.1f} ms/file")
    print(f"  speed-up {best['ray.data.read_parquet'] / best['frames_dataset']:.1f}x")


if __name__ == "__main__":
    main()

"""Shapley maps of ``frames`` images under trained encoders, on a pool of Ray actors (GPU actors when the
cluster has GPUs); writes the ``shapley`` table (schemas/table.shapley.json). Resumable: finished
(image, model) maps are skipped, a re-run duplicates nothing.

    python jobs/shapley.py --data runs/demo/data/prepared \\
        --models runs/demo/models/encoders/models/source.pt,runs/demo/models/encoders/models/target.pt \\
        --split test --grid 16 --budget 2560 --output runs/demo/shapley [--methods Deepfakes,original] \\
        [--compressions raw,c23,c40] [--estimator auto] [--config FILE]
"""

from __future__ import annotations

import argparse

from fst_ray.shapley.config import ShapleyConfig
from fst_ray.shapley.run import run_shapley


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="YAML config (flags override it)")
    ap.add_argument("--data", help="ingest output URI")
    ap.add_argument("--models", help="comma-separated model files (*.pt)")
    ap.add_argument("--output", help="folder URI of the shapley table")
    ap.add_argument("--split")
    ap.add_argument("--methods", help="comma-separated FF++ methods ('original' included)")
    ap.add_argument("--compressions", help="comma-separated: raw,c23,c40")
    ap.add_argument("--max-images", type=int)
    ap.add_argument("--grid", type=int)
    ap.add_argument("--budget", type=int, help="evaluations per image")
    ap.add_argument("--estimator")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--baseline")
    ap.add_argument("--value")
    ap.add_argument("--actors", type=int)
    args = vars(ap.parse_args(argv))
    cfg = ShapleyConfig.load(args.pop("config"), **args)
    s = run_shapley(cfg)
    print(f"\nshapley: {s.images} images, {s.maps} maps written, {s.skipped} already done, "
          f"{s.unexplainable} without a class in their model")
    print(f"  {s.evaluations} evaluations ({s.forward_passes} forward passes) in {s.seconds:.1f}s: "
          f"{s.evals_per_s:.0f} evaluations/s")
    print(f"  estimator {cfg.estimator}, grid {cfg.grid}, budget {cfg.budget}/image, seed {cfg.seed}")
    print(f"  output: {cfg.output} ({len(s.files)} new files)")


if __name__ == "__main__":
    main()

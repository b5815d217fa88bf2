"""Shapley maps of ``frames`` images under trained encoders, on a pool of Ray actors (GPU actors when the
cluster has GPUs); writes the ``shapley`` table (schemas/table.shapley.json). Resumable: finished
(image, model) maps are skipped, a re-run duplicates nothing.

    python jobs/shapley.py --input runs/demo/prepared \\
        --models runs/demo/work/models/tf_efficientnet_lite0-encoders-imagenet/models/source.pt,runs/demo/work/models/tf_efficientnet_lite0-detectors-raw-imagenet/models/det.pt \\
        --split test --grid 8 --budget 256 --max-images 4 --output runs/demo/shapley [--methods Deepfakes,original] \\
        [--compressions raw,c23,c40] [--estimator auto] [--config FILE]

Every config field is a flag (--help lists them).
"""

from __future__ import annotations

import sys

from fst_ray import cli
from fst_ray.shapley.config import ShapleyConfig
from fst_ray.shapley.run import run_shapley


def run(cfg: ShapleyConfig) -> None:
    s = run_shapley(cfg)
    print(f"\nshapley: {s.images} images, {s.maps} maps written, {s.skipped} already done, "
          f"{s.unexplainable} without a class in their model, {s.no_baseline} images without a {cfg.baseline} "
          "baseline")
    print(f"  {s.evaluations} evaluations ({s.forward_passes} forward passes) in {s.seconds:.1f}s: "
          f"{s.evals_per_s:.0f} evaluations/s")
    rule = f", rounds until a ceiling of {cfg.target_ceiling} (at most {cfg.max_budget}): {s.capped} maps " \
        "stopped at that cap below it" if cfg.target_ceiling is not None else ""
    print(f"  estimator {cfg.estimator}, grid {cfg.grid}, budget {cfg.budget}/image{rule}, seed {cfg.seed}")
    print(f"  output: {cfg.output} ({len(s.files)} new files)")


def main(argv: list[str] | None = None) -> int:
    return cli.main(ShapleyConfig, run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())

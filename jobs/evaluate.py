"""Evaluate model files: detectors (AUC, accuracy, EER, AP per method x compression, frame and video
level) on the test split; source/target encoders (top-1) on their held-out frames.

    python jobs/evaluate.py --input runs/demo/prepared --models runs/demo/work/models/resnet10t-full-raw/models
        [--output URI] [--split test] [--gpu] [--config FILE]

Writes metrics.json and metrics.md (default: eval/ beside the models folder). Every config field is a
flag (--help lists them).
"""

from __future__ import annotations

import sys

from fst_ray import cli
from fst_ray.evaluate import EvalConfig, evaluate_models


def run(cfg: EvalConfig) -> None:
    for r in evaluate_models(cfg):
        for d in r.detection:
            if d.level == "frame" and d.method == "all":
                print(f"{r.role:<7} {d.compression:<4} AUC {d.auc if d.auc is None else round(d.auc, 3)}  "
                      f"acc {d.acc:.3f}  (n={d.n})")
        for i in r.identity:
            if i.method == "all":
                print(f"{r.role:<7} {i.compression:<4} top-1 {i.top1:.3f}  (n={i.n})")
    print(f"\nwritten: {cfg.output_uri()}/metrics.json and metrics.md")


def main(argv: list[str] | None = None) -> int:
    return cli.main(EvalConfig, run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())

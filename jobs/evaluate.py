"""Evaluate model files: detectors (AUC, accuracy, EER, AP per method x compression, frame and video
level) on the test split; source/target encoders (top-1) on their held-out frames.

    python jobs/evaluate.py --input runs/demo/prepared --models runs/demo/work/models/tf_efficientnet_lite0-detectors-raw-imagenet/models
        [--output URI] [--split test] [--gpu] [--config FILE]

Cross-dataset (train on one dataset, score on another's test split): give the other ingest as --input, e.g.
a Celeb-DF v2 ingest for models trained on FF++; identity encoders are not scored there (other people).

Writes metrics.json and metrics.md (default: eval/ beside the models folder; eval-{dataset}/ for models
scored on another dataset). Every config field is a flag (--help lists them).
"""

from __future__ import annotations

import sys

from fst_ray import cli
from fst_ray.evaluate import EvalConfig, evaluate_models, output_folder


def run(cfg: EvalConfig) -> None:
    results = evaluate_models(cfg)
    for r in results:
        if r.note:
            print(f"{r.role:<7} {r.note}")
        for d in r.detection:
            if d.level == "frame" and d.method == "all":
                print(f"{r.role:<7} {d.compression:<4} AUC {d.auc if d.auc is None else round(d.auc, 3)}  "
                      f"acc {d.acc:.3f}  (n={d.n})")
        for i in r.identity:
            if i.method == "all":
                print(f"{r.role:<7} {i.compression:<4} top-1 {i.top1:.3f}  (n={i.n})")
    on = {(r.dataset, r.trained_on) for r in results if r.trained_on not in (None, r.dataset)}
    if on:
        print("cross-dataset: " + ", ".join(f"trained on {t}, scored on {d}" for d, t in sorted(on)))
    print(f"\nwritten: {output_folder(cfg, results)}/metrics.json and metrics.md")


def main(argv: list[str] | None = None) -> int:
    return cli.main(EvalConfig, run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())

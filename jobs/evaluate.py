"""Evaluate model files: detectors (AUC, accuracy, EER, AP per method x compression, frame and video
level) on the test split; source/target encoders (top-1) on their held-out frames.

    python jobs/evaluate.py --data runs/demo/prepared --model runs/demo/models/encoders/models
        [--output URI] [--split test] [--gpu] [--config FILE]

Writes metrics.json and metrics.md (default: eval/ beside the models folder).
"""

from __future__ import annotations

import argparse

from fst_ray.evaluate import EvalConfig
from fst_ray.train.predict import evaluate_models


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="YAML config (flags override it)")
    ap.add_argument("--data", help="ingest output URI")
    ap.add_argument("--model", help="model file (*.pt) or folder of them")
    ap.add_argument("--output", help="folder URI for metrics.json and metrics.md")
    ap.add_argument("--split")
    ap.add_argument("--gpu", action="store_true", default=None)
    args = vars(ap.parse_args(argv))
    cfg = EvalConfig.load(args.pop("config"), **args)
    results = evaluate_models(cfg)
    for r in results:
        if r.detection:
            for d in r.detection:
                if d.level == "frame" and d.method == "all":
                    print(f"{r.role:<7} {d.compression:<4} AUC {d.auc if d.auc is None else round(d.auc, 3)}  "
                          f"acc {d.acc:.3f}  (n={d.n})")
        for i in r.identity:
            if i.method == "all":
                print(f"{r.role:<7} {i.compression:<4} top-1 {i.top1:.3f}  (n={i.n})")
    print(f"\nwritten: {cfg.output_uri()}/metrics.json and metrics.md")


if __name__ == "__main__":
    main()

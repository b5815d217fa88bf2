"""Ingest an FF++-layout tree (real FaceForensics++ or the synthetic corpus) into Parquet tables.

    python jobs/prepare_data.py --input URI --output URI [--frames-per-video K] [--size S] [--config FILE]

URIs are local paths or s3://bucket/prefix (endpoint and credentials from the AWS environment, e.g.
AWS_ENDPOINT_URL). Writes frames, fst_pairs and errors tables under --output (see fst_ray/data/pipeline.py);
re-running resumes. Exit code 1 when nothing usable came out or the error share exceeds max_error_share.
"""

from __future__ import annotations

import argparse
import sys

from fst_ray.data.config import PrepareConfig
from fst_ray.data.pipeline import run_ingest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="YAML config (flags override it)")
    ap.add_argument("--input", help="dataset root URI")
    ap.add_argument("--output", help="output URI")
    ap.add_argument("--frames-per-video", type=int, dest="frames_per_video")
    ap.add_argument("--size", type=int)
    ap.add_argument("--overwrite", action="store_true", default=None, help="delete the output first")
    args = vars(ap.parse_args(argv))
    cfg = PrepareConfig.load(args.pop("config"), **args)
    summary = run_ingest(cfg)
    print(summary)
    return summary.exit_code(cfg.max_error_share)


if __name__ == "__main__":
    sys.exit(main())

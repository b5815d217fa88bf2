"""Ingest a dataset tree (FaceForensics++, its DeepFakeDetection, Celeb-DF v2, or the synthetic corpus) into
Parquet tables.

    python jobs/prepare_data.py --input runs/demo/data --output runs/demo/prepared [--frames-per-video K]
        [--size S] [--dataset auto|ffpp|dfd|celebdf] [--reencode c23,c40] [--config FILE]

URIs are local paths or s3://bucket/prefix (endpoint and credentials from the AWS environment, e.g.
AWS_ENDPOINT_URL). Writes frames, fst_pairs and errors tables under --output (see fst_ray/data/pipeline.py);
re-running resumes. Exit code 1 when nothing usable came out or the error share exceeds max_error_share.
Every config field is a flag (--help lists them).
"""

from __future__ import annotations

import sys

from fst_ray import cli
from fst_ray.data.config import PrepareConfig
from fst_ray.data.pipeline import run_ingest


def run(cfg: PrepareConfig) -> int:
    summary = run_ingest(cfg)
    print(summary)
    return summary.exit_code(cfg.max_error_share)


def main(argv: list[str] | None = None) -> int:
    return cli.main(PrepareConfig, run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())

"""Ingest a dataset tree (FaceForensics++, its DeepFakeDetection, Celeb-DF v2, or the synthetic corpus) into
Parquet tables.

    python jobs/prepare_data.py --input runs/demo/data --output runs/demo/prepared [--frames-per-video K]
        [--size S] [--dataset auto|ffpp|dfd|celebdf] [--reencode c23,c40] [--config FILE]

URIs are local paths or s3://bucket/prefix (endpoint and credentials from the AWS environment, e.g.
AWS_ENDPOINT_URL). Writes frames, fst_pairs and errors tables under --output (see fst_ray/data/ingest/);
re-running resumes. Nothing usable: one line, exit code 2; an error share above max_error_share: the summary,
exit code 1.
Every config field is a flag (--help lists them).
"""

from __future__ import annotations

import sys

from fst_ray import cli
from fst_ray.config import UserError
from fst_ray.data.config import PrepareConfig
from fst_ray.data.ingest import run_ingest


def run(cfg: PrepareConfig) -> int:
    summary = run_ingest(cfg)
    if summary.frames == 0:
        raise UserError(f"nothing usable in {cfg.input}: {summary.bad_inputs} of {summary.inputs} inputs unusable "
                        f"(mostly {summary.top_reason}); see {summary.output}/errors")
    print(summary)
    return summary.exit_code(cfg.max_error_share)


def main(argv: list[str] | None = None) -> int:
    return cli.main(PrepareConfig, run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())

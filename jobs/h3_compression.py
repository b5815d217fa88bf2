"""H3 — stability δ under compression, and the FST model against the detector.

    python jobs/h3_compression.py [--config configs/demo.yaml] [--output runs/demo/h3]
    ray job submit --working-dir . -- python jobs/h3_compression.py --config configs/ffpp.yaml
"""

import sys

from fst_ray.hypotheses import cli
from fst_ray.hypotheses.h3 import run_h3


def main(argv: list[str] | None = None) -> int:
    return cli.main(run_h3, "h3", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())

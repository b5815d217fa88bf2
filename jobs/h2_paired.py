"""H2 — paired vs unpaired detectors.

    python jobs/h2_paired.py [--config configs/demo.yaml] [--output runs/demo/h2]
    ray job submit --working-dir . -- python jobs/h2_paired.py --config configs/ffpp.yaml
"""

import sys

from fst_ray.hypotheses import cli
from fst_ray.hypotheses.h2 import run_h2


def main(argv: list[str] | None = None) -> int:
    return cli.main(run_h2, "h2", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())

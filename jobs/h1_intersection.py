"""H1 — Q_τ of the detector against the source/target intersection.

    python jobs/h1_intersection.py [--config configs/demo.yaml] [--output runs/demo/h1]
    ray job submit --working-dir . -- python jobs/h1_intersection.py --config configs/ffpp.yaml
"""

import sys

from fst_ray.hypotheses import cli
from fst_ray.hypotheses.h1 import run_h1


def main(argv: list[str] | None = None) -> int:
    return cli.main(run_h1, "h1", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())

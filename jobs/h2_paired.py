"""H2 — paired vs unpaired detectors.

    python jobs/h2_paired.py [--config configs/demo.yaml] [--output runs/demo/h2]
    ray job submit --working-dir . -- python jobs/h2_paired.py --config configs/ffpp.yaml
"""

from fst_ray.hypotheses.cli import main
from fst_ray.hypotheses.h2 import run_h2

if __name__ == "__main__":
    main(run_h2, "h2", __doc__)

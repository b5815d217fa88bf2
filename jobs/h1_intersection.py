"""H1 — Q_τ of the detector against the source/target intersection.

    python jobs/h1_intersection.py [--config configs/demo.yaml] [--output runs/demo/h1]
    ray job submit --working-dir . -- python jobs/h1_intersection.py --config configs/ffpp.yaml
"""

from fst_ray.hypotheses.cli import main
from fst_ray.hypotheses.h1 import run_h1

if __name__ == "__main__":
    main(run_h1, "h1", __doc__)

"""Attribution methods compared: H1's frames and detector explained by Shapley, occlusion, KernelSHAP, LIME, RISE,
Integrated Gradients, gradient x input, saliency and Grad-CAM, each scored against the planted masks and the face,
against the Shapley map, and by its cost (report.md, result.json, compare_maps.png).

    python jobs/compare_explainers.py [--config configs/demo.yaml] [--output runs/demo/compare] \
        [--attributions shapley,occlusion,grad_cam]
"""

import sys

from fst_ray.hypotheses import cli
from fst_ray.hypotheses.compare import CompareConfig, run_compare


def main(argv: list[str] | None = None) -> int:
    return cli.main(run_compare, "compare", __doc__, argv, CompareConfig)


if __name__ == "__main__":
    sys.exit(main())

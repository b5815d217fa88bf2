"""Import a detector or identity encoder trained outside fst-ray (a timm network's state dict) as an fst-ray
model file, checked against the network as trained; then give it to H1-H3 through `checkpoints`
(`{arch}/full/det`, `.../source`, `.../target`) or to jobs/evaluate.py and jobs/shapley.py.

    python jobs/import_model.py --weights my_detector.pth --arch efficientnet_b0 --image-size 224 \\
        --output runs/imported/det.pt [--head two_classes --fake-index 0] [--mean 0.5,0.5,0.5 --std 0.5,0.5,0.5] \\
        [--tables runs/demo/prepared]
    python jobs/import_model.py --role source --classes 000,001,002 --weights my_encoder.pth ...

Only weights are read (torch.load weights_only, or .safetensors), never pickled code. Every config field is a flag.
"""

from __future__ import annotations

import sys

from fst_ray import cli, roles
from fst_ray.models.importer import ImportConfig, run_import


def run(cfg: ImportConfig) -> None:
    imported = run_import(cfg)
    detector = roles.get(cfg.role).detector
    kind = cfg.head if detector else f"{len(cfg.classes)} classes"
    print(f"imported {cfg.role} {cfg.arch} ({kind}, input {cfg.image_size} px) -> {cfg.output}")
    print(f"  check: {'fake logit' if detector else 'logits'} of the imported model vs the network as trained, max "
          f"abs difference {imported.max_abs_diff:.2e} on {imported.checked_images} images "
          f"(tolerance {cfg.tolerance:g})")
    print(f"  use it: --checkpoints '{{\"{{arch}}/full/{cfg.role}\": \"{cfg.output}\"}}' (H1-H3; arch: a "
          f"name in --archs), or jobs/evaluate.py --models {cfg.output}")


def main(argv: list[str] | None = None) -> int:
    return cli.main(ImportConfig, run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())

"""Generate the synthetic FF++-shaped corpus with planted artifacts.

    python jobs/make_synthetic.py --output runs/synth [--identities 24] [--frames 32] [--size 128]
        [--methods Deepfakes,Face2Face,...] [--seed 0] [--config FILE]

Every config field is a flag (--help lists them).
"""

from __future__ import annotations

import sys

from fst_ray import cli
from fst_ray.synth.config import SynthConfig
from fst_ray.synth.generate import generate_corpus


def run(cfg: SynthConfig) -> None:
    print(generate_corpus(cfg))


def main(argv: list[str] | None = None) -> int:
    return cli.main(SynthConfig, run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())

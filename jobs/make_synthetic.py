"""Generate the synthetic FF++-shaped corpus with planted artifacts.

    python jobs/make_synthetic.py --out runs/demo/data [--identities 24] [--frames 32] [--size 128]
        [--methods Deepfakes,Face2Face,...] [--seed 0] [--config FILE]
"""

from __future__ import annotations

import argparse

from fst_ray.synth.config import SynthConfig
from fst_ray.synth.generate import generate_corpus


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="YAML config (flags override it)")
    ap.add_argument("--out", help="dataset root URI: local path or s3://bucket/prefix")
    ap.add_argument("--identities", type=int)
    ap.add_argument("--frames", type=int)
    ap.add_argument("--size", type=int)
    ap.add_argument("--methods", type=lambda s: s.split(","), help="comma-separated FF++ methods")
    ap.add_argument("--seed", type=int)
    args = vars(ap.parse_args(argv))
    cfg = SynthConfig.load(args.pop("config"), **args)
    print(generate_corpus(cfg))


if __name__ == "__main__":
    main()

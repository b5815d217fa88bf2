"""What a detector says of removed content: its p(fake) on the all-baseline images of real test frames.

A removal is fit for explaining a detector only if the detector does not itself call the removal fake: if the
black, mean or blurred version of a real frame scores p(fake) > 0.5, every removed cell "adds fakeness" and a
map of a fake says more about the baseline than about the image. For each detector model file, prints the mean
p(fake) (and its share > 0.5) over real test frames of the image itself and of each baseline's all-baseline
image (zero, mean, blur, and background: a real frame of another person of the same split), at one compression;
and of real frames with half their cells (a random coalition per frame) pasted from another person's real frame,
with hard cell edges (what the background game shows the model) and with edges feathered over a quarter cell:
where the hard paste scores more fake than the feathered one and than the frame itself, the pasted cells' seams
look like blending seams to the detector.

    python bench/removals.py --tables runs/study/prepared --models runs/study/work/models/.../det.pt ...
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torchvision.transforms.functional import gaussian_blur

from fst_ray import frames
from fst_ray.data import views
from fst_ray.markdown import md_table
from fst_ray.shapley import baselines
from fst_ray.shapley.baselines import background_keys
from fst_ray.shapley.game import baseline_image, masked_images
from fst_ray.shapley.run import load_models


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", required=True)
    ap.add_argument("--models", nargs="+", required=True, help="detector model files (role det or fst)")
    ap.add_argument("--compression", default="raw")
    ap.add_argument("--grid", type=int, default=4, help="the blur baseline's cell size is the image side / grid")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    index = frames.read_index(a.tables, views.where(split="test", compression=a.compression, det_label=0))
    reals = index.to_pylist()
    others = background_keys(index, reals, 1, a.seed)
    rows = [r for r in reals if others[r["key"]]]  # frames with another person to paste from
    keys = sorted({r["key"] for r in rows} | {k for v in others.values() for k in v})
    pixels = {k: frames.to_float(torch.from_numpy(v[None]))[0] for k, v in frames.images(a.tables, keys).items()}
    images = {"image": [pixels[r["key"]] for r in rows]}
    for b in baselines.from_image():
        images[b] = [baseline_image(pixels[r["key"]], b, a.grid) for r in rows]
    images["background"] = [pixels[others[r["key"]][0]] for r in rows]
    coalitions = torch.rand(len(rows), a.grid ** 2, generator=torch.Generator().manual_seed(a.seed)) < 0.5
    side = images["image"][0].shape[-1]
    keep = masked_images(torch.ones(1, side, side), torch.zeros(1, side, side), coalitions, a.grid)  # [N, 1, S, S]
    soft = gaussian_blur(keep, kernel_size=2 * (side // a.grid // 2) + 1, sigma=side / a.grid / 4)
    for name, mask in (("half pasted, hard", keep), ("half pasted, feathered", soft)):
        images[name] = [m * pixels[r["key"]] + (1 - m) * pixels[others[r["key"]][0]] for m, r in zip(mask, rows)]
    print(f"{len(rows)} real test frames at {a.compression}; p(fake): mean (share > 0.5)")
    table = []
    for m in load_models(a.models):
        cells = []
        with torch.inference_mode():
            for name, batch in images.items():
                p = torch.softmax(m.module.eval()(torch.stack(batch)).double(), 1)[:, 1].numpy()
                cells.append(f"{p.mean():.2f} ({np.mean(p > 0.5):.0%})")
        table.append((f"{m.role} {m.uri.rsplit('/', 3)[-3]}", *cells))
    print(md_table(["model", *images], table))


if __name__ == "__main__":
    main()

"""Throughput of the paper-sized models on this machine's devices, for sizing a cluster
(docs/benchmarks.md, "GPU sizing").

    python bench/throughput.py [--archs resnet18,efficientnet_b3] [--image-size 224] [--batch 64]

Per device (CPU; CUDA where present, with AMP) and architecture, best of ``--repeats`` timings:
- forward passes/s of the bare model on a batch (inference mode);
- Shapley evaluations/s of ``ImageGame`` with three such models (source, target, detector: one masking
  pass feeds all three), G = 16 — the rate that decides H1-H3's cost;
- training frames/s (forward, backward, AdamW step; AMP on CUDA).
Then the device-hours of H1 at the paper's size from the measured rate (``configs/ffpp.yaml``: 200 images
per method, 5 methods, budget 2,560 evaluations per image, one pass for three maps).
"""

from __future__ import annotations

import argparse
import time

import timm
import torch

from fst_ray.shapley import ImageGame


def best_rate(fn, count: int, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return count / best


def measure(arch: str, device: str, size: int, batch: int, repeats: int) -> dict[str, float]:
    amp = torch.autocast("cuda", dtype=torch.float16, enabled=device == "cuda")
    models = {r: timm.create_model(arch, num_classes=2).to(device).eval() for r in ("source", "target", "det")}
    x = torch.rand(batch, 3, size, size, device=device)

    @torch.inference_mode()
    def forward():
        with amp:
            models["det"](x)

    game = ImageGame(models, torch.rand(3, size, size), 1, grid=16, batch_size=batch)
    coalitions = torch.rand(batch, 256) < 0.5

    def shapley():
        with amp:
            game(coalitions)

    net = timm.create_model(arch, num_classes=2).to(device).train()
    opt = torch.optim.AdamW(net.parameters())
    scaler = torch.amp.GradScaler(enabled=device == "cuda")
    tb = min(batch, 32)
    y = torch.randint(0, 2, (tb,), device=device)

    def train():
        with amp:
            loss = torch.nn.functional.cross_entropy(net(x[:tb]), y)
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    return {"forward_per_s": best_rate(forward, batch, repeats),
            "shapley_evals_per_s": best_rate(shapley, batch, repeats),
            "train_frames_per_s": best_rate(train, tb, repeats)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", default="resnet18,efficientnet_b3")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    images, budget = 5 * 200, 2560
    print(f"torch threads {torch.get_num_threads()}; image {args.image_size} px; batch {args.batch}")
    for device in devices:
        name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
        for arch in args.archs.split(","):
            r = measure(arch, device, args.image_size, args.batch, args.repeats)
            hours = images * budget / r["shapley_evals_per_s"] / 3600
            print(f"[{name}] {arch:16s} forward {r['forward_per_s']:8.1f}/s | Shapley (3 models) "
                  f"{r['shapley_evals_per_s']:8.1f} evals/s | training {r['train_frames_per_s']:7.1f} frames/s "
                  f"| H1 at paper size ({images} images x {budget} evals): {hours:7.1f} device-hours", flush=True)


if __name__ == "__main__":
    main()

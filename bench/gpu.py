"""The GPU paths, measured: one short prepared script for a machine with a GPU (a few minutes); its rates go into
the GPU sizing table of docs/benchmarks.md with the device named.

    python bench/gpu.py [--archs resnet18,efficientnet_b3] [--size 224] [--batch 64] [--parts engine,map,pool,train]
                        [--json FILE]
    ray job submit --working-dir . --entrypoint-num-gpus 1 -- python bench/gpu.py
    python bench/gpu.py --device cpu --archs test_resnet --size 32 --batch 8    # the smoke test (tests/)

Side by side per architecture, on one device (default: cuda where present):
1. forward passes/s of one model, and Shapley evaluations/s of the engine (``ImageGame`` with source, target and
   detector, G = 16: one masked image feeds the three), under fp32, bf16 autocast, bf16 + channels_last, and
   bf16 + channels_last + ``torch.compile`` (where it compiles); masking overhead = 1 - (forward/s / 3) /
   (evaluations/s): the share of the engine's time not spent in the three forward passes.
2. one whole map per estimator (``permutation``, ``antithetic``, ``adjusted``; G = 16, ``--map-budget``
   evaluations, bf16 + channels_last): maps/s, and the share of the wall time spent outside the game (the
   estimator's own bookkeeping, on the CPU) — what is left to gain once the game is fast.
3. ``ShapleyPool`` with one actor on the device (Ray): evaluations/s through the pool on the same coalitions.
4. one step of the project's training engine (``train_step``: det, source, target, fst on a labelled toy batch;
   AMP fp16 with a grad scaler on CUDA, as ``train.amp`` does): frames/s, and the loss is finite.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fst_ray import frames, roles  # noqa: E402
from fst_ray.models import create_model  # noqa: E402
from fst_ray.shapley import ImageGame, estimate  # noqa: E402
from fst_ray.shapley.precision import prepare  # noqa: E402
from fst_ray.train.config import TrainConfig  # noqa: E402
from fst_ray.train.engine import train_step  # noqa: E402
from fst_ray.train.labels import READ_COLUMNS, label_batch, make_plan  # noqa: E402
from fst_ray.train.toy import write_toy_frames  # noqa: E402

SETTINGS = {  # name -> how the models run (fst_ray.shapley.precision.prepare: precision, channels_last, compile)
    "fp32": ("fp32", False, False),
    "bf16": ("bf16", False, False),
    "bf16+channels_last": ("bf16", True, False),
    "bf16+channels_last+compile": ("bf16", True, True),
}
ROLES = ("source", "target", "det")
GRID = 16
PARTS = ("engine", "map", "pool", "train")


def _timed(fn, device: str) -> float:
    """Wall seconds of one call of ``fn``, the device's queue drained before and after."""
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def _error(err: Exception) -> str:
    """One line naming an exception: its type and the first line of its message."""
    return f"{type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"


def rate(fn, count: int, repeats: int, device: str) -> float:
    """Items/s of ``fn`` (``count`` items a call): best of ``repeats`` timed calls after one warm-up."""
    fn()
    return count / min(_timed(fn, device) for _ in range(repeats))


def _models(arch: str, device: str, setting: tuple = SETTINGS["fp32"]) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {role: prepare(create_model(role, arch, None if role == "det" else 100).to(device).eval(), *setting)
            for role in ROLES}


def inference(arch: str, device: str, size: int, batch: int, repeats: int) -> dict[str, dict]:
    """Part 1: forward and engine rates per setting."""
    x = torch.rand(batch, 3, size, size, device=device)
    coalitions = torch.rand(batch, GRID * GRID, generator=torch.Generator().manual_seed(0)) < 0.5
    out = {}
    for name, setting in SETTINGS.items():
        try:
            models = _models(arch, device, setting)

            def forward():
                with torch.inference_mode():
                    models["det"](x)

            game = ImageGame(models, torch.rand(3, size, size), {"source": 0, "target": 0, "det": 1}, grid=GRID,
                             batch_size=batch)

            def engine():
                game(coalitions)

            warmup = _timed(forward, device)  # the first call: compilation, cuDNN's autotuning
            f, e = rate(forward, batch, repeats, device), rate(engine, batch, repeats, device)
            out[name] = {"forward_per_s": f, "evals_per_s": e, "masking_overhead": 1 - (f / 3) / e,
                         "first_call_s": warmup}
        except Exception as err:  # noqa: BLE001 - a setting that does not run here (compile without a compiler)
            out[name] = {"error": _error(err)}
    return out


class _TimedGame:
    """A game that adds up the wall seconds spent inside it."""

    def __init__(self, game, device: str):
        self.game, self.device, self.seconds = game, device, 0.0
        self.n_players, self.outputs = game.n_players, game.outputs

    def __call__(self, coalitions: torch.Tensor) -> torch.Tensor:
        out = []
        self.seconds += _timed(lambda: out.append(self.game(coalitions)), self.device)
        return out[0]


def maps(arch: str, device: str, size: int, batch: int, budget: int) -> dict[str, dict]:
    """Part 2: one whole G = 16 map per estimator under bf16 + channels_last: maps/s, share outside the game."""
    models = _models(arch, device, SETTINGS["bf16+channels_last"])
    game = ImageGame(models, torch.rand(3, size, size), {"source": 0, "target": 0, "det": 1}, grid=GRID,
                     batch_size=batch)
    out = {}
    for method in ("permutation", "antithetic", "adjusted"):
        timed = _TimedGame(game, device)
        game(torch.ones(batch, GRID * GRID, dtype=torch.bool))  # warm-up
        result = []
        wall = _timed(lambda: result.append(estimate(timed, budget, method, seed=1)), device)
        out[method] = {"maps_per_s": 1 / wall, "evals_per_s": result[0].n_evals / wall,
                       "outside_game": 1 - timed.seconds / wall}
    return out


def pool_rate(arch: str, device: str, size: int, batch: int, repeats: int) -> float:
    """Part 3: evaluations/s of a one-actor ShapleyPool on the device."""
    import ray

    from fst_ray.runtime import init_ray
    from fst_ray.shapley.pool import ShapleyPool

    started = not ray.is_initialized()
    init_ray()
    try:
        pool = ShapleyPool(_models(arch, "cpu"), n_actors=1, batch_size=batch, chunk_size=4 * batch)
        if pool.use_gpu != (device == "cuda"):
            raise RuntimeError(f"the pool's actor is on {'GPU' if pool.use_gpu else 'CPU'}, not {device}")
        game = pool.game(torch.rand(3, size, size), {"source": 0, "target": 0, "det": 1}, grid=GRID)
        coalitions = torch.rand(4 * batch, GRID * GRID, generator=torch.Generator().manual_seed(1)) < 0.5
        return rate(lambda: game(coalitions), len(coalitions), repeats, device)
    finally:
        if started:
            ray.shutdown()


def training(arch: str, device: str, size: int, batch: int, repeats: int) -> dict:
    """Part 4: frames/s of one train_step of every role, and its loss."""
    with tempfile.TemporaryDirectory() as tmp:
        write_toy_frames(tmp, identities=6, frames=max(2, batch // 12 + 1), size=size)
        index = frames.read_index(tmp)
        cfg = TrainConfig(input=tmp, roles=["det", "source", "target", "fst"], arch=arch, image_size=size,
                          batch_size=batch)
        plan = make_plan(index, cfg.roles, cfg.train_set, cfg.seed, cfg.holdout_fraction)
        table = frames.read(tmp, READ_COLUMNS)
    cols = {c: np.asarray(table[c].to_pylist(), dtype=object if table[c].type in ("string", "binary") else None)
            for c in table.column_names}
    data = {k: torch.from_numpy(v)[:batch].to(device) for k, v in label_batch(cols, plan).items()}
    models = {r: create_model(r, arch, roles.get(r).num_classes(plan.classes)).to(device).train() for r in cfg.roles}
    optimizers = {r: torch.optim.AdamW(m.parameters(), lr=cfg.lr) for r, m in models.items()}
    scaler = torch.amp.GradScaler(device, enabled=device == "cuda" and cfg.amp)
    gen = torch.Generator(device=device).manual_seed(0)
    sums = {r: torch.zeros(4, dtype=torch.float64, device=device) for r in cfg.roles}

    def step():
        train_step(data, models, optimizers, scaler, cfg, cfg.lr, gen, sums)

    frames_per_s = rate(step, len(data["image"]), repeats, device)
    losses = {r: float(s[0] / s[2].clamp(min=1)) for r, s in sums.items()}
    return {"frames_per_s": frames_per_s, "amp": scaler.is_enabled(), "loss": losses,
            "finite": all(math.isfinite(v) for v in losses.values())}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--archs", default="resnet18,efficientnet_b3")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--parts", default=",".join(PARTS), help=f"a comma list of {PARTS}")
    ap.add_argument("--map-budget", type=int, default=12800, help="evaluations of each whole map (part map)")
    ap.add_argument("--json", default=None, help="also write the measurements to this file (after every part)")
    args = ap.parse_args(argv)
    parts = args.parts.split(",")
    if unknown := set(parts) - set(PARTS):
        ap.error(f"unknown parts {sorted(unknown)}: use {PARTS}")
    name = torch.cuda.get_device_name() if args.device == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device {name}; torch {torch.__version__}; {args.size} px; batch {args.batch}", flush=True)
    report = {"device": name, "torch": torch.__version__, "size": args.size, "batch": args.batch, "archs": {}}
    for arch in args.archs.split(","):
        r = report["archs"][arch] = {}
        for part in parts:
            try:
                if part == "engine":
                    r["inference"] = inference(arch, args.device, args.size, args.batch, args.repeats)
                elif part == "map":
                    r["map"] = maps(arch, args.device, args.size, args.batch, args.map_budget)
                elif part == "pool":
                    r["pool_evals_per_s"] = pool_rate(arch, args.device, args.size, args.batch, args.repeats)
                else:
                    r["train"] = training(arch, args.device, args.size, args.batch, args.repeats)
            except Exception as err:  # noqa: BLE001 - one part that cannot run here (no Ray) leaves the others
                r[f"{part}_error"] = _error(err)
                print(f"{arch:16s} {part}: {r[f'{part}_error']}", flush=True)
                continue
            _print(arch, part, r)
            if args.json:
                Path(args.json).write_text(json.dumps(report, indent=1))
    return report


def _print(arch: str, part: str, r: dict) -> None:
    if part == "engine":
        for setting, m in r["inference"].items():
            line = m["error"] if "error" in m else (
                f"forward {m['forward_per_s']:9.1f}/s  engine {m['evals_per_s']:8.1f} evals/s  masking overhead "
                f"{100 * m['masking_overhead']:5.1f}%  first call {m['first_call_s']:.1f} s")
            print(f"{arch:16s} {setting:28s} {line}", flush=True)
    elif part == "map":
        for method, m in r["map"].items():
            print(f"{arch:16s} map {method:24s} {m['evals_per_s']:8.1f} evals/s, {m['maps_per_s']:.3f} maps/s, "
                  f"{100 * m['outside_game']:.1f}% outside the game", flush=True)
    elif part == "pool":
        print(f"{arch:16s} pool (1 actor)               {r['pool_evals_per_s']:8.1f} evals/s (fp32)", flush=True)
    else:
        t = r["train"]
        print(f"{arch:16s} train_step (amp={t['amp']})      {t['frames_per_s']:8.1f} frames/s, loss finite: "
              f"{t['finite']}", flush=True)


if __name__ == "__main__":
    main()

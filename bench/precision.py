"""The error a reduced precision adds to a map, against the estimator's own noise, on trained models.

For each model file and each fake test frame (one per video, up to ``--images``): the map estimated in fp32 and
in ``--precision`` from the same coalitions (the same seeds: the two differ by the arithmetic alone), each the mean
of two independent halves. Per model, of the centred maps: the precision's error energy E‖φ_p − φ_fp32‖² as a
share of the estimator's noise energy at this budget (E‖φ − φ_true‖² = E‖φ_a − φ_b‖² / 4, the halves being
independent) — the goal is under 1% — and the mean cosine of the two maps. With a source, a target and a
detector model: H1's Q gap from the fp32 maps and from the reduced ones, beside the gap's cluster CI.

    python bench/precision.py --tables runs/study/prepared --models .../source.pt .../target.pt .../det.pt
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from fst_ray import frames, metrics, roles
from fst_ray.data import views
from fst_ray.hypotheses.pipeline import clusters_of
from fst_ray.markdown import md_table
from fst_ray.shapley import baselines
from fst_ray.shapley.estimate import estimate_maps, image_seed
from fst_ray.shapley.game import ImageGame
from fst_ray.shapley.precision import NAMES, prepare
from fst_ray.shapley.run import load_models
from fst_ray.train.config import TrainConfig
from fst_ray.train.labels import encoder_split


def fake_frames(tables: str, compression: str, images: int, baseline: str, grid: int,
                seed: int) -> list[tuple[dict, torch.Tensor, torch.Tensor | str]]:
    """Up to ``images`` fake test frames at ``compression`` from the encoders' frame hold-out (as the hypotheses
    explain: frames the encoders trained on would carry their memory), one per video and method in a seeded
    order, that ``baseline`` can fill: ``(frames row, image [3, S, S], what its removed cells show)`` each (a baseline made from the image
    alone: its name, which the game fills in)."""
    _, holdout = encoder_split(frames.read_index(tables), TrainConfig.model_fields["seed"].default,
                               TrainConfig.model_fields["holdout_fraction"].default)
    index = views.select(holdout, split="test", compression=compression, det_label=1).sort_by("key").to_pylist()
    spec = baselines.get(baseline)
    others = spec.others(tables, index, 1, seed) if spec.others else {}
    firsts, seen = [], set()
    for r in index:
        if (r["method"], r["video"]) not in seen and (not spec.others or others[r["key"]]):
            seen.add((r["method"], r["video"]))
            firsts.append(r)
    rows = [firsts[i] for i in np.random.default_rng(seed).permutation(len(firsts))[:images]]
    wanted = [r["key"] for r in rows] + [k for r in rows for k in others.get(r["key"], [])]
    pixels = {k: frames.to_float(torch.from_numpy(v[None]))[0] for k, v in frames.images(tables, wanted).items()}
    return [(r, pixels[r["key"]], spec.fill(pixels[r["key"]], grid, [pixels[k] for k in others[r["key"]]])
             if spec.others else baseline) for r in rows]


def explained(models, row: dict) -> dict[str, int]:
    """Model name -> the class index its map of ``row`` explains (as the Shapley job's)."""
    targets = {m.name: roles.explained_class(m.role, m.classes, row) for m in models}
    if any(t is None for t in targets.values()):
        raise SystemExit(f"{row['key']}: a model has no class for it (an encoder trained on other ids?)")
    return {name: t[1] for name, t in targets.items()}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", required=True)
    ap.add_argument("--models", nargs="+", required=True, help="model files (source, target, det: Q's gap too)")
    ap.add_argument("--precision", default="bf16", choices=[p for p in NAMES if p != "fp32"])
    ap.add_argument("--compression", default="raw")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--grid", type=int, default=4)
    ap.add_argument("--budget", type=int, default=480)
    ap.add_argument("--estimator", default="auto")
    ap.add_argument("--baseline", default="zero", choices=baselines.names())
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    models = load_models(a.models)
    rows = fake_frames(a.tables, a.compression, a.images, a.baseline, a.grid, a.seed)
    run = {p: {m.name: prepare(m.module, p) for m in models} for p in ("fp32", a.precision)}
    maps = {p: {m.name: [] for m in models} for p in run}
    halves = {m.name: [] for m in models}
    seconds = dict.fromkeys(run, 0.0)
    for row, image, fill in rows:
        targets = explained(models, row)
        seeds = {m.name: image_seed(a.seed, f"{row['key']}/{m.sha256}") for m in models}
        for p, nets in run.items():
            def game_of(names, nets=nets):
                return ImageGame({n: nets[n] for n in names}, image, {n: targets[n] for n in names}, grid=a.grid,
                                 baseline=fill)

            start = time.perf_counter()
            got, _ = estimate_maps(game_of, seeds, a.budget, a.estimator, halves=True)
            seconds[p] += time.perf_counter() - start
            for name, m in got.items():
                maps[p][name].append(m["phi"].numpy())
                if p == "fp32":
                    halves[name].append((m["phi_a"].numpy(), m["phi_b"].numpy()))
    out, table = {"models": {}, "images": len(rows), "seconds": seconds}, []
    for m in models:
        exact, reduced = (metrics.centre(np.array(maps[p][m.name])) for p in ("fp32", a.precision))
        ha, hb = (metrics.centre(np.array([h[i] for h in halves[m.name]])) for i in (0, 1))
        error = float(np.mean(np.sum((reduced - exact) ** 2, axis=1)))
        noise = float(np.mean(np.sum((ha - hb) ** 2, axis=1)) / 4)
        cosine = float(np.mean([metrics.cosine(x, y) for x, y in zip(exact, reduced)]))
        out["models"][m.name] = {"error_share_of_noise": error / noise, "cosine": cosine,
                                 "ceiling": metrics.noise_ceiling(ha, hb)}
        table.append((m.name, f"{error / noise:.2e}", f"{cosine:.6f}", f"{out['models'][m.name]['ceiling']:.3f}"))
    print(f"{len(rows)} fake test frames at {a.compression}, G = {a.grid}, {a.budget} evaluations per map "
          f"({a.estimator}, {a.baseline} baseline); {a.precision} against fp32 on the same coalitions; "
          f"{seconds['fp32']:.0f} s fp32, {seconds[a.precision]:.0f} s {a.precision} on this machine")
    print(md_table(["model", f"{a.precision} error energy / estimator noise energy (goal < 1e-2)",
                    "cosine with the fp32 map", "centred noise ceiling"], table))
    names = {m.role: m.name for m in models}
    if {"source", "target", "det"} <= set(names):
        clusters = clusters_of([r["key"] for r, *_ in rows])
        gaps = {}
        for p in run:
            s, t, d = (np.array(maps[p][names[r]]) for r in ("source", "target", "det"))
            q, base = metrics.q_per_image(s, t, d, metrics.OFFICIAL_TAUS, "official", seed=a.seed)
            gaps[p] = (float(np.nanmean(q - base)), metrics.cluster_bootstrap_ci(q - base, clusters, seed=a.seed))
        out["q_gap"] = {p: {"gap": g, "ci": ci} for p, (g, ci) in gaps.items()}
        (g32, ci32), (gp, _) = gaps["fp32"], gaps[a.precision]
        print(f"H1's Q gap: fp32 {g32:+.4f} [{ci32[0]:+.4f}, {ci32[1]:+.4f}], {a.precision} {gp:+.4f}: the "
              f"precision moves it by {abs(gp - g32):.1e}, {abs(gp - g32) / (ci32[1] - ci32[0]):.1e} of the CI's width")
    return out


if __name__ == "__main__":
    main()

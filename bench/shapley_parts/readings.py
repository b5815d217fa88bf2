"""(e) what users pay for: the error of H1's Q gap and H3's δ, read by the library's own code, per estimator and
budget."""

from __future__ import annotations

import math
import statistics
import time

import numpy as np
import torch

from fst_ray import metrics
from fst_ray.shapley import ImageGame
from fst_ray.shapley.estimate import estimate_maps, image_seed
from fst_ray.shapley.estimators import min_budget
from shapley_parts.common import explained_by, first_fake, load


def _readings(maps: dict[str, torch.Tensor], names: tuple[str, ...], halves=None) -> dict:
    """What the hypotheses read from one frame's maps ``compression -> [n, k]`` (columns ``names``): H1's
    τ-averaged gap Q − baseline (official variant, unit-norm maps) at the first compression, and each model's
    δ (with ``halves`` ``compression -> (a, b)``: the centred δ, its noise ceilings and corrected δ, as the jobs
    read them)."""
    first, *_ = maps
    unit = {c: metrics.unit_norm(m.T.numpy()) for c, m in maps.items()}  # [k, n]
    out = {}
    if {"source", "target", "det"} <= set(names):
        s, t, d = (unit[first][names.index(r)][None] for r in ("source", "target", "det"))
        q, baseline = metrics.q_per_image(s, t, d)  # as H1 reads them (fst_ray.hypotheses.h1.q_summary)
        gap = float(np.nanmean(q - baseline))
        out["q_gap"] = gap
        if halves is not None:
            j = names.index("det")
            r_d = metrics.noise_ceiling(halves[first][0][:, j][None].numpy(), halves[first][1][:, j][None].numpy())
            out["q_gap corrected"] = metrics.q_corrected(gap, 0.0, r_d)
    if {"raw", "c23", "c40"} <= set(maps):
        for j, name in enumerate(names):
            trio = [unit[c][j][None] for c in ("raw", "c23", "c40")]
            if halves is None:
                out[f"delta {name}"] = metrics.stability(*trio)
                continue
            h = [tuple(x[:, j][None].numpy() for x in halves[c]) for c in ("raw", "c23", "c40")]
            got = metrics.stability_with_noise(trio, h, clusters=[0], n_boot=10)
            out[f"delta {name}"] = got["centred"]  # what the corrected δ corrects, and H3 reads
            out[f"delta {name} corrected"] = got["corrected"]
            out[f"ceiling {name}"] = min(got["noise_ceiling"].values())
    return out


def part_e(models: str, tables: str, methods: list[str], fracs: list[float], seeds: int, ref_evals: int) -> dict:
    """What users pay for: the error of H1's Q gap and H3's δ (raw and noise-corrected, each map made of two
    half-budget estimates as the jobs make them) against the readings of reference maps, per estimator and
    budget, on one fake test frame at raw/c23/c40 with the trained models explaining it, each map from coalitions
    of its own as the jobs draw them (:func:`fst_ray.shapley.estimate.estimate_maps`); and the evaluations each
    estimator needs for a noise ceiling of 0.9 (from the measured centred ceilings,
    :func:`fst_ray.metrics.budget_for_ceiling`)."""
    rows = first_fake(tables)
    loaded = load(models)
    game_of = {}
    for row in rows:
        image, explained = explained_by(loaded, row)
        names = tuple(explained)
        game_of[row["compression"]] = lambda ns, image=image, explained=explained: ImageGame(
            {k: explained[k][0] for k in ns}, image, {k: explained[k][1] for k in ns}, grid=16, batch_size=256)
    n = 256
    official_budget = 2 * n * 100

    def halves_of(c: str, budget: int, method: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The two half-budget estimates ``[n, k]`` (columns ``names``) of compression ``c``'s maps."""
        maps, _ = estimate_maps(game_of[c], {k: image_seed(seed, f"{c}/{k}") for k in names}, budget, method)
        return tuple(torch.stack([maps[k][h] for k in names], 1) for h in ("phi_a", "phi_b"))

    t = time.perf_counter()
    ref_halves = {c: halves_of(c, ref_evals, "antithetic", 10_000) for c in game_of}
    ref = _readings({c: (a + b) / 2 for c, (a, b) in ref_halves.items()}, names, ref_halves)
    # the truth: the reference's readings, noise-corrected where a correction exists
    truth = {k: ref.get(f"{k} corrected", v) for k, v in ref.items()
             if not k.endswith(" corrected") and not k.startswith("ceiling")}
    print(f"  frame {rows[0]['key']} at {', '.join(game_of)}; models {', '.join(names)}; reference antithetic "
          f"{ref_evals} evals per compression in two halves ({time.perf_counter() - t:.0f}s; its noise ceilings "
          + ", ".join(f"{k.removeprefix('ceiling ')} {v:.2f}" for k, v in ref.items() if k.startswith("ceiling"))
          + "): " + ", ".join(f"{k} {v:+.3f}" for k, v in truth.items()), flush=True)
    out = {"frame": rows[0]["key"], "models": list(names), "reference": truth, "reference_readings": ref,
           "methods": {}}
    for method in methods:
        per_budget = []
        for b in (int(f * official_budget) for f in fracs):
            if b // 2 < min_budget(method, n):
                continue
            got = []
            for s in range(seeds):  # independent coalitions per compression and model, as the jobs draw them
                halves = {c: halves_of(c, b, method, s) for c in game_of}
                got.append(_readings({c: (a + z) / 2 for c, (a, z) in halves.items()}, names, halves))
            err = {k: math.sqrt(statistics.mean((g[k] - truth[k.replace(" corrected", "")]) ** 2 for g in got))
                   for k in got[0] if not k.startswith("ceiling")}
            bias = {k: statistics.mean(g[k] - truth[k.replace(" corrected", "")] for g in got) for k in err}
            need = {k.removeprefix("ceiling "): statistics.median(metrics.budget_for_ceiling(g[k], b) for g in got)
                    for k in got[0] if k.startswith("ceiling")}
            per_budget.append({"budget": b, "rms_error": err, "bias": bias, "evals_for_ceiling_0.9": need})
            print(f"  {method:11s} @{b:6d}: " + "  ".join(f"{k} {err[k]:.3f} ({bias[k]:+.3f})" for k in err)
                  + " | evals for ceiling 0.9: " + ", ".join(f"{k} {v:,.0f}" for k, v in need.items()), flush=True)
        out["methods"][method] = per_budget
    return out

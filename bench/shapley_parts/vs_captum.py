"""(c) captum's ShapleyValueSampling vs the estimator ``auto`` runs, at equal error."""

from __future__ import annotations

import math
import statistics
import time

import torch

from fst_ray.shapley import ImageGame, estimate
from fst_ray.shapley.estimate import choose
from fst_ray.shapley.estimators import min_budget
from fst_ray.shapley.toy import toy_cnn, toy_image
from shapley_parts.common import SIZE, TARGET, match_fraction, rel_err2


def part_c(a16: dict, permutations: int, seeds: int, game: ImageGame | None = None) -> dict:
    """captum's ShapleyValueSampling vs ours at equal error on ``game`` (one model; default the toy CNN), with
    ``a16`` the part (a) result of the same game (its curves and reference)."""
    from captum.attr import ShapleyValueSampling

    grid = a16["grid"]
    n = grid * grid
    game = game or ImageGame(toy_cnn(), toy_image(SIZE), TARGET, grid=grid, batch_size=512)
    (model,), (target,), image = game.models.values(), game.targets.values(), game.image
    cell = image.shape[-1] // grid
    ref = a16.pop("_ref")
    ref_noise = float((ref.stderr ** 2).sum() / (ref.values ** 2).sum())
    mask = (torch.arange(n).view(grid, grid).repeat_interleave(cell, 0).repeat_interleave(cell, 1))[None, None]
    svs = ShapleyValueSampling(model)
    c_err, c_time = [], []
    for s in range(seeds):
        torch.manual_seed(s)
        t = time.perf_counter()
        with torch.no_grad():
            attr = svs.attribute(image[None], baselines=0.0, target=target, feature_mask=mask,
                                 n_samples=permutations, perturbations_per_eval=128)
        c_time.append(time.perf_counter() - t)
        phi = attr[0, 0].reshape(grid, cell, grid, cell)[:, 0, :, 0].reshape(-1).double()
        c_err.append(rel_err2(phi, ref.values) - ref_noise)
    target = max(statistics.mean(c_err), 1e-12)
    method = choose(n, a16["official_budget"] // 20)  # what auto runs at such budgets
    curve = a16["methods"][method]
    budget = int(match_fraction(curve["budgets"], [e ** 2 for e in curve["rel_err"]], target,
                                a16["official_budget"]) * a16["official_budget"])
    budget = max(budget, min_budget(method, n))
    o_err, o_time = [], []
    for s in range(seeds):
        t = time.perf_counter()
        r = estimate(game, budget, method, seed=s)
        o_time.append(time.perf_counter() - t)
        o_err.append(rel_err2(r.values, ref.values) - ref_noise)
    ct, ot = statistics.mean(c_time), statistics.mean(o_time)
    ce, oe = math.sqrt(target), math.sqrt(max(statistics.mean(o_err), 0))
    print(f"  captum ShapleyValueSampling, {permutations} permutations ({permutations * (n + 1)} evals): "
          f"rel error {ce:.3f}, {ct:.2f}s | {method} at {budget} evals: rel error {oe:.3f}, {ot:.2f}s"
          f" | captum/ours wall time {ct / ot:.1f}x", flush=True)
    return {"grid": grid, "head": a16["head"], "captum_permutations": permutations, "captum_rel_err": ce, "captum_s": ct,
            "ours_budget": budget, "ours_rel_err": oe, "ours_s": ot, "speedup": ct / ot}

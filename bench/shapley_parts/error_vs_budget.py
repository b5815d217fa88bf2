"""(a) error vs budget of every estimator against a reference, and the budget that matches the official estimator."""

from __future__ import annotations

import math
import statistics
import time


from fst_ray.shapley import ImageGame, estimate
from fst_ray.shapley.estimators import min_budget
from fst_ray.shapley.toy import toy_cnn, toy_image
from shapley_parts.common import SAMPLED, SIZE, TARGET, match_fraction, rel_err2


def part_a(grid: int, head: str, fracs: list[float], seeds: int, ref_evals: int, official_m: int,
           game: ImageGame | None = None, methods: list[str] = SAMPLED, ref=None) -> dict:
    """Error vs budget of ``methods`` (``official`` always among them) on one game, against ``ref`` (a
    ``ShapleyResult``; default: exact values where n <= 16, else ``antithetic`` at ``ref_evals``)."""
    n = grid * grid
    official_budget = 2 * n * 100
    game = game or ImageGame(toy_cnn(head=head), toy_image(SIZE), TARGET, grid=grid, batch_size=512)
    t = time.perf_counter()
    if ref is None:
        ref = estimate(game, 2 ** n, "exact") if n <= 16 else estimate(game, ref_evals, "antithetic", seed=10_000)
    ref_noise = float((ref.stderr ** 2).sum() / (ref.values ** 2).sum())
    print(f"  reference ({ref.estimator}, {ref.n_evals} evals, {time.perf_counter() - t:.0f}s): "
          f"relative stderr {math.sqrt(ref_noise):.4f}", flush=True)
    runs = {}  # method -> [(budget, [results over seeds])]
    for method in dict.fromkeys(["official", *methods]):
        budgets = [int(f * official_budget) for f in fracs]
        runs[method] = [(b, [estimate(game, b, method, seed=s) for s in range(seeds)])
                        for b in budgets if b >= min_budget(method, n)]
    # official at M = 100: its squared error is exactly ∝ 1/M in expectation, so every official run with
    # M >= 10 (plus runs at M = official_m) gives an unbiased estimate, measured and predicted by its stderr
    extra = [estimate(game, 2 * n * official_m, "official", seed=100 + s) for s in range(max(2, seeds // 2))]
    scaled = []
    for r in extra + [r for _, rs in runs["official"] for r in rs]:
        m = r.n_evals // (2 * n)
        if m >= 10:
            measured = rel_err2(r.values, ref.values) - ref_noise
            predicted = float((r.stderr ** 2).sum() / (ref.values ** 2).sum())
            scaled.append((measured + predicted) / 2 * m / 100)
    official_err2 = statistics.mean(scaled)
    print(f"  official at M=100 ({official_budget} evals): relative error {math.sqrt(official_err2):.4f} "
          f"(from {len(scaled)} runs with M >= 10, measured and stderr-predicted, scaled by M/100)", flush=True)
    rows = {}
    for method, per_budget in runs.items():
        budgets = [b for b, _ in per_budget]
        err2 = [max(statistics.mean(rel_err2(r.values, ref.values) for r in rs) - ref_noise, 1e-12)
                for _, rs in per_budget]
        z2 = statistics.mean(float(((r.values - ref.values) ** 2 / (r.stderr ** 2 + ref.stderr ** 2)
                                    .clamp_min(1e-30)).mean()) for r in per_budget[-1][1])
        match = match_fraction(budgets, err2, official_err2, official_budget)
        # a map's noise ceiling is 1 / (1 + its relative squared error): 0.9 at err^2 = 1/9
        ceiling = max(match_fraction(budgets, err2, 1 / 9, official_budget) * official_budget,
                      min_budget(method, n))
        rows[method] = {"budgets": budgets, "rel_err": [math.sqrt(e) for e in err2], "z2": z2,
                        "match_fraction": match, "evals_for_ceiling_0.9": ceiling}
        cells = "  ".join(f"{b:>6d}:{math.sqrt(e):.3f}" for b, e in zip(budgets, err2))
        print(f"  {method:11s} match official at {match:6.3f} of its budget (1/{1 / match:4.1f}); ceiling 0.9 at "
              f"{ceiling:9,.0f} evals; z^2 {z2:.2f} | budget:rel_err {cells}", flush=True)
    return {"grid": grid, "head": head, "official_budget": official_budget,
            "official_rel_err": math.sqrt(official_err2), "ref_rel_stderr": math.sqrt(ref_noise),
            "methods": rows, "_ref": ref}

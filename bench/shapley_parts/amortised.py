"""(f) the amortised explainer (FastSHAP) against per-image references on held-out frames."""

from __future__ import annotations

import time

import torch

from fst_ray.shapley import estimate
from fst_ray.shapley.amortised import explain, fit_explainer, sample_games
from fst_ray.shapley.estimate import image_seed
from shapley_parts.common import fake_rows, joint_games, load


def part_f(models: str, tables: str, pairs: int, test_images: int, ref_evals: int, epochs: int) -> dict:
    """The amortised explainer against per-image references on held-out frames (see the module docstring)."""
    grid, n = 16, 256
    loaded = load(models)
    t = time.perf_counter()
    train_x, train_games = joint_games(loaded, fake_rows(tables, "train"), grid)
    data = sample_games(train_games, pairs, torch.Generator().manual_seed(0))
    names = train_games[0].outputs
    print(f"  training data: {len(train_games)} fake training frames x {2 * pairs + 2} evaluations = "
          f"{data.n_evals:,} ({time.perf_counter() - t:.0f}s)", flush=True)
    t = time.perf_counter()
    explainer = fit_explainer(train_x, data, grid, epochs=epochs)
    print(f"  explainer fitted: best of {epochs} epochs on 10% of the frames held out: epoch {explainer.best_epoch} "
          f"(its objective there {explainer.holdout_loss:.3f} in units of each model's RMS gain; "
          f"{time.perf_counter() - t:.0f}s)", flush=True)
    rows = sorted(fake_rows(tables, "test"), key=lambda r: (r["compression"] != "c23", r["key"]))[:test_images]
    test_x, test_games = joint_games(loaded, rows, grid)
    t = time.perf_counter()
    refs = [estimate(g, ref_evals // 16, "antithetic", seed=image_seed(10_000, r["key"]))
            for g, r in zip(test_games, rows)]
    ends = torch.stack([g(torch.stack([torch.zeros(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool)]))
                        for g in test_games])
    maps = {"amortised": explain(explainer, test_x, ends[:, 0], ends[:, 1]),
            "efficiency only": ((ends[:, 1] - ends[:, 0]) / n)[:, None].expand(-1, n, -1)}
    budgets = (2560, 5120)
    for b in budgets:
        maps[f"adjusted @{b}"] = torch.stack([estimate(g, b, "adjusted", seed=image_seed(0, r["key"])).values
                                              for g, r in zip(test_games, rows)])
    print(f"  {len(test_games)} held-out fake test frames; references antithetic {refs[0].n_evals:,} evals each "
          f"({time.perf_counter() - t:.0f}s)", flush=True)
    ref = torch.stack([r.values for r in refs])
    ref_var = torch.stack([r.stderr ** 2 for r in refs]).sum((0, 1))
    energy = ((ref ** 2).sum((0, 1)) - ref_var).clamp_min(1e-300)
    err = {name: (((m - ref) ** 2).sum((0, 1)) - ref_var).clamp_min(0) / energy for name, m in maps.items()}
    out = {"train_frames": len(train_games), "train_evals": data.n_evals, "test_frames": len(test_games),
           "best_epoch": explainer.best_epoch, "holdout_loss": explainer.holdout_loss,
           "ref_evals": refs[0].n_evals, "models": list(names), "rel_error": {}, "adjusted_matches_at": {}}
    for name, e in err.items():
        out["rel_error"][name] = dict(zip(names, e.sqrt().tolist()))
        print(f"  {name:16s} relative error " + ", ".join(f"{k} {v:.3f}" for k, v in out["rel_error"][name].items()),
              flush=True)
    # err^2 ~ 1/budget for an unbiased estimator: the budget at which adjusted's error equals the explainer's
    match = (budgets[-1] * err[f"adjusted @{budgets[-1]}"] / err["amortised"].clamp_min(1e-12)).tolist()
    out["adjusted_matches_at"] = dict(zip(names, match))
    print("  adjusted matches the explainer at " + ", ".join(f"{k} {v:,.0f}" for k, v in zip(names, match))
          + " evaluations per image (the explainer: 2 evaluations and one forward pass)", flush=True)
    return out

"""Budgets to a target ceiling against fixed budgets, on trained models (explain.target_ceiling).

For each model file and fake test frame (one per video, up to ``--images``): ``--rounds`` rounds of ``--budget``
evaluations, each adding to both halves as the jobs do (:func:`fst_ray.shapley.estimate.map_rounds`), and an
independent reference map of ``--reference`` evaluations. A fixed budget of k rounds is the map after its first k
rounds; the target rule stops at the first round whose map's own ceiling (from its halves) reaches ``--target``.
A map *is* at the target when the square of its cosine with the reference is (the expected cosine of two
independent maps is the product of their cosines with the truth; the reference's own noise makes this strict).
Prints, per model and pooled: the rule's evaluations and the share of its maps at the target and of those
believed there (own ceiling ≥ target) that are not; each fixed budget's share; and the evaluations of the
smallest fixed budget whose share matches the rule's, over the rule's (goal: ≥ 2).

Then the same for the rule per model and batch (``--batch`` images of one model): every map of the batch stops
at the first round whose ceiling pooled over the batch's halves (what a reading's gate measures) reaches the
target. Which stops more reliably is read from what each rule promises against what the reference says: a map's
own ceiling against its cosine² with the reference, and a batch's pooled ceiling against its maps' mean cosine²
(mean absolute error, and the share of stops whose promise was not kept), each with a 95% bootstrap CI that
resamples images (a batch's images together).

    python bench/budget.py --tables runs/study/prepared --models .../source.pt .../target.pt .../det.pt
"""

from __future__ import annotations

import argparse

import numpy as np

from fst_ray import metrics
from fst_ray.markdown import md_table
from fst_ray.shapley.estimate import estimate, image_seed, map_rounds
from fst_ray.shapley.game import ImageGame
from fst_ray.shapley.run import load_models
from precision import explained, fake_frames


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", required=True)
    ap.add_argument("--models", nargs="+", required=True)
    ap.add_argument("--compression", default="raw")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--grid", type=int, default=4)
    ap.add_argument("--budget", type=int, default=120, help="evaluations per round")
    ap.add_argument("--rounds", type=int, default=8, help="rounds per map (fixed budgets: 1..rounds of them)")
    ap.add_argument("--reference", type=int, default=4096, help="evaluations of each reference map")
    ap.add_argument("--target", type=float, default=0.9)
    ap.add_argument("--batch", type=int, default=3, help="images per batch of the batch rule")
    ap.add_argument("--estimator", default="auto")
    ap.add_argument("--baseline", default="zero")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    models = load_models(a.models)
    rows = fake_frames(a.tables, a.compression, a.images, a.baseline, a.grid, a.seed)
    # per model: [image][round] (cosine² with the reference, own ceiling, evaluations so far)
    runs = {m.name: [] for m in models}
    halves = {m.name: [] for m in models}  # [image][round] (half a, half b)
    for row, image, fill in rows:
        targets = explained(models, row)
        for m in models:
            game = ImageGame(m.module, image, targets[m.name], grid=a.grid, baseline=fill)
            seed = image_seed(a.seed, f"{row['key']}/{m.sha256}")
            reference = metrics.centre(estimate(game, a.reference, a.estimator, seed=image_seed(seed, "ref"))
                                       .values.numpy())
            trace, parts = [], []
            for maps, spent in map_rounds(game, [""], seed, a.budget, a.estimator):
                phi = maps[""]
                trace.append((metrics.cosine(metrics.centre(phi["phi"].numpy()), reference) ** 2, phi["ceiling"],
                              spent))
                parts.append((phi["phi_a"].numpy(), phi["phi_b"].numpy()))
                if len(trace) == a.rounds:
                    break
            runs[m.name].append(trace)
            halves[m.name].append(parts)
    out, table = {}, []
    for name, traces in [*runs.items(), ("pooled", [t for ts in runs.values() for t in ts])]:
        t = np.array(traces)  # [image, round, (cos², ceiling, spent)]
        stop = np.array([next((k for k in range(a.rounds) if img[k, 1] >= a.target), a.rounds - 1) for img in t])
        at = t[np.arange(len(t)), stop]
        rule_share, rule_evals = float(np.mean(at[:, 0] >= a.target)), float(at[:, 2].sum())
        believed = at[:, 1] >= a.target
        false_stop = float(np.mean(at[believed, 0] < a.target)) if believed.any() else float("nan")
        fixed = [(k + 1, float(np.mean(t[:, k, 0] >= a.target)), float(t[:, k, 2].sum())) for k in range(a.rounds)]
        match = next(((k, e) for k, share, e in fixed if share >= rule_share), None)
        ratio = match[1] / rule_evals if match else float("nan")
        out[name] = {"rule": {"share": rule_share, "evaluations": rule_evals, "false_stops": false_stop},
                     "fixed": {k: {"share": s, "evaluations": e} for k, s, e in fixed}, "ratio": ratio}
        table.append((name, f"{rule_share:.2f}", f"{rule_evals / len(t):,.0f}", f"{false_stop:.2f}",
                      " ".join(f"{s:.2f}" for _, s, _ in fixed),
                      f"{match[0]} rounds" if match else f"more than {a.rounds} rounds",
                      f"{ratio:.2f}" if match else f"> {fixed[-1][2] / rule_evals:.2f}"))
    print(f"{len(rows)} fake test frames at {a.compression}, G = {a.grid}, rounds of {a.budget} evaluations "
          f"({a.estimator}, {a.baseline} baseline), reference {a.reference}; target ceiling {a.target}")
    print(md_table(["model", "rule: share at target", "rule: evaluations / map", "rule: stopped believing it "
                    "there, not there", "fixed 1..k rounds: share at target", "smallest fixed budget as good",
                    "its evaluations / the rule's (goal ≥ 2)"], table))
    out["batch"] = batch_rule(runs, halves, a.batch, a.target, a.rounds)
    print(f"\nthe rule per map vs per model and batch of {a.batch} images: what each promised at its stop against "
          "the reference")
    print(md_table(["rule", "stops", "evaluations / map", "share of maps at target",
                    "promise vs reference: mean |error|", "promises not kept"],
                   [(r, f"{v['stops']}", f"{v['evaluations_per_map']:,.0f}", f"{v['maps_at_target']:.2f}",
                     "{:.3f} [{:.3f}, {:.3f}]".format(v["promise_error"], *v["promise_error_ci"]),
                     "{:.2f} [{:.2f}, {:.2f}]".format(v["not_kept"], *v["not_kept_ci"]))
                    for r, v in out["batch"].items()]))
    return out


def batch_rule(runs: dict, halves: dict, batch: int, target: float, rounds: int) -> dict:
    """Per map against per model and batch: each rule's stops, evaluations, share of maps at the target, and how
    well what it promised at its stop (a map's own ceiling; a batch's pooled ceiling) matches the reference (a
    map's cosine² with it; a batch's mean cosine²): mean absolute error, share of stops at the target promised
    and not there."""
    per_map, per_batch = [], []  # (promised, actual, evaluations per map, maps at target [..], cluster)
    for name, traces in runs.items():
        t = np.array(traces)  # [image, round, (cos², ceiling, spent)]
        for i, img in enumerate(t):  # every model explains the same images in the same order: image i is a cluster
            k = next((k for k in range(rounds) if img[k, 1] >= target), rounds - 1)
            per_map.append((img[k, 1], img[k, 0], img[k, 2], [img[k, 0] >= target], i))
        for start in range(0, len(t), batch):
            idx = range(start, min(start + batch, len(t)))
            pooled = [metrics.noise_ceiling(np.stack([halves[name][i][k][0] for i in idx]),
                                            np.stack([halves[name][i][k][1] for i in idx]), centred=True)
                      for k in range(rounds)]
            k = next((k for k in range(rounds) if pooled[k] >= target), rounds - 1)
            per_batch.append((pooled[k], float(np.mean(t[list(idx), k, 0])), float(np.mean(t[list(idx), k, 2])),
                              list(t[list(idx), k, 0] >= target), start))
    out = {}
    for rule, stops in (("per map", per_map), ("per model and batch", per_batch)):
        promised, actual = np.array([s[0] for s in stops]), np.array([s[1] for s in stops])
        clusters = np.array([s[4] for s in stops])
        error, kept = np.abs(promised - actual), promised >= target
        broken = np.where(kept, actual < target, np.nan)  # a promise not kept; nan where none was made
        out[rule] = {"stops": len(stops), "evaluations_per_map": float(np.mean([s[2] for s in stops])),
                     "maps_at_target": float(np.mean([x for s in stops for x in s[3]])),
                     "promise_error": float(np.mean(error)),
                     "promise_error_ci": metrics.cluster_bootstrap_ci(error, clusters),
                     "not_kept": float(np.nanmean(broken)) if kept.any() else float("nan"),
                     "not_kept_ci": metrics.cluster_bootstrap_ci(broken, clusters) if kept.any()
                     else (float("nan"), float("nan"))}
    return out


if __name__ == "__main__":
    main()

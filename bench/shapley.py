"""Shapley engine benchmark, side by side in one run (CPU; a GPU too where one is present).

    python bench/shapley.py            # full: about 10 minutes on 2 busy cores
    python bench/shapley.py --quick    # about 3 minutes; fewer seeds and budgets
    python bench/shapley.py --parts a  # only part (a)
    python bench/shapley.py --parts ae --models runs/demo/work/models/tf_efficientnet_lite0-encoders-imagenet/models,runs/demo/work/models/tf_efficientnet_lite0-detectors-raw-imagenet/models \
        --tables runs/demo/prepared     # (a) also on trained encoders and detector (a fake test frame), and (e)
    python bench/shapley.py --quick --parts a --models-only --methods antithetic,adjusted --official-m 10 \
        --ref-evals 16384 --models … --tables …   # (a) on a large model only (resnet18 at 224 px) in a CPU run

(a) error vs budget: relative error ||phi - phi_ref|| / ||phi_ref|| (RMS over seeds) of every estimator at
    budgets that are fractions of the official estimator's 2 G^2 M (M = 100), on G = 4 (exact reference,
    2^16 evaluations) and G = 16 (reference: ``antithetic`` permutations at ``--ref-evals`` evaluations, an
    estimator none of the ranked regression estimators shares anything with; its own variance, known from its
    stderr, is subtracted from the squared errors). For each estimator: the fraction of the official
    budget at which it matches the official error at M = 100 (log-log interpolation of err^2 vs budget,
    slope -1 beyond the measured range), and the mean squared z-score (err / stderr)^2 at the largest
    budget (1 = honest stderr).
(b) masking overhead: evaluations/s of ImageGame vs the raw batched forward of the same model and batch
    (same inputs, interleaved repeats, median).
(c) captum's ShapleyValueSampling vs the estimator ``auto`` runs at 1/20 of the official budget, at equal error
    on G = 16: captum's error and wall time at a fixed number of permutations; our budget for the same error
    from (a)'s curve; both timed on the same model: the toy, and with ``--models`` each trained model.
(d) ShapleyPool with 1 vs 2 CPU actors (1 CPU each) on the same coalitions: evaluations/s.
(e) with ``--models``: what users pay for, on one fake test frame at raw/c23/c40 explained by the trained models
    together: the error of H1's Q gap and of H3's δ per model (raw and noise-corrected, maps made of two
    half-budget estimates as the jobs make them) against the readings of ``antithetic`` reference maps, per
    estimator and budget, and the evaluations each estimator needs for a noise ceiling of 0.9.
(f) with ``--models``: the amortised explainer (``fst_ray.shapley.amortised``, FastSHAP) of the trained models
    together, fitted on game evaluations of the fake training frames (``--amortised-pairs`` kernel pairs each),
    against ``antithetic`` reference maps of held-out fake test frames (``--ref-evals`` / 16 each, variance
    subtracted): its relative error per model, that of the efficiency-only map (each cell (v(N)-v(empty))/n:
    what the explainer must beat to have learnt anything) and of ``adjusted`` at 2,560 and 5,120 evaluations
    on the same frames, and the per-image budget at which ``adjusted`` would match the explainer.

Models: ``fst_ray.shapley.toy.toy_cnn`` on a 64 x 64 image: ``avg`` (conv stack, global average pooling,
linear: the shape of the project's timm encoders) for every part, and ``max`` (max pooling + MLP head:
a harder game) for (a); with ``--models``, (a) also runs on trained model files (each explaining its own class
of the first fake test frame of ``--tables``, as the Shapley job does).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/: the experiments' modules

from shapley_parts.actors import part_d  # noqa: E402
from shapley_parts.amortised import part_f  # noqa: E402
from shapley_parts.common import SAMPLED, trained_games  # noqa: E402
from shapley_parts.error_vs_budget import part_a  # noqa: E402
from shapley_parts.masking import part_b  # noqa: E402
from shapley_parts.readings import part_e  # noqa: E402
from shapley_parts.vs_captum import part_c  # noqa: E402

from fst_ray.shapley.estimate import choose  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer seeds and budgets (about 3 minutes)")
    ap.add_argument("--parts", default="abcdef", help="which parts to run, e.g. 'ab' ((e), (f) need --models)")
    ap.add_argument("--out", help="also write the numbers as JSON here")
    ap.add_argument("--ref-evals", type=int, default=None,
                    help="evaluations of the G=16 antithetic reference (default: 1,048,576; --quick 262,144)")
    ap.add_argument("--models", help="(a) also on these trained model files (a run's models/ folder; several comma-separated)")
    ap.add_argument("--tables", help="the ingest whose first fake test frame the trained models explain")
    ap.add_argument("--methods", default=",".join(SAMPLED), help="(a) the estimators it ranks (official always)")
    ap.add_argument("--official-m", type=int, default=None,
                    help="(a) M of the extra official runs that measure its M=100 error (>= 10; default: 50, --quick 25)")
    ap.add_argument("--models-only", action="store_true", help="(a) on the trained models only, not the toys (unless (c) runs: it times the toy)")
    ap.add_argument("--amortised-pairs", type=int, default=32, help="(f) kernel pairs per training frame")
    ap.add_argument("--amortised-epochs", type=int, default=60, help="(f) epochs of the explainer's fit")
    ap.add_argument("--amortised-test", type=int, default=8, help="(f) held-out test frames")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    q = args.quick
    seeds = 2 if q else 4
    fracs = [1 / 40, 1 / 20, 1 / 10] if q else [1 / 40, 1 / 20, 1 / 10, 1 / 4]
    ref_evals = args.ref_evals or (2 ** 18 if q else 2 ** 20)
    methods = args.methods.split(",")
    if "c" in args.parts:  # (c) times the estimator auto runs at 1/20
        methods = list(dict.fromkeys([*methods, choose(256, 2560)]))
    official_m = args.official_m or (25 if q else 50)
    if unknown := set(methods) - set(SAMPLED):
        ap.error(f"--methods: unknown {sorted(unknown)}; choose from {','.join(SAMPLED)}")
    if official_m < 10:
        ap.error("--official-m: at least 10 (runs with fewer permutations do not measure the M=100 error)")
    if args.models_only and not args.models:
        ap.error("--models-only needs --models")
    out: dict = {"quick": q, "torch_threads": torch.get_num_threads()}
    t0 = time.perf_counter()
    if "a" in args.parts or "c" in args.parts:
        print("(a) error vs budget (relative error; budgets as fractions of official's 2*G^2*100)", flush=True)
        out["a"] = []
        cases = [(4, "avg"), (16, "avg")] if q else [(4, "avg"), (4, "max"), (16, "avg"), (16, "max")]
        if "a" not in args.parts:  # (c) alone needs only the G=16 curve of the model it times
            cases = [(16, "avg")]
        elif args.models_only and "c" not in args.parts:
            cases = []
        for grid, head in cases:
            print(f" G={grid}, toy_cnn(head={head!r}):", flush=True)
            small = grid * grid <= 16  # exact reference, cheap: the full budget and twice the seeds
            out["a"].append(part_a(grid, head, fracs + [1.0] if small else fracs, 2 * seeds if small else seeds,
                                   ref_evals=ref_evals, official_m=official_m, methods=methods))
        if args.models and "a" in args.parts:
            for name, game in trained_games(args.models, args.tables, 16).items():
                print(f" G=16, trained {name}:", flush=True)
                out["a"].append(part_a(16, name, fracs, seeds, ref_evals=ref_evals, official_m=official_m,
                                       game=game, methods=methods))
    if "e" in args.parts and args.models:
        print("(e) what users pay for: H1's Q gap and H3's delta from maps at each budget vs from reference maps "
              "(RMS error over seeds, bias in brackets)", flush=True)
        out["e"] = part_e(args.models, args.tables, ["official", "antithetic", "adjusted"],
                          fracs[1:] if q else fracs[1:] + [0.5], seeds, ref_evals)
    if "f" in args.parts and args.models:
        print("(f) amortised explainer (FastSHAP) vs per-image references on held-out frames (G=16)", flush=True)
        out["f"] = part_f(args.models, args.tables, args.amortised_pairs, args.amortised_test, ref_evals,
                          args.amortised_epochs)
    if "b" in args.parts:
        print("(b) masking overhead", flush=True)
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        out["b"] = [part_b(16, batch, 5 if q else 10, d) for d in devices for batch in (64, 256)]
    if "c" in args.parts:
        print("(c) captum ShapleyValueSampling vs ours at equal error (G=16: toy_cnn avg, the trained models)", flush=True)
        a16 = next(r for r in out["a"] if r["grid"] == 16 and r["head"] == "avg")
        out["c"] = [part_c(a16, permutations=10 if q else 40, seeds=2 if q else 3)]
        for name, game in (trained_games(args.models, args.tables, 16) if args.models else {}).items():
            print(f" trained {name}:", flush=True)
            a = next((r for r in out["a"] if r["head"] == name), None) or part_a(
                16, name, fracs, seeds, ref_evals=ref_evals, official_m=official_m, game=game,
                methods=[choose(256, 2560)])
            out["c"].append(part_c(a, permutations=10 if q else 40, seeds=2 if q else 3, game=game))
    if "d" in args.parts:
        print("(d) ShapleyPool: 1 vs 2 CPU actors (G=16)", flush=True)
        out["d"] = part_d(16, 4096 if q else 16384, 3 if q else 5)
    print(f"\nsummary ({time.perf_counter() - t0:.0f}s, {'quick' if q else 'full'}):")
    for r in out.get("a", []):
        best = min(r["methods"], key=lambda m: r["methods"][m]["match_fraction"])
        fr = r["methods"][best]["match_fraction"]
        print(f"  (a) G={r['grid']:2d} {r['head']}: official M=100 rel err {r['official_rel_err']:.3f}; best {best} "
              f"matches it with {fr:.3f} of the evaluations (1/{1 / fr:.1f}; target 1/20: "
              f"{'met' if fr <= 0.05 else 'missed'})")
    for r in out.get("b", []):
        print(f"  (b) [{r['device']}] batch {r['batch']}: masking overhead {100 * r['overhead']:.1f}% (target <= 15%)")
    for method, per_budget in out.get("e", {}).get("methods", {}).items():
        if per_budget:
            last = per_budget[-1]
            print(f"  (e) {method} at {last['budget']}: " + ", ".join(f"{k} error {v:.3f}" for k, v in
                                                                   last["rms_error"].items()))
    for r in out.get("c", []):
        print(f"  (c) {r['head']}: captum / ours wall time at equal error: {r['speedup']:.1f}x (target >= 5x)")
    if "d" in out:
        print(f"  (d) 2 actors / 1 actor: {out['d']['speedup']:.2f}x (target >= 1.7x)")
    for r in out.get("a", []):
        r.pop("_ref", None)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()

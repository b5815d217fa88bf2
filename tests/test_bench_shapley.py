"""``bench/shapley.py`` (e) and (f) run on trained-model files and a frames table (here tiny untrained timm models on a
toy table, small budgets: the numbers it measures come from the bench run in docs/benchmarks.md, not from here)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from fst_ray.models import create_model, save_model
from fst_ray.train.toy import write_toy_frames

CLASSES = ["000", "001", "002", "003"]


@pytest.fixture()
def bench_and_models(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_shapley", Path(__file__).parents[1] / "bench" / "shapley.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    data = str(tmp_path / "prepared")
    write_toy_frames(data, identities=4, frames=1, size=32, compressions=("raw", "c23", "c40"))
    torch.manual_seed(0)  # the same untrained models every run
    for role in ("det", "source", "target"):
        n = 2 if role == "det" else len(CLASSES)
        save_model(str(tmp_path / "models" / f"{role}.pt"), create_model(role, "test_resnet", n), role=role,
                   arch="test_resnet", num_classes=n, classes=None if role == "det" else CLASSES,
                   metadata={"image_size": 24})
    return bench, str(tmp_path / "models"), data


@pytest.mark.slow
def test_part_e_reads_q_and_delta_from_every_estimator(bench_and_models):
    bench, models, data = bench_and_models
    out = bench.part_e(models, data, ["official", "adjusted"], fracs=[0.07], seeds=1,
                       ref_evals=2048)
    assert out["frame"].split("/")[1] == "c23" and sorted(out["models"]) == ["det", "source", "target"]
    assert set(out["reference"]) == {"q_gap", "delta det", "delta source", "delta target"}
    for method in ("official", "adjusted"):
        (row,) = out["methods"][method]
        assert row["budget"] == int(0.07 * 2 * 256 * 100)
        assert set(row["rms_error"]) == {"q_gap", "q_gap corrected"} | {
            f"delta {m}{c}" for m in ("det", "source", "target") for c in ("", " corrected")}
        assert all(math.isfinite(v) and v >= 0 for v in row["rms_error"].values())
        assert set(row["evals_for_ceiling_0.9"]) == {"det", "source", "target"}
        assert all(v >= 0 for v in row["evals_for_ceiling_0.9"].values())  # 0: its maps are exact already


@pytest.mark.slow
def test_part_f_measures_the_amortised_explainer_against_references(bench_and_models):
    bench, models, data = bench_and_models
    out = bench.part_f(models, data, pairs=4, test_images=2, ref_evals=16 * 1024, epochs=1)
    assert out["train_frames"] > 0 and out["train_evals"] == out["train_frames"] * 10 and out["test_frames"] == 2
    assert set(out["rel_error"]) == {"amortised", "efficiency only", "adjusted @2560", "adjusted @5120"}
    for errors in out["rel_error"].values():
        assert sorted(errors) == ["det", "source", "target"] and all(math.isfinite(v) and v >= 0
                                                                   for v in errors.values())
    assert all(v >= 0 for v in out["adjusted_matches_at"].values())


@pytest.mark.slow
def test_part_a_on_one_model_file_only_ranks_the_methods_asked(bench_and_models, tmp_path):
    bench, models, data = bench_and_models
    out = tmp_path / "a.json"
    bench.main(["--quick", "--parts", "a", "--models-only", "--methods", "adjusted", "--official-m", "10",
                "--ref-evals", "2048", "--models", f"{models}/det.pt", "--tables", data, "--out", str(out)])
    (row,) = json.loads(out.read_text())["a"]  # no toy game: the one model file only
    assert row["head"].startswith("det (") and sorted(row["methods"]) == ["adjusted", "official"]
    assert row["methods"]["adjusted"]["budgets"] == [2560, 5120]  # 1,280 is under adjusted's minimum
    assert math.isfinite(row["official_rel_err"]) and row["official_rel_err"] > 0

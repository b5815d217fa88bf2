"""``bench/budget.py`` on a toy frames table and tiny untrained models (its numbers come from the bench run in
docs/benchmarks.md, not from here): both stop rules, per map and per model and batch, are measured and reported."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from fst_ray.models import create_model, save_model
from fst_ray.train.toy import write_toy_frames

BENCH = Path(__file__).parents[1] / "bench"


@pytest.mark.slow
def test_budget_bench_measures_both_stop_rules(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))  # the bench imports its sibling bench/precision.py
    spec = importlib.util.spec_from_file_location("bench_budget", BENCH / "budget.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    data = str(tmp_path / "prepared")
    table = write_toy_frames(data, identities=6, frames=4, size=32, compressions=("raw",))
    torch.manual_seed(0)
    ids = sorted(set(table["source_id"].to_pylist()))
    models = []
    for role in ("det", "source"):
        n = 2 if role == "det" else len(ids)
        models.append(str(tmp_path / f"{role}.pt"))
        save_model(models[-1], create_model(role, "test_resnet", n), role=role, arch="test_resnet", num_classes=n,
                   classes=None if role == "det" else ids, metadata={"image_size": 32})
    out = bench.main(["--tables", data, "--models", *models, "--images", "4", "--grid", "2", "--budget", "16",
                      "--rounds", "3", "--reference", "64", "--estimator", "permutation", "--batch", "2"])
    rules = out["batch"]
    assert set(rules) == {"per map", "per model and batch"}
    assert rules["per map"]["stops"] == 2 * rules["per model and batch"]["stops"] > 0  # batches of 2 images
    for r in rules.values():
        assert 0 <= r["maps_at_target"] <= 1 and r["promise_error"] >= 0 and r["evaluations_per_map"] >= 16
        lo, hi = r["promise_error_ci"]
        assert lo <= r["promise_error"] <= hi

"""``bench/gpu.py`` is a prepared script for a machine with a GPU; it runs here on the CPU, small, so that it is
known to run when a GPU is lent (its rates are measured there, not here)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest


@pytest.mark.slow
def test_gpu_bench_runs_every_part_on_the_cpu(ray_session, tmp_path):
    spec = importlib.util.spec_from_file_location("bench_gpu", Path(__file__).parents[1] / "bench" / "gpu.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    report = bench.main(["--device", "cpu", "--archs", "test_resnet", "--size", "32", "--batch", "8",
                         "--repeats", "1", "--map-budget", "1600", "--json", str(tmp_path / "gpu.json")])
    r = report["archs"]["test_resnet"]
    for setting in ("fp32", "bf16", "bf16+channels_last"):
        assert r["inference"][setting]["forward_per_s"] > 0 and r["inference"][setting]["evals_per_s"] > 0
    assert r["pool_evals_per_s"] > 0
    for method in ("permutation", "antithetic", "adjusted"):
        assert r["map"][method]["evals_per_s"] > 0 and 0 <= r["map"][method]["outside_game"] < 1
    assert r["train"]["finite"] and not r["train"]["amp"] and all(math.isfinite(v) for v in r["train"]["loss"].values())
    assert (tmp_path / "gpu.json").exists()

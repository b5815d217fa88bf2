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


@pytest.mark.slow
def test_the_gpu_run_script_runs_its_stages_on_the_cpu_at_a_tiny_size(ray_session, tmp_path):
    """``bench/gpu_run.py`` with configs/gpu.yaml's stages (corpus, ingest, H1, H3; maps to a target ceiling) at a
    tiny size: every stage timed, every map's cost and ceiling summarised, the readings and the JSON written."""
    spec = importlib.util.spec_from_file_location("bench_gpu_run", Path(__file__).parents[1] / "bench" / "gpu_run.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    tiny = ["--output", str(tmp_path / "run"), "--json", str(tmp_path / "run.json"),
            "--synthetic.identities", "8", "--synthetic.frames", "4", "--synthetic.size", "32",
            "--synthetic.methods", "Deepfakes,FaceSwap", "--no-synthetic.contact-sheet",
            "--hypothesis.archs", "test_resnet", "--hypothesis.prepare.frames-per-video", "2",
            "--hypothesis.prepare.size", "32", "--no-hypothesis.train.gpu", "--hypothesis.train.epochs", "1",
            "--hypothesis.train.backend", "local",  # Ray Train on a GPU is what the run itself checks
            "--hypothesis.train.batch-size", "16", "--hypothesis.train.image-size", "32",
            "--hypothesis.detector-epochs", "1", "--hypothesis.explain.images-per-method", "1",
            "--hypothesis.explain.grid", "2", "--hypothesis.explain.budget", "32",
            "--hypothesis.explain.max-budget", "128", "--hypothesis.explain.baseline", "zero",
            "--hypothesis.explain.batch-size", "64", "--hypothesis.explain.actors", "1", "--hypothesis.n-boot", "200"]
    report = bench.main(tiny)
    assert list(report["stages"]) == ["corpus", "ingest", "h1", "h3"]
    assert all(s["seconds"] > 0 and s["gpu"] is None for s in report["stages"].values())
    assert report["stages"]["h1"]["trained"] and report["stages"]["h1"]["shapley"][0]["evals_per_s"] > 0
    assert report["config"]["hypothesis"]["explain"]["target_ceiling"] == 0.9  # configs/gpu.yaml's rule, kept
    # halves of 16 = the 2^4 coalitions: exact, so one round reaches the ceiling and no map is capped
    for role in ("det", "source", "target"):
        m = report["maps"][role]
        assert m["maps"] >= 2 and m["capped"] == 0 and m["at_target"] == 1 and m["evals_max"] <= 128
    assert {r["hypothesis"] for r in report["readings"]} == {"H1", "H3"}
    assert (tmp_path / "run.json").exists()

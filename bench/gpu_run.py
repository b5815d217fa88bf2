"""A paper-size run on one GPU, timed: the corpus, the ingest, then H1 and H3 (configs/gpu.yaml), with each stage's
wall time and GPU utilisation, the training runs' times, the Shapley evaluations/s, every map's spent budget and
reached noise ceiling, and the readings; written to ``--json`` (default bench/measured/gpu-run-<device>-<date>.json).

    python bench/gpu_run.py [--config configs/gpu.yaml] [--output runs/gpu] [--json FILE] [any demo flag]
    ray job submit --working-dir . --entrypoint-num-gpus 1 -- python bench/gpu_run.py

Every flag of jobs/demo.py overrides the config (``--hypothesis.archs test_resnet`` ...): tests/test_bench_gpu.py
runs this script on the CPU at a tiny size, so that it is known to run when a GPU is lent. GPU utilisation is
sampled once a second with ``nvidia-smi`` where there is one (null elsewhere).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fst_ray import cli, storage, tables  # noqa: E402
from fst_ray.demo import HYPOTHESES, DemoConfig, ensure_corpus, hypothesis_config  # noqa: E402
from fst_ray.hypotheses import render  # noqa: E402
from fst_ray.hypotheses.pipeline import ensure_tables  # noqa: E402
from fst_ray.layout import RunLayout  # noqa: E402

TRAINED = re.compile(r"trained (?:\S+/)?(\S+) in (\d+) s")  # the run folder's name
SHAPLEY = re.compile(r"shapley: (\d+) maps of (\d+) images, (\d+) evaluations/s")


class GpuSampler:
    """``nvidia-smi``'s utilisation (%) and memory (MiB), sampled once a second in a thread; empty without one."""

    def __init__(self):
        self.samples: list[tuple[float, float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True) if shutil.which("nvidia-smi") else None

    def _run(self):
        while not self._stop.is_set():
            out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
                                  "--format=csv,noheader,nounits"], capture_output=True, text=True).stdout
            with contextlib.suppress(ValueError, IndexError):
                util, mem = (float(v) for v in out.splitlines()[0].split(","))
                self.samples.append((time.monotonic(), util, mem))
            self._stop.wait(1.0)

    def __enter__(self):
        if self._thread:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread:
            self._thread.join()

    def window(self, start: float, end: float) -> dict | None:
        """Mean and peak utilisation (%) and peak memory (MiB) between two ``time.monotonic()`` readings."""
        inside = [(u, m) for t, u, m in self.samples if start <= t <= end]
        if not inside:
            return None
        util = [u for u, _ in inside]
        return {"util_mean": float(np.mean(util)), "util_max": max(util), "memory_max_mib": max(m for _, m in inside)}


class _Tee(io.TextIOBase):
    """Writes to the console and keeps a copy (the stage's progress lines are what the timings are read from)."""

    def __init__(self, out):
        self.out, self.kept = out, io.StringIO()

    def write(self, s):
        self.kept.write(s)
        return self.out.write(s)

    def flush(self):
        self.out.flush()


def timed_stage(name: str, fn, gpu: GpuSampler, stages: dict):
    """Run ``fn()``, recording its wall seconds, GPU window and the training and Shapley lines it printed."""
    tee = _Tee(sys.stdout)
    start = time.monotonic()
    with contextlib.redirect_stdout(tee):
        result = fn()
    end = time.monotonic()
    text = tee.kept.getvalue()
    stages[name] = {"seconds": end - start, "gpu": gpu.window(start, end),
                    "trained": {run: int(s) for run, s in TRAINED.findall(text)},
                    "shapley": [{"maps": int(m), "images": int(i), "evals_per_s": int(r)}
                                for m, i, r in SHAPLEY.findall(text)]}
    print(f"== {name}: {end - start:.0f} s", flush=True)
    return result


def map_costs(cfg: DemoConfig) -> dict[str, dict]:
    """Per role, over every map the run made: maps, evaluations spent (median, max), reached ceiling (median,
    share at the target) and the share stopped at ``max_budget``."""
    work = RunLayout.under(cfg.output).work
    folders = sorted({storage.parent(uri) for uri, _ in storage.list_files(storage.join(work, "shapley"))
                      if uri.endswith(".parquet")})
    rows = [tables.read(f, "shapley", ["role", "n_evals", "ceiling", "capped"]).to_pylist() for f in folders]
    target = cfg.hypothesis.explain.target_ceiling
    out = {}
    for role in sorted({r["role"] for part in rows for r in part}):
        mine = [r for part in rows for r in part if r["role"] == role]
        evals = [r["n_evals"] for r in mine]
        ceilings = [r["ceiling"] for r in mine if r["ceiling"] is not None and np.isfinite(r["ceiling"])]
        out[role] = {"maps": len(mine), "evals_median": float(np.median(evals)), "evals_max": int(max(evals)),
                     "ceiling_median": float(np.median(ceilings)) if ceilings else None,
                     "at_target": (float(np.mean([c >= target for c in ceilings])) if ceilings and target else None),
                     "capped": float(np.mean([bool(r["capped"]) for r in mine]))}
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--json", default=None)
    args, rest = ap.parse_known_args(argv)
    if not any(a == "--config" or a.startswith("--config=") for a in rest):
        rest = ["--config", str(REPO / "configs" / "gpu.yaml"), *rest]
    if not any(a == "--output" or a.startswith("--output=") for a in rest):
        rest = ["--output", "runs/gpu", *rest]
    cfg = cli.parse(DemoConfig, __doc__, rest)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    report = {"device": device, "torch": torch.__version__, "date": datetime.date.today().isoformat(),
              "config": cfg.model_dump(mode="json"), "stages": {}}
    readings = []
    with GpuSampler() as gpu:
        start = time.monotonic()
        timed_stage("corpus", lambda: ensure_corpus(cfg), gpu, report["stages"])
        timed_stage("ingest", lambda: ensure_tables(hypothesis_config(cfg, cfg.run[0])), gpu, report["stages"])
        for name in cfg.run:
            result = timed_stage(name, lambda: HYPOTHESES[name][1](hypothesis_config(cfg, name)), gpu,
                                 report["stages"])
            readings += result.readings
        report["seconds"] = time.monotonic() - start
        report["gpu"] = gpu.window(start, time.monotonic())
    report["maps"] = map_costs(cfg)
    report["readings"] = [r.model_dump(mode="json") for r in readings]
    found = render.verdict_table(readings)
    slug = re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-")
    path = Path(args.json or REPO / "bench" / "measured" / f"gpu-run-{slug}-{report['date']}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1))
    print(f"\n{device}: {report['seconds']:.0f} s in all")
    for name, s in report["stages"].items():
        rates = ", ".join(f"{x['evals_per_s']:,} evaluations/s" for x in s["shapley"])
        util = f", GPU {s['gpu']['util_mean']:.0f}% mean" if s["gpu"] else ""
        print(f"  {name:7s} {s['seconds']:6.0f} s{util}{'; ' + rates if rates else ''}")
    for role, m in report["maps"].items():
        print(f"  maps of {role}: {m['maps']}, median {m['evals_median']:,.0f} evaluations, median ceiling "
              f"{m['ceiling_median'] if m['ceiling_median'] is None else round(m['ceiling_median'], 2)}, "
              f"{m['capped']:.0%} capped")
    print("\n".join(found))
    print(f"-> {path}")
    return report


if __name__ == "__main__":
    main()

"""Known answers: corpora whose truth is planted, run end to end, and the verdicts fst-ray reads from them.

Each scenario is ``configs/known_answers.yaml`` plus one ``synthetic.plant`` (:mod:`fst_ray.synth.plant`: every fake
made clean by its method, its only evidence the plant). The harness runs the job users run on it,
``jobs/demo.py`` (corpus → ingest → training → Shapley maps → ``h1/result.json``, ``h3/result.json``), reads the
verdicts from the results (the readings are data) and compares each with the answer the plant implies, written
down in :data:`SCENARIOS` before any run. It prints one table: scenario, hypothesis, expected, read, estimate and
CI, the detector's pooled centred noise ceiling, its test AUC at raw, the scenario's time.

    python bench/known_answers.py                                  # every scenario
    python bench/known_answers.py --scenarios seam_fine --output runs/known_answers

A scenario already run under ``--output`` with the same config is read again, not re-run (its config changed:
it is run again; the demo job then remakes what the change touches). The exit
status is 1 when a verdict is the opposite of the planted one (the worst outcome), else 0; misses that read
"inconclusive" are reported, not hidden.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from fst_ray.markdown import md_table

REPO = Path(__file__).resolve().parents[1]
BASE = REPO / "configs" / "known_answers.yaml"
#: what a planted answer admits: a hypothesis that must hold reads "supports"; one that must fail reads
#: "contradicts" (H1: the gap's sign is planted) or anything but "supports" (H3: a detector as stable as the
#: encoders may read inconclusive or contradicts); a null reads "inconclusive"
SUPPORTS, CONTRADICTS, NOT_SUPPORTS, NULL = "supports", "contradicts", "not supports", "inconclusive"
OPPOSITE = {SUPPORTS: {"contradicts"}, CONTRADICTS: {"supports"}, NOT_SUPPORTS: {"supports"},
            NULL: {"supports", "contradicts"}}


@dataclass(frozen=True)
class Scenario:
    plant: dict
    expected: dict[str, str]  # hypothesis -> SUPPORTS / CONTRADICTS / NOT_SUPPORTS / NULL
    why: dict[str, str]  # hypothesis -> why the answer is what it is, from how the corpus is built


SCENARIOS = {
    "seam_fine": Scenario(
        plant={"region": "seam", "pattern": "fine"},
        expected={"H1": SUPPORTS, "H3": SUPPORTS},
        why={"H1": "the only evidence is a ring at the blend edge (face rim, jaw): not the scene the source encoder "
                   "reads, not the face features the target encoder reads, so the detector's top cells avoid theirs",
             "H3": "period-4 stripes, which H.264 at c40 removes (tests/test_synth.py): the detector's "
                   "evidence is gone at c40, the encoders' scene and face are not"}),
    "features_coarse": Scenario(
        plant={"region": "features", "pattern": "coarse"},
        expected={"H1": CONTRADICTS, "H3": NOT_SUPPORTS},
        why={"H1": "the only evidence is a colour cast on the swapped-in face's eyes and nose, the cells that carry "
                   "the target's identity: the detector's top cells are the target encoder's",
             "H3": "a smooth colour cast survives c40 (tests/test_synth.py): the detector's evidence stays where "
                   "it was, as the encoders' does"}),
    "frame_blotches": Scenario(
        plant={"region": "frame", "pattern": "blotches"},
        expected={"H1": NULL, "H3": NOT_SUPPORTS},
        why={"H1": "a null: the blotches cover every pixel alike, so no cell holds more evidence than another and "
                   "the detector's map has no place to prefer or avoid",
             "H3": "a coarse grid that c40 keeps (tests/test_synth.py): nothing the detector reads is removed by "
                   "compression"}),
    "patch_fine": Scenario(
        plant={"region": "patch", "pattern": "fine"},
        expected={"H1": NULL, "H3": SUPPORTS},
        why={"H1": "a null for the map: the only evidence is a small disc of stripes at a place of the aligned crop "
                   "drawn per video apart from the face, so the detector's top cells are as likely to be any cells "
                   "as the shuffled baseline's",
             "H3": "period-4 stripes, which H.264 at c40 removes: the detector's evidence is gone at c40, the "
                   "encoders' scene and face are not"}),
}


def scenario_config(name: str) -> str:
    """The scenario's demo config (the base plus its plant), as YAML."""
    cfg = yaml.safe_load(BASE.read_text())
    cfg["synthetic"]["plant"] = SCENARIOS[name].plant
    return yaml.safe_dump(cfg, sort_keys=False)


def run_scenario(name: str, root: Path) -> float | None:
    """Run ``jobs/demo.py`` on scenario ``name`` under ``root/name`` unless results made with the same config are
    there; seconds taken (``None``: read from an earlier run)."""
    out = root / name
    config, text = out / "config.yaml", scenario_config(name)
    if config.exists() and config.read_text() == text and all(
            (out / h / "result.json").exists() for h in ("h1", "h3")):
        return None
    out.mkdir(parents=True, exist_ok=True)
    config.write_text(text)
    t0 = time.perf_counter()
    with open(out / "log.txt", "w") as log:
        rc = subprocess.run([sys.executable, str(REPO / "jobs" / "demo.py"), "--config", str(config),
                             "--output", str(out)], stdout=log, stderr=subprocess.STDOUT, cwd=REPO).returncode
    seconds = time.perf_counter() - t0
    (out / "seconds.txt").write_text(f"{seconds:.0f}\n")
    if rc:
        raise SystemExit(f"scenario {name}: jobs/demo.py exited {rc}; see {out / 'log.txt'}")
    return seconds


def matches(expected: str, verdict: str) -> bool:
    """A verdict reads the planted answer (a verdict not made — not read, too noisy — never does)."""
    return verdict in ("inconclusive", "contradicts") if expected == NOT_SUPPORTS else verdict == expected


def rows(name: str, root: Path) -> list[dict]:
    """One row per hypothesis and method of scenario ``name``'s results."""
    out = root / name
    seconds = (out / "seconds.txt").read_text().strip() if (out / "seconds.txt").exists() else "?"
    h1 = json.loads((out / "h1" / "result.json").read_text())
    h3 = json.loads((out / "h3" / "result.json").read_text())
    table = []
    for result in (h1, h3):
        for r in result["readings"]:
            hyp, method = r["hypothesis"], r["method"]
            if hyp == "H1":
                ceiling = h1["q"][method][r["model"]]["noise_ceiling"].get("det", {}).get("centred")
            else:
                ceiling = min((c["centred"] for c in h3["noise_ceiling"].get("detector", {}).values()), default=None)
            expected = SCENARIOS[name].expected[hyp]
            table.append(dict(scenario=name, hypothesis=hyp, method=method, expected=expected, read=r["verdict"],
                              estimate=r["estimate"], ci=r["ci"], ceiling=ceiling,
                              auc=h3["auc"].get(method, {}).get("raw", {}).get("detector"), seconds=seconds,
                              ok=matches(expected, r["verdict"]), opposite=r["verdict"] in OPPOSITE[expected],
                              why=r["why"]))
    return table


def _num(v, fmt: str = "{:+.3f}") -> str:
    return "–" if v is None else fmt.format(v)


def render(table: list[dict]) -> str:
    rows = []
    for t in table:
        mark = "" if t["ok"] else (" ✗ opposite" if t["opposite"] else " ✗ miss")
        ci = "" if t["ci"] is None else f" [{t['ci'][0]:+.3f}, {t['ci'][1]:+.3f}]"
        rows.append((t["scenario"], f"{t['hypothesis']} {t['method']}", t["expected"], f"**{t['read']}**{mark}",
                     f"{_num(t['estimate'])}{ci}", _num(t["ceiling"], "{:.2f}"), _num(t["auc"], "{:.2f}"),
                     t["seconds"]))
    right = sum(t["ok"] for t in table)
    return (md_table(["scenario", "hypothesis", "expected", "read", "estimate [CI]", "detector ceiling",
                      "detector AUC (raw)", "time (s)"], rows)
            + f"\n\n{right} of {len(table)} planted answers read correctly; "
            f"{sum(t['opposite'] for t in table)} read as their opposite.")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, of {', '.join(SCENARIOS)}")
    ap.add_argument("--output", default="runs/known_answers", help="root folder of the scenarios' runs")
    a = ap.parse_args(argv)
    names = [s.strip() for s in a.scenarios.split(",") if s.strip()]
    unknown = [s for s in names if s not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    root = Path(a.output)
    for name in names:
        for hyp, why in SCENARIOS[name].why.items():
            print(f"{name} {hyp}: expected {SCENARIOS[name].expected[hyp]}: {why}", flush=True)
        seconds = run_scenario(name, root)
        print(f"{name}: " + ("read from an earlier run" if seconds is None else f"ran in {seconds:.0f} s"),
              flush=True)
    table = [row for name in names for row in rows(name, root)]
    text = render(table)
    print("\n" + text)
    (root / "table.md").write_text(text + "\n")
    for t in table:
        if not t["ok"]:
            print(f"- {t['scenario']} {t['hypothesis']} {t['method']}: read {t['read']} ({t['why']})")
    return 1 if any(t["opposite"] for t in table) else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

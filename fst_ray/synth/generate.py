"""Ray layer of the synthetic corpus: one task per source identity (its original and its fakes)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import ray
from tqdm import tqdm

from fst_ray import storage
from fst_ray.runtime import init_ray
from fst_ray.synth import corpus
from fst_ray.synth.config import SynthConfig


@dataclass
class SynthSummary:
    output: str
    originals: int
    fakes: int
    files: int
    bytes: int
    seconds: float
    contact_sheet: str | None

    def __str__(self) -> str:
        lines = [
            "synthetic FF++ corpus",
            f"  output        {self.output}",
            f"  originals     {self.originals}",
            f"  fakes         {self.fakes}",
            f"  files         {self.files} ({self.bytes / 2**20:.1f} MiB)",
            f"  time          {self.seconds:.1f} s",
        ]
        if self.contact_sheet:
            lines.append(f"  contact sheet {self.contact_sheet}")
        return "\n".join(lines)


@ray.remote(num_cpus=1, max_retries=2)
def _write_group(cfg: SynthConfig, plan: corpus.CorpusPlan, source: str, preview: bool) -> corpus.GroupResult:
    return corpus.write_group(cfg, plan, source, preview)


def generate_corpus(cfg: SynthConfig) -> SynthSummary:
    """Generate and write the corpus described by ``cfg`` on the current Ray cluster (started if needed)."""
    init_ray()
    start = time.perf_counter()
    plan = corpus.plan_corpus(cfg)
    example = plan.splits["test"][0][0] if plan.splits["test"] else plan.ids[0]
    pending = [_write_group.remote(cfg, plan, s, s == example) for s in plan.ids]
    results = []
    with tqdm(total=len(pending), desc="videos by source", unit="source") as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            results.extend(ray.get(done))
            bar.update(len(done))
    corpus.write_metadata(cfg, plan, results)
    sheet = None
    if cfg.contact_sheet:
        sheet = storage.join(cfg.output, "contact_sheet.png")
        storage.write_bytes(sheet, corpus.contact_sheet(cfg, plan, results, example))
    return SynthSummary(
        output=cfg.output, originals=len(plan.ids), fakes=len(plan.ids) * len(cfg.methods),
        files=sum(r.files for r in results), bytes=sum(r.bytes for r in results),
        seconds=time.perf_counter() - start, contact_sheet=sheet,
    )

"""The demo: every stage of the pipeline on the embedded default, local Ray and local files.

``python jobs/demo.py --output runs/demo`` writes the synthetic corpus to ``<output>/data``, the ingest's
tables to ``<output>/prepared``, models and Shapley maps to ``<output>/work``, H1, H2 and H3 to
``<output>/{h1,h2,h3}`` and a ``<output>/report.md`` that opens with every verdict (one table, hypothesis ×
method) and links their reports. Stages whose outputs already exist are
skipped, so a re-run is cheap.
"""

from __future__ import annotations

import json
import time

from pydantic import Field, ValidationError, field_validator

from fst_ray import storage
from fst_ray.config import JobConfig, merge, register_config
from fst_ray.hypotheses import render
from fst_ray.hypotheses.config import DEMO_METHODS, HypothesisConfig
from fst_ray.hypotheses.h1 import run_h1
from fst_ray.hypotheses.h2 import run_h2
from fst_ray.hypotheses.h3 import run_h3
from fst_ray.layout import RunLayout
from fst_ray.synth.config import SynthConfig
from fst_ray.synth.generate import generate_corpus

#: the demo's corpus, sized with HypothesisConfig's defaults to read every hypothesis in minutes on 2 cores:
#: frames at 96 px for 64 px crops (about 1:1: the finest artifacts survive), a dozen test identities to resample
DEMO_CORPUS = dict(identities=32, frames=8, size=96, methods=list(DEMO_METHODS), split_fractions=(0.5, 0.1, 0.4))

HYPOTHESES = {"h1": (render.H1_TITLE, run_h1), "h2": (render.H2_TITLE, run_h2), "h3": (render.H3_TITLE, run_h3)}


@register_config("demo")
class DemoConfig(JobConfig):
    output: str = Field("runs/demo", description="root URI of every demo output")
    synthetic: SynthConfig = Field(default_factory=lambda: SynthConfig(**DEMO_CORPUS),
                                   description="the corpus; its `output` is ignored")
    hypothesis: HypothesisConfig = Field(default_factory=HypothesisConfig,
                                         description="H1-H3 settings; input, tables, work and output are "
                                                     "placed under `output`")
    run: list[str] = Field(default_factory=lambda: list(HYPOTHESES), description="which of h1, h2, h3 to run")

    @field_validator("synthetic", mode="before")
    @classmethod
    def _changes_the_demo_corpus(cls, v):
        """A ``synthetic`` block changes the demo's corpus: the keys it leaves out keep :data:`DEMO_CORPUS`'s
        values (as a ``hypothesis`` block's keep HypothesisConfig's defaults, which are the demo's)."""
        return merge(DEMO_CORPUS, v) if isinstance(v, dict) else v


def _corpus_is_current(cfg: SynthConfig) -> bool:
    """A corpus made with this config is there (wherever it was made: a copied run folder is reused)."""
    meta = storage.join(cfg.output, "synthetic.json")
    if not storage.exists(meta):
        return False
    stored = json.loads(storage.read_bytes(meta))["config"]
    try:  # fields an older fst-ray did not record take their defaults, as they did then
        have = SynthConfig.model_validate({**stored, "output": cfg.output})
    except ValidationError:
        return False
    return have.model_dump(mode="json") == cfg.model_dump(mode="json")


def ensure_corpus(cfg: DemoConfig) -> str:
    """Make the demo's corpus under ``cfg.output`` unless one made with the same config is there; a summary."""
    layout = RunLayout.under(cfg.output)
    synth = cfg.synthetic.model_copy(update={"output": layout.data})
    if _corpus_is_current(synth):
        return f"synthetic FF++ corpus\n  up to date at {synth.output} (skipped)"
    for stale in (layout.tables, layout.work):  # made from another corpus: never reuse its frames, models or maps
        storage.delete_dir(stale)
    return str(generate_corpus(synth))


def hypothesis_config(cfg: DemoConfig, name: str) -> HypothesisConfig:
    """The settings hypothesis ``name`` (h1, h2, h3) runs with: ``cfg.hypothesis`` placed under ``cfg.output``."""
    layout = RunLayout.under(cfg.output)
    return cfg.hypothesis.model_copy(update=dict(
        input=layout.data, tables=layout.tables, work=layout.work, output=layout.job_output(name),
        methods=cfg.synthetic.methods))


def run_demo(cfg: DemoConfig) -> list[str]:
    """Run the stages; return one summary paragraph per stage."""
    summaries = [ensure_corpus(cfg)]
    links, readings = [], []
    for name in cfg.run:
        title, run = HYPOTHESES[name]
        h = hypothesis_config(cfg, name)
        start = time.perf_counter()
        result = run(h)
        summaries.append(f"{title}: {time.perf_counter() - start:.0f} s -> {h.output}")
        readings += result.readings
        summary = storage.read_bytes(storage.join(h.output, "summary.md")).decode().rstrip("\n")
        links.append(f"## [{title}]({name}/report.md)\n\n{summary}")
    if links:
        found = render.verdict_table(readings)
        storage.write_bytes(storage.join(cfg.output, "report.md"), "\n\n".join(
            ["# fst-ray demo report", "## What was found", *found,
             "The synthetic corpus's contact sheet: [data/contact_sheet.png](data/contact_sheet.png). Each section's "
             "full report, with its figures, is linked in its title.", *links]).encode() + b"\n")
        summaries += ["what was found:\n" + "\n\n".join(found), f"report: {storage.join(cfg.output, 'report.md')}"]
    return summaries

"""The demo: every stage of the pipeline on the embedded default, local Ray and local files.

``python jobs/demo.py --output runs/demo`` writes the synthetic corpus to ``<output>/data`` and each
later stage's results under ``<output>/``. Stages whose outputs already exist for the same config are
skipped, so a re-run is cheap.
"""

from __future__ import annotations

import json

from pydantic import Field

from fst_ray import storage
from fst_ray.config import JobConfig, register_config
from fst_ray.synth.config import SynthConfig
from fst_ray.synth.generate import generate_corpus


@register_config("demo")
class DemoConfig(JobConfig):
    output: str = Field("runs/demo", description="root URI of every demo output")
    synthetic: SynthConfig = Field(default_factory=SynthConfig, description="the corpus; its `out` is ignored")


def _corpus_is_current(cfg: SynthConfig) -> bool:
    meta = storage.join(cfg.out, "synthetic.json")
    return storage.exists(meta) and json.loads(storage.read_bytes(meta))["config"] == cfg.model_dump(mode="json")


def run_demo(cfg: DemoConfig) -> list[str]:
    """Run the stages; return one summary paragraph per stage."""
    summaries = []
    synth = cfg.synthetic.model_copy(update={"out": storage.join(cfg.output, "data")})
    if _corpus_is_current(synth):
        summaries.append(f"synthetic FF++ corpus\n  up to date at {synth.out} (skipped)")
    else:
        summaries.append(str(generate_corpus(synth)))
    return summaries

"""One run layout: every location of a run comes from :class:`fst_ray.layout.RunLayout` and its helpers, and the
jobs and stages put things where it says."""

from __future__ import annotations

from fst_ray.evaluate import EvalConfig
from fst_ray.hypotheses import pipeline
from fst_ray.hypotheses.cli import main
from fst_ray.hypotheses.config import HypothesisConfig
from fst_ray.layout import RunLayout, evaluation_dir, model_file
from fst_ray.train.config import TrainConfig
from fst_ray.train.trainer import run_dir


def test_the_layout_names_every_location_under_one_root():
    layout = RunLayout.under("s3://bucket/run")
    assert (layout.data, layout.tables, layout.work) == ("s3://bucket/run/data", "s3://bucket/run/prepared",
                                                         "s3://bucket/run/work")
    assert layout.models == "s3://bucket/run/work/models"
    assert layout.training_run("r") == "s3://bucket/run/work/models/r"
    assert layout.maps("g4") == "s3://bucket/run/work/shapley/g4"
    assert layout.job_output("h1") == "s3://bucket/run/h1"


def test_training_evaluation_and_maps_go_where_the_layout_says():
    cfg = HypothesisConfig(input="s3://b/r/data", tables="s3://b/r/prepared", work="s3://b/r/work")
    layout = RunLayout.of(cfg)
    train = TrainConfig(input=cfg.tables, output=layout.models, name="arch-encoders")
    assert run_dir(train) == layout.training_run("arch-encoders")
    model = model_file(run_dir(train), "det")
    assert model == "s3://b/r/work/models/arch-encoders/models/det.pt"
    assert EvalConfig(input=cfg.tables, models=model).output_uri() == evaluation_dir(run_dir(train))
    assert pipeline._maps_dir(cfg).startswith(layout.maps(""))


def test_a_hypothesis_job_writes_beside_work_by_default(tmp_path, monkeypatch):
    seen = {}

    def run(cfg):
        seen["output"] = cfg.output
        raise SystemExit(0)

    monkeypatch.chdir(tmp_path)
    try:
        main(run, "h9", "doc", ["--work", str(tmp_path / "w"), "--tables", str(tmp_path / "t")])
    except SystemExit:
        pass
    assert seen["output"] == RunLayout(tables=str(tmp_path / "t"), work=str(tmp_path / "w")).job_output("h9")

"""The command line every job shares (fst_ray.cli): flags generated from the configs, overriding YAML; and a
quiet console: a small make_synthetic + prepare_data + train_encoders prints its own lines only, Ray's stay in
Ray's logs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fst_ray import cli
from fst_ray.data.config import PrepareConfig
from fst_ray.hypotheses.config import HypothesisConfig
from fst_ray.shapley.config import ShapleyConfig

REPO = Path(__file__).resolve().parent.parent
#: what Ray's own log lines look like on a console
RAY_LOG = re.compile(r"\.py:\d+ -- |\(\w+ pid=\d+\)|streaming_executor|logging_progress|PlacementGroupCleaner|"
                     r"core_worker\.cc|Started a local Ray instance")


def test_flags_come_from_the_config_and_override_yaml(tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("input: a\noutput: b\nsize: 64\nmethods: [Deepfakes]\n")
    cfg = cli.parse(PrepareConfig, None, ["--config", str(conf), "--size", "96", "--frames-per-video", "3",
                                          "--compressions", "raw,c40", "--no-overwrite"])
    assert (cfg.input, cfg.size, cfg.frames_per_video, cfg.compressions, cfg.methods, cfg.overwrite) == \
        ("a", 96, 3, ["raw", "c40"], ["Deepfakes"], False)


def test_nested_fields_are_dotted_flags_and_merge_with_yaml(tmp_path):
    conf = tmp_path / "h.yaml"
    conf.write_text("explain: {grid: 4, budget: 64}\ntrain: {epochs: 5}\n")
    cfg = cli.parse(HypothesisConfig, None, ["--config", str(conf), "--explain.budget", "128",
                                             "--train.lr", "0.01", "--checkpoints", '{"a/full/det": "x.pt"}'])
    assert (cfg.explain.grid, cfg.explain.budget, cfg.train.epochs, cfg.train.lr) == (4, 128, 5, 0.01)
    assert cfg.checkpoints == {"a/full/det": "x.pt"}
    # the keys left out keep their defaults, nested ones too: changing the epochs keeps the ImageNet start
    assert cfg.explain.baseline == HypothesisConfig().explain.baseline and cfg.train.pretrained
    assert cli.parse(HypothesisConfig, None, ["--train.epochs", "1"]).train.pretrained


def test_help_lists_every_field_with_its_description(capsys):
    with pytest.raises(SystemExit):
        cli.parse(ShapleyConfig, "doc", ["--help"])
    text = capsys.readouterr().out
    for name, field in ShapleyConfig.model_fields.items():
        assert "--" + name.replace("_", "-") in text
    assert "evaluations per map" in text and "{zero,mean,blur,source,background,background_raw}" in text


def test_choices_are_checked(capsys):
    with pytest.raises(SystemExit):
        cli.parse(ShapleyConfig, None, ["--input", "a", "--models", "m.pt", "--output", "o", "--baseline", "grey"])
    assert "invalid choice" in capsys.readouterr().err


def _run(args: list[str], env: dict) -> list[str]:
    done = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]


@pytest.mark.slow
def test_small_corpus_and_ingest_print_few_lines_and_no_ray_logs(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    lines = _run(["jobs/make_synthetic.py", "--output", str(tmp_path / "data"), "--identities", "4", "--frames", "4",
                  "--size", "32", "--methods", "Deepfakes", "--no-contact-sheet"], env)
    lines += _run(["jobs/prepare_data.py", "--input", str(tmp_path / "data"), "--output", str(tmp_path / "prep"),
                   "--frames-per-video", "2", "--size", "32", "--methods", "Deepfakes"], env)
    trained = _run(["jobs/train_encoders.py", "--input", str(tmp_path / "prep"), "--output", str(tmp_path / "runs"),
                    "--roles", "det", "--arch", "test_resnet", "--epochs", "2", "--image-size", "32",
                    "--workers", "1"], env)
    noisy = [line for line in lines + trained if RAY_LOG.search(line)]
    assert not noisy, noisy
    assert len(lines) <= 40, "\n".join(lines)
    assert any("ingest summary" in line for line in lines)
    # training shows its epochs as they end (the workers' own lines stay in Ray's logs), then its summary
    assert any(line.startswith("train: 100%") and "2/2" in line and "det loss" in line for line in trained), trained
    assert any(line.startswith("run ") for line in trained) and len(trained) <= 20, "\n".join(trained)
    verbose = _run(["jobs/prepare_data.py", "--input", str(tmp_path / "data"), "--output", str(tmp_path / "prep2"),
                    "--frames-per-video", "2", "--size", "32", "--methods", "Deepfakes", "--verbose"], env)
    assert any(RAY_LOG.search(line) for line in verbose), "--verbose shows Ray's log lines"


def test_a_users_mistake_is_one_line_and_exit_code_2(tmp_path, capsys):
    from jobs import h1_intersection, prepare_data

    conf = tmp_path / "c.yaml"
    conf.write_text("input: a\noutput: b\nframes_per_vdeo: 4\nmethods: [Deepfakes]\n")
    assert prepare_data.main(["--config", str(conf)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: invalid config: unknown key 'frames_per_vdeo' (did you mean 'frames_per_video'?)"]
    conf.write_text("explain: {budgt: 400}\ninput: null\n")
    assert h1_intersection.main(["--config", str(conf)]) == 2
    assert "did you mean 'explain.budget'?" in capsys.readouterr().err
    conf.write_text(f"input: null\ntables: {tmp_path / 'nothing'}\n")
    assert h1_intersection.main(["--config", str(conf)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no finished ingest" in err[0]
    assert prepare_data.main(["--config", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml not found" in capsys.readouterr().err
    with pytest.raises(Exception, match="holds no finished ingest"):
        h1_intersection.main(["--config", str(conf), "--debug"])


@pytest.mark.parametrize("job", sorted(p.stem for p in (REPO / "jobs").glob("*.py")))
def test_every_jobs_help_prints(job, capsys):
    import importlib

    with pytest.raises(SystemExit) as e:
        importlib.import_module(f"jobs.{job}").main(["--help"])
    assert e.value.code == 0 and "--config" in capsys.readouterr().out


def test_help_examples_name_the_paths_the_demo_writes():
    """The examples in jobs' docstrings (what --help shows) point at files `make demo` writes."""
    import importlib
    import re

    from fst_ray.hypotheses.config import HypothesisConfig
    from fst_ray.hypotheses.pipeline import run_name

    demo = HypothesisConfig()
    runs = tuple(f"{demo.work}/models/{run_name(demo.archs[0], run, 'raw', demo.train)}/models"
                 for run in ("encoders", "detectors"))  # the demo's tables hold raw
    for job in ("shapley", "evaluate"):
        named = re.findall(r"runs/demo/[\w./-]+", importlib.import_module(f"jobs.{job}").__doc__)
        inputs = [p for p in named if not p.startswith("runs/demo/shapley")]  # the shapley example's output
        assert inputs and all(p == demo.tables or p.startswith(runs) for p in inputs), (job, inputs)
    import yaml

    from fst_ray.hypotheses.pipeline import _maps_dir

    tau = yaml.safe_load((REPO / "configs/sweep_cpu.yaml").read_text())["tau"]  # the τ sweep on the demo's maps
    assert tau["shapley"] == _maps_dir(demo) and all(m.startswith(runs) for m in tau["models"].values())


def test_ray_datas_no_cpu_alarm_is_kept_off_the_console_only_where_asked():
    import logging

    import ray.data  # noqa: F401  (sets up Ray Data's console handler)
    from ray.data._internal.logging import SessionFileHandler

    from fst_ray.runtime import no_cpu_alarm

    console = [h for h in logging.getLogger("ray.data").handlers if not isinstance(h, SessionFileHandler)]
    alarm = logging.LogRecord("ray.data.dataset", logging.WARNING, "dataset.py", 1, "Warning: The Ray cluster "
                              "currently does not have any available CPUs. The Dataset job will hang", None, None)
    other = logging.LogRecord("ray.data.dataset", logging.WARNING, "dataset.py", 1, "another warning", None, None)
    assert console
    with no_cpu_alarm():  # training: the workers leave Ray Data a CPU, so the alarm is false
        assert not any(h.filter(alarm) for h in console) and all(h.filter(other) for h in console)
    assert all(h.filter(alarm) for h in console)  # anywhere else it may be true, and is shown


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.mark.parametrize("args, says", [
    (["--explain.grid", "1000"], "explain.grid: Input should be less than or equal to 64"),
    (["--explain.grid", "48", "--explain.budget", "50000", "--prepare.size", "32"], "explain.grid 48 has more cells per side than the frames"),
    (["--explain.grid", "64", "--prepare.size", "64", "--explain.budget", "8"], "fits no estimator at grid 64"),
    (["--tau", "1.5"], "tau must be a non-empty list of values in [0, 1)"),
    (["--tau", ""], "tau must be a non-empty list"),
    (["--variant", "paper", "--tau", "5"], "tau must be a non-empty list of values in [0, 1), got [5.0]"),
    (["--train.epochs", "0"], "train.epochs"),
    (["--prepare.size", "100000"], "prepare.size"),
    (["--train.image-size", "100000"], "train.image_size"),
    (["--explain.images-per-method", "0"], "explain.images_per_method"),
])
def test_every_setting_is_checked_before_any_work(args, says, tmp_path, capsys):
    """A setting out of range is one line and exit code 2 before anything is read, trained or written."""
    import importlib

    h1 = importlib.import_module("jobs.h1_intersection")
    base = ["--input", str(tmp_path / "data"), "--tables", str(tmp_path / "tables"), "--work", str(tmp_path / "w")]
    assert h1.main(base + args) == 2
    assert says in _one_line(capsys)
    assert not list(tmp_path.iterdir())


def test_a_shapley_grid_finer_than_the_frames_is_refused_before_the_maps(tmp_path, capsys):
    import importlib

    from fst_ray.train.toy import write_toy_frames

    write_toy_frames(str(tmp_path / "t"), identities=4, frames=1, size=16, compressions=("raw",))
    shapley = importlib.import_module("jobs.shapley")
    assert shapley.main(["--input", str(tmp_path / "t"), "--models", "m.pt", "--output", str(tmp_path / "maps"),
                         "--grid", "1000"]) == 2
    assert "grid: Input should be less than or equal to 64" in _one_line(capsys)
    assert shapley.main(["--input", str(tmp_path / "t"), "--models", "m.pt", "--output", str(tmp_path / "maps"),
                         "--grid", "32", "--budget", "20000"]) == 2
    assert "grid 32 has more cells per side than the frames have pixels (16)" in _one_line(capsys)
    assert not (tmp_path / "maps").exists()


@pytest.mark.parametrize("text, says", [
    ("a: [1, 2\n", "is not YAML (line 2, column 1)"),
    ("\x00\x01 binary", "is not YAML"),
    ("- a\n- b\n", "a config file must hold a mapping, got list"),
])
def test_a_config_that_is_not_a_yaml_mapping_is_one_line(text, says, tmp_path, capsys):
    import importlib

    conf = tmp_path / "c.yaml"
    conf.write_text(text)
    assert importlib.import_module("jobs.h1_intersection").main(["--config", str(conf)]) == 2
    assert says in _one_line(capsys)


def test_an_output_that_cannot_be_written_is_refused_before_any_work(tmp_path, capsys, s3_server):
    """A path under a file, a bucket that does not exist, a read-only location: one line, exit code 2, before the
    job reads or trains anything (its tables and work folders stay unmade)."""
    import importlib

    h1 = importlib.import_module("jobs.h1_intersection")
    (tmp_path / "file").write_text("x")
    base = ["--input", str(tmp_path / "data"), "--tables", str(tmp_path / "tables"), "--work", str(tmp_path / "w")]
    assert h1.main(base + ["--output", str(tmp_path / "file" / "h1")]) == 2
    assert "a part of that path is a file" in _one_line(capsys)
    assert h1.main(base + ["--output", "s3://no-such-bucket/h1"]) == 2
    assert "bucket 'no-such-bucket' does not exist" in _one_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]

    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)], capture_output=True).returncode:
        pytest.skip("mounting a read-only file system needs root")
    try:
        assert h1.main(base + ["--output", str(ro / "h1")]) == 2
        assert "read-only file system" in _one_line(capsys)
    finally:
        subprocess.run(["umount", str(ro)], check=True)

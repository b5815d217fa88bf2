"""Sweeps: the frame stream of a trial, an ASHA sweep over timm architectures with TensorBoard files and a
best configuration, an interrupted (SIGINT) sweep continued by Tuner.restore, and the τ sweep of Q."""

from __future__ import annotations

import json
import os
import signal
import struct
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch
from ray import tune
from sklearn.metrics import roc_auc_score

from fst_ray import frames, storage, tables
from fst_ray.data import views
from fst_ray.metrics import q_baseline, q_curve
from fst_ray.models import create_model, load_model
from fst_ray.sweep.config import SweepConfig, SweepResult
from fst_ray.sweep.run import run_sweep
from fst_ray.sweep.tau import phi_maps
from fst_ray.train.local import eval_plan, labelled_batches, validate
from fst_ray.train.config import TrainConfig
from fst_ray.frames import decode as decode_images
from fst_ray.train.labels import make_plan
from fst_ray.train.toy import toy_frames

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "jobs"))
import sweep as sweep_job  # noqa: E402  (jobs/sweep.py)

BASE = dict(arch="test_resnet", image_size=32, batch_size=4, shuffle_buffer=8, lr=3e-3)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> str:
    """A ``frames`` table (:func:`fst_ray.train.toy.toy_frames`: 3 pairs, 2 methods, raw, 4 frames of 32 px)
    with one pair per split: train, val, test; in two Parquet files."""
    table = toy_frames(identities=6, frames=4, size=32, methods=("Deepfakes", "FaceSwap"), train_pairs=1)
    val = pc.is_in(table["source_id"], pa.array(["002", "003"]))
    table = table.set_column(table.schema.get_field_index("split"), frames.SCHEMA.field("split"),
                             pc.if_else(val, "val", table["split"]))
    out = tmp_path_factory.mktemp("sweep_data") / "prepared"
    (out / "frames").mkdir(parents=True)
    half = table.num_rows // 2
    for i, part in enumerate((table.slice(0, half), table.slice(half))):
        pq.write_table(part, str(out / "frames" / f"part-{i}.parquet"))
    return str(out)


def _trial_dirs(run: str, experiment: str = "train") -> list[str]:
    """URIs of an experiment's trial folders (local or s3://), sorted."""
    return sorted({u.rsplit("/", 1)[0] for u, _ in storage.list_files(storage.join(run, experiment))
                   if u.endswith("/params.json")})


def _scalars(trial_dir: str) -> dict[str, list[float]]:
    """Scalar values per tag in a trial's TensorBoard event files (TFRecord frames of ``Event`` protos:
    length u64, its crc u32, the proto, its crc u32)."""
    from tensorboardX.proto.event_pb2 import Event

    out: dict[str, list[float]] = {}
    for uri, _ in storage.list_files(trial_dir, recursive=False):
        if "events.out.tfevents." not in uri:
            continue
        data, pos = storage.read_bytes(uri), 0
        while pos < len(data):
            n = struct.unpack("<Q", data[pos:pos + 8])[0]
            event = Event.FromString(data[pos + 12:pos + 12 + n])
            pos += 12 + n + 4
            for v in event.summary.value:
                out.setdefault(v.tag, []).append(v.simple_value)
    return out


def _records(trial_dir: str) -> list[dict]:
    with open(os.path.join(trial_dir, "result.json")) as f:
        return [json.loads(line) for line in f if line.strip()]


# -- config and the trial's frame stream (no Ray) -------------------------------------------------------

def test_configs_validate_spaces():
    cfg = SweepConfig.load(str(Path(__file__).resolve().parents[1] / "configs" / "sweep_cpu.yaml"))
    assert cfg.train.n_trials == 6 and cfg.train.metric == "det/val_auc" and cfg.tau.variants == ["official", "paper"]
    ok = {"base": {"roles": ["source", "fst"], "arch": "test_resnet"}, "space": {"lr": {"uniform": [0.1, 0.2]}}}
    assert SweepConfig(train=ok).train.metric == "fst/val_auc"
    for bad, why in (({"space": {"arch": {"grid": ["resnet18", "no_such_net"]}}}, "no_such_net"),
                     ({"space": {"epochs": {"grid": [1, 2]}}}, "cannot be swept"),
                     ({"base": {"output": "x"}, "space": {}}, "the sweep decides"),
                     ({"base": {"roles": ["source"]}, "space": {}}, "no detector"),
                     ({"space": {"lr": {"grid": [1e-3], "uniform": [0, 1]}}}, "exactly one")):
        with pytest.raises(ValueError, match=why):
            SweepConfig(train=bad)
    with pytest.raises(ValueError, match="needs"):
        SweepConfig()


# -- the trial's frame stream (no Ray) ---------------------------------------------------------------

def test_labelled_batches_cover_the_plan_once_and_shuffle_by_seed(prepared):
    index = frames.read_index(prepared)
    plan = make_plan(index, ["source", "det"], "full", seed=0, holdout_fraction=0.25)
    keys_of = {}

    def stream(seed):
        batches = list(labelled_batches(prepared, plan, batch_size=5, shuffle_buffer=8, seed=seed))
        order = [tuple(b["det"]) + tuple(b["source"]) for b in batches]
        keys_of[seed] = sum(len(b["image"]) for b in batches)
        return batches, order

    batches, order = stream(1)
    assert all(len(b["image"]) == 5 for b in batches[:-1]) and 1 <= len(batches[-1]["image"]) <= 5
    assert keys_of[1] == plan.num_rows  # every planned row once
    assert sum(b["m_detector"].sum() for b in batches) == len(plan.detector_keys)
    assert sum(b["m_encoder"].sum() for b in batches) == len(plan.encoder_keys)
    images = np.concatenate([b["image"] for b in batches])
    assert len({im.tobytes() for im in images}) == plan.num_rows  # no row twice
    assert stream(1)[1] == order  # same seed, same order
    unshuffled = np.concatenate([b["image"] for b in labelled_batches(prepared, plan, batch_size=5)])
    assert not np.array_equal(unshuffled, images) and sorted(map(bytes, unshuffled)) == sorted(map(bytes, images))


def test_validate_scores_detectors_on_val_and_encoders_on_their_holdout(prepared):
    index = frames.read_index(prepared)
    cfg = TrainConfig(input=prepared, roles=["source", "det"], arch="test_resnet", image_size=32, holdout_fraction=0.25)
    plan = eval_plan(index, cfg, "val")
    assert plan.detector_keys == set(views.select(index, split="val")["key"].to_pylist())
    assert plan.encoder_keys == set(views.frame_holdout(index, cfg.seed, 0.25)[1]["key"].to_pylist())
    torch.manual_seed(0)
    models = {"source": create_model("source", "test_resnet", len(plan.classes["source_id"])), "det": create_model("det", "test_resnet")}
    got = validate(models, labelled_batches(prepared, plan, 7), 32, torch.device("cpu"))
    assert set(got) == {"det/val_auc", "source/holdout_top1"}
    rows = views.read_table(prepared, "frames", ["image", "det_label"], frames.keys_filter(plan.detector_keys))
    x = torch.from_numpy(decode_images(rows["image"].to_pylist())).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        p_fake = torch.softmax(models["det"].eval()(x), 1)[:, 1].numpy()
    assert got["det/val_auc"] == pytest.approx(roc_auc_score(rows["det_label"].to_numpy(), p_fake))
    assert 0.0 <= got["source/holdout_top1"] <= 1.0


# -- architecture / hyperparameter sweep -------------------------------------------------------------

@pytest.mark.slow
def test_asha_sweep_over_architectures_writes_tensorboard_and_reports_the_best(ray_session, prepared, tmp_path):
    cfg = SweepConfig(output=str(tmp_path), name="archs", train={
        "base": {**BASE, "input": prepared, "epochs": 2},
        "space": {"arch": {"grid": ["test_resnet", "test_efficientnet"]}, "lr": {"loguniform": [1e-3, 1e-2]}},
        "num_samples": 1, "max_concurrent": 2, "grace_period": 1})
    result = run_sweep(cfg)

    assert result.metric == "det/val_auc"
    assert sorted(t.config["arch"] for t in result.trials) == ["test_efficientnet", "test_resnet"]
    for t in result.trials:
        assert 1 <= t.epochs <= 2 and 0.0 <= t.value <= 1.0 and 1e-3 <= t.config["lr"] <= 1e-2
    finished = [t for t in result.trials if t.epochs == 2]  # ASHA lets the first trial at a rung go on
    assert finished and result.best.epochs == 2 and result.best.value == max(t.value for t in finished)
    run = storage.join(str(tmp_path), "archs")
    dirs = _trial_dirs(run)
    assert len(dirs) == 2
    for d in dirs:  # one validation AUC per epoch, as ASHA needs it, in result.json and in TensorBoard
        records = _records(d)
        assert [r["epoch"] for r in records] == list(range(len(records)))
        assert all(0.0 <= r["det/val_auc"] <= 1.0 for r in records)
        curves = _scalars(d)
        assert np.allclose(curves["ray/tune/det/val_auc"], [r["det/val_auc"] for r in records])
    model, info = load_model(os.path.join(result.best.checkpoint, "det.pt"))
    assert info["arch"] == result.best.config["arch"] and info["role"] == "det"
    saved = SweepResult.model_validate_json(storage.read_bytes(storage.join(run, "result.json")))
    assert saved.best == result.best


class InterruptOnce(tune.Callback):
    """Ctrl-C (SIGINT to this process) once trial number ``trial`` (0-based) has saved its first checkpoint,
    once: a later (restored) run finds ``marker`` and lets the sweep finish."""

    def __init__(self, marker: str, trial: int):
        self.marker, self.trial = marker, trial

    def on_trial_save(self, iteration, trials, trial, **info):
        if trials.index(trial) == self.trial and not os.path.exists(self.marker):
            Path(self.marker).write_text(f"interrupted after a checkpoint of {trial.trial_id}\n")
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.slow
def test_interrupted_sweep_continues_with_tuner_restore(ray_session, prepared, tmp_path):
    cfg = SweepConfig(output=str(tmp_path), name="resume", train={
        "base": {**BASE, "input": prepared, "epochs": 2},
        "space": {"lr": {"grid": [1e-3, 5e-3]}}, "num_samples": 1, "max_concurrent": 1, "grace_period": 2})
    run = os.path.join(str(tmp_path), "resume")
    marker = str(tmp_path / "interrupted")
    first = run_sweep(cfg, callbacks=[InterruptOnce(marker, trial=1)])
    assert os.path.exists(marker)
    assert not first.complete
    assert [t.status for t in first.trials] == ["completed", "unfinished (interrupted)"]
    done_dir, cut_dir = _trial_dirs(run)
    done_log = Path(done_dir, "result.json").read_bytes()
    assert len(_records(cut_dir)) < 2

    again = run_sweep(cfg)  # same name: Tuner.restore
    assert again.complete and [t.status for t in again.trials] == ["completed", "completed"]
    assert _trial_dirs(run) == [done_dir, cut_dir]
    assert Path(done_dir, "result.json").read_bytes() == done_log  # the finished trial was not redone
    epochs = [r["epoch"] for r in _records(cut_dir)]
    assert epochs == [0, 1]  # resumed from its checkpoint, not from scratch
    assert again.best.value == max(t.value for t in again.trials)

    with pytest.raises(ValueError, match="another sweep config"):
        run_sweep(cfg.model_copy(update={"train": cfg.train.model_copy(update={"num_samples": 2})}))


# -- τ sweep -------------------------------------------------------------------------------------------

def _shapley_table(keys: list[str], rng: np.random.Generator, grid: int = 4, extra: dict | None = None) -> pa.Table:
    """Hand-made ``shapley`` rows: random φ per (key, role), a second detector model where ``extra`` says."""
    rows = {f.name: [] for f in tables.SHAPLEY}
    models = [("source", "s.pt"), ("target", "t.pt"), ("det", "d.pt")] + list((extra or {}).items())
    for key in keys:
        for role, model in models:
            for name, value in (("key", key), ("role", role), ("model", model), ("model_sha256", model),
                                ("explained_class", "x"),
                                ("class_index", 0), ("grid", grid),
                                ("phi", rng.normal(size=grid * grid).astype(np.float32).tolist()),
                                ("stderr", [0.0] * grid * grid), ("n_evals", 1), ("estimator", "exact"),
                                ("seed", 0), ("budget", 1), ("baseline", "zero"), ("value", "logit"),
                                ("phi_a", None), ("phi_b", None)):
                rows[name].append(value)
    n = len(rows["key"])
    rows = {k: v or [None] * n for k, v in rows.items()}  # the columns left out: null
    return pa.Table.from_pydict(rows, schema=tables.SHAPLEY)


def test_phi_maps_pick_models_align_keys_and_normalise():
    rng = np.random.default_rng(0)
    keys = [f"Deepfakes/raw/000_001/{i:05d}" for i in range(4)]
    table = _shapley_table(keys, rng, extra={"det": "d2.pt"})
    with pytest.raises(ValueError, match="give exactly one"):
        phi_maps(table)
    incomplete = table.filter(~((pc.field("key") == keys[0]) & (pc.field("role") == "source")))
    got_keys, s, t, d = phi_maps(incomplete, {"det": "d2.pt"})
    assert got_keys == keys[1:]
    for m in (s, t, d):
        assert m.shape == (3, 16) and np.allclose(np.linalg.norm(m, axis=1), 1.0)
    rows = table.to_pylist()
    want = next(r["phi"] for r in rows if r["key"] == keys[2] and r["model"] == "d2.pt")
    assert np.allclose(d[1], np.asarray(want) / np.linalg.norm(want))


@pytest.mark.slow
def test_tau_sweep_on_s3_curve_equals_q_curve_means(ray_session, s3_bucket):
    table = _shapley_table([f"FaceSwap/raw/002_003/{i:05d}" for i in range(6)], np.random.default_rng(3))
    shapley = f"{s3_bucket}/shapley"
    fs, path = storage.resolve(shapley)
    fs.create_dir(path)
    pq.write_table(table, f"{path}/part-0.parquet", filesystem=fs)
    taus = [0.0, 0.6, 0.95]
    config = f"{s3_bucket}/tau.yaml"
    storage.write_bytes(config, f"output: {s3_bucket}/sweeps\nname: tau\ntau:\n  shapley: {shapley}\n"
                                f"  taus: {taus}\n  n_shuffles: 5\n".encode())
    sweep_job.main(["--config", config])
    run = f"{s3_bucket}/sweeps/tau"
    result = SweepResult.model_validate_json(storage.read_bytes(f"{run}/result.json"))

    _, s, t, d = phi_maps(table)
    assert result.complete and {c.variant for c in result.tau} == {"paper", "official"}
    for c in result.tau:
        expected = np.nanmean(q_curve(s, t, d, taus, c.variant), axis=0)
        baseline = np.nanmean(q_baseline(s, t, d, taus, c.variant, n_shuffles=5, seed=0), axis=0)
        assert c.tau == taus and c.n_images == 6
        assert np.allclose(c.q, expected) and np.allclose(c.baseline, baseline)
    trials = _trial_dirs(run, "tau")
    assert len(trials) == 2 * len(taus) and all(len(_scalars(x)["ray/tune/q"]) == 1 for x in trials)
    assert run_sweep(SweepConfig.load(config)).tau == result.tau  # a finished sweep is only re-reported

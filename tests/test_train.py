"""Training: labels and subsets per role, augmentations, config, and the Ray Train run itself (DDP with
2 workers on gloo, checkpoint/resume on S3, a killed worker recovered through FailureConfig)."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pytest
import torch

from fst_ray import frames, storage
from fst_ray.data import views
from fst_ray.models import load_model, safe_torch_load
from fst_ray.roles import ARTIFACT, IDENTITY, AugmentPolicy
from fst_ray.train.augment import _gaussian_blur, augment
from fst_ray.train.config import TrainConfig
from fst_ray.train.engine import CrashOnce
from fst_ray.train.engine import TRAIN_STATE, augment_policy, cosine_lr, det_class_weights, fit
from fst_ray.train.labels import label_batch, make_plan
from fst_ray.train.toy import write_toy_frames

ARCH = "test_resnet"


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory) -> str:
    """6 identities (3 pairs: 2 train, 1 test), Deepfakes, raw, 4 frames of 32x32: 48 frames."""
    out = str(tmp_path_factory.mktemp("toy") / "prepared")
    write_toy_frames(out, identities=6, frames=4, size=32)
    return out


def _config(data: str, output: str, **kw) -> TrainConfig:
    base = dict(input=data, output=output, arch=ARCH, epochs=1, workers=2, cpus_per_worker=0.5, image_size=32,
                batch_size=8, shuffle_buffer=16, holdout_fraction=0.25)
    return TrainConfig(**{**base, **kw})


# -- pure parts ---------------------------------------------------------------------------------------

def test_plan_subsets_per_role(toy_data):
    index = frames.read_index(toy_data)
    plan = make_plan(index, ["source", "target", "det"], "full", seed=0, holdout_fraction=0.25)
    assert plan.classes == {c: ("000", "001", "002", "003", "004", "005") for c in ("source_id", "target_id")}
    _, holdout = views.frame_holdout(index, 0, 0.25)
    assert holdout.num_rows > 0 and not plan.encoder_keys & set(holdout["key"].to_pylist())
    assert len(plan.encoder_keys) + holdout.num_rows == index.num_rows  # every other frame trains encoders
    train_keys = set(views.select(index, split="train")["key"].to_pylist())
    assert plan.detector_keys == train_keys  # detectors: identity-disjoint train split only
    only_encoders = make_plan(index, ["source"], "full", 0, 0.25)
    assert not only_encoders.detector_keys


def test_paired_and_unpaired_plans_follow_h2(tmp_path):
    out = str(tmp_path / "prepared")
    write_toy_frames(out, identities=8, frames=3, size=16, compressions=("raw", "c23"), train_pairs=3)
    index = frames.read_index(out)
    for kind in ("paired", "unpaired"):
        plan = make_plan(index, ["det"], kind, seed=1, holdout_fraction=0.25, detector_compression="c23")
        expected = getattr(views.paired_unpaired(index, 1, split="train", compression="c23"), kind)
        assert plan.detector_keys == set(expected["key"].to_pylist())
    # the paper's H3 protocol: detectors learn on one compression (raw); the encoders still see every one
    plan = make_plan(index, ["source", "det"], "full", seed=1, holdout_fraction=0.25, detector_compression="raw")
    assert plan.detector_keys == set(views.select(index, split="train", compression="raw")["key"].to_pylist())
    assert {k.split("/")[1] for k in plan.encoder_keys} == {"raw", "c23"}
    every = make_plan(index, ["det"], "full", seed=1, holdout_fraction=0.25)
    assert every.detector_keys == set(views.select(index, split="train")["key"].to_pylist())


def test_label_batch_labels_and_drops_unused_rows(toy_data):
    index = frames.read_index(toy_data)
    plan = make_plan(index, ["source", "target", "det"], "full", 0, 0.25)
    table = views.read_table(toy_data, "frames", filter=pc.field("method") == "Deepfakes")
    batch = {c: np.asarray(table[c].to_pylist(), dtype=object if c in ("key", "image", "source_id", "target_id")
                           else None) for c in ("key", "image", "size", "det_label", "source_id", "target_id")}
    out = label_batch(batch, plan)
    keys = [k for k in batch["key"] if k in plan.encoder_keys or k in plan.detector_keys]
    assert len(out["image"]) == len(keys) < len(batch["key"])  # test-split hold-out frames train nothing
    assert out["image"].shape[1:] == (32, 32, 3) and out["image"].dtype == np.uint8
    row = table.filter(pc.field("key") == keys[0]).to_pylist()[0]
    assert out["source"][0] == plan.classes["source_id"].index(row["source_id"])
    assert out["target"][0] == plan.classes["target_id"].index(row["target_id"]) != out["source"][0]  # a fake A_B
    assert out["det"].tolist() == [1] * len(keys)
    assert np.array_equal(out["image"][0], np.frombuffer(row["image"], np.uint8).reshape(32, 32, 3))


def test_detector_class_weights_balance_the_classes(toy_data):
    plan = make_plan(frames.read_index(toy_data), ["det"], "full", 0, 0.25)
    assert plan.fake_share == pytest.approx(0.5)  # toy: one fake per original in the train split
    w = det_class_weights(5 / 6, True)  # FF++: 5 fakes per real
    assert w[0] * (1 / 6) == pytest.approx(w[1] * (5 / 6)) and (w[0] / 6 + 5 * w[1] / 6) == pytest.approx(1)
    assert det_class_weights(5 / 6, False) == [1.0, 1.0]


def test_cosine_schedule():
    lrs = [cosine_lr(s, 100, 1.0, 10) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:])) and lrs[-1] < 0.01


def _detector_batch(n: int = 16) -> dict[str, torch.Tensor]:
    """One labelled batch of random 32 px frames for the detector alone, half of them fake."""
    g = torch.Generator().manual_seed(0)
    return {"image": torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=g),
            "det": torch.arange(n) % 2, "source": torch.zeros(n, dtype=torch.long),
            "target": torch.zeros(n, dtype=torch.long), "m_encoder": torch.zeros(n, dtype=torch.bool),
            "m_detector": torch.ones(n, dtype=torch.bool), "w_target": torch.ones(n)}


@pytest.mark.parametrize("freeze", [True, False])
def test_frozen_batchnorm_keeps_its_statistics_and_still_learns(freeze):
    """train.freeze_bn (the default from pretrained weights): BatchNorm's running statistics stay as they started
    while its affine weights train; without it they follow the batches (why it matters: docs/science.md,
    "Training")."""
    batch = _detector_batch()
    cfg = TrainConfig(roles=["det"], arch=ARCH, epochs=2, image_size=32, freeze_bn=freeze)
    models = fit(cfg, {"source_id": ("a",), "target_id": ("a",)}, fake_share=0.5, steps_per_epoch=3,
                 batches=lambda epoch: iter([batch] * 3), report=lambda history, folder: None,
                 device=torch.device("cpu"))
    bn = [m for m in models["det"].modules() if isinstance(m, torch.nn.BatchNorm2d)]
    stats_kept = all(torch.equal(m.running_mean, torch.zeros_like(m.running_mean)) for m in bn)
    assert bn and stats_kept == freeze
    assert any(not torch.equal(m.weight, torch.ones_like(m.weight)) for m in bn)  # affine weights learnt


def test_augmentations_per_role():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (6, 32, 32, 3), dtype=torch.uint8)
    x = images.permute(0, 3, 1, 2).float() / 255
    for policy in (IDENTITY, ARTIFACT):
        out = augment(images, policy, 24, g)
        assert out.shape == (6, 3, 24, 24) and 0 <= out.min() and out.max() <= 1
    # detectors: pixels are moved (flip, integer shift), never resampled or recoloured
    out = augment(images, AugmentPolicy(translate=1 / 16, hflip=False), 32, g)
    assert set(torch.unique(out).tolist()) <= set(torch.unique(x).tolist())
    assert torch.equal(augment(images, AugmentPolicy(hflip=False), 32, g), x)


def test_detectors_see_blur_and_jpeg_as_wang_et_al_and_only_they():
    from torchvision.transforms.v2.functional import gaussian_blur
    x = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(1))
    ref = torch.stack([gaussian_blur(x[i], [13, 13], [2.0, 2.0]) for i in range(2)])  # radius 3 sigma, reflect
    assert torch.allclose(_gaussian_blur(x, torch.tensor([2.0, 2.0])), ref, atol=1e-5)
    images = torch.randint(0, 256, (64, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    plain = AugmentPolicy(hflip=False)
    always = AugmentPolicy(hflip=False, degrade=1.0)
    out = augment(images, always, 32, torch.Generator().manual_seed(0))
    assert torch.equal(out, augment(images, always, 32, torch.Generator().manual_seed(0)))  # seeded
    x = augment(images, plain, 32, torch.Generator().manual_seed(0))
    assert all(not torch.equal(a, b) for a, b in zip(out, x))  # every image blurred and re-encoded
    detail = lambda t: (t[..., 1:, :] - t[..., :-1, :]).abs().mean(dim=(1, 2, 3))  # noqa: E731
    assert (detail(out) < detail(x)).all()
    some = augment(images, AugmentPolicy(hflip=False, degrade=0.1), 32, torch.Generator().manual_seed(0))
    changed = sum(not torch.equal(a, b) for a, b in zip(some, x))
    assert 4 <= changed <= 22  # about 1 - 0.9^2 = 19 % of 64
    cfg = TrainConfig(degrade=0.5)
    assert augment_policy("det", cfg).degrade == augment_policy("fst", cfg).degrade == 0.5
    assert augment_policy("source", cfg) == IDENTITY and augment_policy("det", TrainConfig()) == ARTIFACT


def test_config_validation(toy_data):
    with pytest.raises(ValueError, match="roles"):
        _config(toy_data, "/tmp/x", roles=["source", "teacher"])
    with pytest.raises(ValueError, match="detector"):
        _config(toy_data, "/tmp/x", roles=["source"], train_set="paired")
    with pytest.raises(ValueError, match="timm"):
        _config(toy_data, "/tmp/x", arch="resnet_9000")


# -- Ray Train ----------------------------------------------------------------------------------------

def _history(run: str) -> list[dict]:
    return json.loads(storage.read_bytes(storage.join(run, "metrics.json")))


@pytest.fixture(scope="module")
def runs(ray_session, s3_server, toy_data, tmp_path_factory):
    """One run on S3 (1 epoch, every role, 2 DDP workers), then the same run name again for 3 epochs with
    worker rank 1 killed in epoch 2: the second call must resume after epoch 0 (rerun) and recover from
    epoch 1's checkpoint (FailureConfig)."""
    from fst_ray.train.trainer import train_encoders

    bucket = f"train-{uuid.uuid4().hex[:8]}"
    pafs.S3FileSystem(endpoint_override=s3_server.split("://")[1], scheme="http", region="us-east-1",
                      allow_bucket_creation=True).create_dir(bucket)
    marker = tmp_path_factory.mktemp("drill") / "crashed"
    cfg = _config(toy_data, f"s3://{bucket}/runs", roles=["source", "target", "det", "fst"], name="ddp",
                  cache=False)  # stream from Parquet every epoch, as at FF++ scale
    first = train_encoders(cfg)
    first_history = _history(first.run)
    _, first_source = load_model(first.models["source"])
    second = train_encoders(cfg.model_copy(update={"epochs": 3}), drill=CrashOnce(str(marker), rank=1, epoch=2))
    return {"cfg": cfg, "first": first, "first_history": first_history, "first_source": first_source,
            "second": second, "marker": marker}


@pytest.mark.slow
def test_ddp_two_workers_hold_identical_weights(runs):
    rec = runs["first"].last_epoch
    for role in runs["cfg"].roles:  # two ranks fed different shards, identical weights after the steps
        assert len(rec[f"{role}/weight_checksums"]) == 2 and rec[f"{role}/weights_in_sync"], role
        assert rec[f"{role}/rows"] > 0
    assert rec["fst/interaction"] != 0
    assert [r["epoch"] for r in runs["first_history"]] == [0]
    assert storage.exists(storage.join(runs["first"].run, "tensorboard", "events.out.tfevents.fst-ray"))
    info = runs["first_source"]
    assert info["classes"] == ["000", "001", "002", "003", "004", "005"] and info["metadata"]["epoch"] == 0


@pytest.mark.slow
def test_rerun_resumes_epochs_and_optimizer_state(runs):
    history = _history(runs["second"].run)
    assert [r["epoch"] for r in history] == [0, 1, 2]  # each epoch logged once, none repeated
    assert history[0] == runs["first_history"][0]
    assert history[1]["resumed_from_epoch"] == 0  # the rerun started after the first run's last epoch
    assert history[1]["step"] == 2 * history[0]["step"]
    ckpts = sorted(p for p, _ in storage.list_files(runs["second"].run) if p.endswith(TRAIN_STATE))
    state = safe_torch_load(storage.read_bytes(ckpts[-1]))
    adam_steps = {int(s["step"]) for s in state["optimizers"]["det"]["state"].values()}
    assert state["epoch"] == 2 and adam_steps == {history[2]["step"]}  # AdamW's state carried on throughout


@pytest.mark.slow
def test_killed_worker_is_recovered(runs):
    assert runs["marker"].exists()  # rank 1 did exit in epoch 2
    history = _history(runs["second"].run)
    assert history[2]["resumed_from_epoch"] == 1  # the restarted group continued from epoch 1's checkpoint
    assert history[2]["step"] == 3 * history[0]["step"]
    model, info = load_model(runs["second"].models["fst"])
    assert info["metadata"]["epoch"] == 2


@pytest.mark.slow
def test_two_worker_runs_are_reproducible(ray_session, toy_data, tmp_path):
    """Same config, two runs, two DDP workers: identical weights (the stream is split in a fixed order)."""
    from fst_ray.train.trainer import train_encoders

    sums = [train_encoders(_config(toy_data, str(tmp_path), roles=["det"], name=f"again-{i}", cache=True))
            .last_epoch["det/weight_checksums"] for i in range(2)]
    assert sums[0] == sums[1]


def test_a_detector_training_set_without_fakes_is_refused(ray_session, tmp_path):
    """A corpus of originals only would train a 'detector' that has never seen a fake: refused before training."""
    from fst_ray.config import UserError
    from fst_ray.train.trainer import train_encoders

    data = str(tmp_path / "prepared")
    write_toy_frames(data, identities=4, frames=2, size=16, methods=())
    with pytest.raises(UserError, match="hold no fakes: a detector needs both classes"):
        train_encoders(_config(data, str(tmp_path / "runs"), roles=["det"], workers=1, cpus_per_worker=1.0))


@pytest.mark.slow
def test_a_run_made_with_other_settings_is_refused(runs, tmp_path):
    """The run folder records what its models depend on: resuming or reusing it with another learning rate is
    refused, naming the setting; more epochs continue it (train_encoders; the hypothesis jobs refuse a model
    trained for other epochs); a folder with settings but no results yet (a run that stopped before training)
    takes the new ones."""
    from fst_ray.config import UserError
    from fst_ray.train.trainer import PARAMS_FILE, check_run, run_dir, trained_epochs

    cfg = runs["cfg"].model_copy(update={"epochs": 3})
    check_run(cfg)  # the same settings: accepted
    check_run(cfg.model_copy(update={"epochs": 5}))
    assert trained_epochs(cfg) == 3
    with pytest.raises(UserError, match="lr: 0.001 there, 0.01 here"):
        check_run(cfg.model_copy(update={"lr": 0.01}))
    empty = cfg.model_copy(update={"output": str(tmp_path), "name": "stopped"})
    check_run(empty)
    check_run(empty.model_copy(update={"lr": 0.01}))
    assert '"lr": 0.01' in storage.read_bytes(storage.join(run_dir(empty), PARAMS_FILE)).decode()


# -- keeping a detector's best epoch by validation AUC --------------------------------------------------

class _Folder:
    """A checkpoint as fit reads one (``as_directory``), over a plain folder."""

    def __init__(self, path):
        self.path = path

    def as_directory(self):
        import contextlib
        return contextlib.nullcontext(str(self.path))


def test_fit_keeps_each_detectors_epoch_of_best_validation_auc_across_a_resume(tmp_path):
    """select_epoch val_auc: every checkpoint holds the model of the epoch whose val AUC was highest so far (a later
    epoch wins a tie), and a resumed run carries it on; the last epoch's model stays beside it for resuming."""
    import shutil

    from fst_ray.train.engine import selected_file

    batch = _detector_batch()
    aucs = iter([0.6, 0.9, 0.7, 0.9, 0.8])  # epochs 0-4: kept 1, then 3 (the tie, later)
    saved, weights = {}, {}

    def report(history, folder):
        epoch = history[-1]["epoch"]
        shutil.copytree(folder, tmp_path / f"epoch{epoch}")
        saved[epoch] = tmp_path / f"epoch{epoch}"

    def score(models):
        weights[len(weights)] = {k: v.clone() for k, v in models["det"].state_dict().items()}
        return {"det/val_auc": next(aucs)}

    cfg = TrainConfig(roles=["det"], arch=ARCH, epochs=3, image_size=32, select_epoch="val_auc")
    args = dict(fake_share=0.5, steps_per_epoch=2, batches=lambda epoch: iter([batch] * 2), report=report,
                device=torch.device("cpu"), score=score)
    fit(cfg, {"source_id": ("a",), "target_id": ("a",)}, **args)
    fit(cfg.model_copy(update={"epochs": 5}), {"source_id": ("a",), "target_id": ("a",)},
        checkpoint=_Folder(saved[2]), **args)

    def kept(epoch):
        return safe_torch_load((saved[epoch] / selected_file("det")).read_bytes())

    assert [kept(e)["metadata"]["epoch"] for e in range(5)] == [0, 1, 1, 3, 3]
    for epoch in (1, 3):
        assert all(torch.equal(kept(epoch)["state_dict"][k], v) for k, v in weights[epoch].items())
    last = safe_torch_load((saved[4] / "det.pt").read_bytes())
    assert last["metadata"]["epoch"] == 4 and not all(
        torch.equal(last["state_dict"][k], v) for k, v in weights[3].items())
    state = safe_torch_load((saved[4] / TRAIN_STATE).read_bytes())
    assert [r["det/selected_epoch"] for r in json.loads(state["history"])] == [0, 1, 1, 3, 3]
    assert state["selected"] == {"det": [0.9, 3]}


@pytest.mark.slow
def test_a_run_keeps_the_detectors_epoch_of_best_val_auc(ray_session, tmp_path):
    """Ray Train: the detector is scored on the val split after every epoch and its model file is that of the
    best epoch (its AUC on the val split, recomputed from the file, is the best recorded)."""
    from sklearn.metrics import roc_auc_score

    from fst_ray.train.trainer import train_encoders

    data = str(tmp_path / "prepared")
    write_toy_frames(data, identities=8, frames=4, size=32, train_pairs=2, val_pairs=1)
    summary = train_encoders(_config(data, str(tmp_path / "runs"), roles=["det"], workers=1, cpus_per_worker=1.0,
                                     epochs=3, select_epoch="val_auc"))
    history = _history(summary.run)
    aucs = [r["det/val_auc"] for r in history]
    best = max(range(len(aucs)), key=lambda e: (aucs[e], e))
    assert history[-1]["det/selected_epoch"] == best
    model, info = load_model(summary.models["det"])
    assert info["metadata"]["epoch"] == best
    rows = views.read_table(data, "frames", ["image", "det_label", "split"])
    rows = rows.filter(pc.equal(rows["split"], "val"))
    x = torch.from_numpy(frames.decode(rows["image"].to_pylist(), 32))
    with torch.no_grad():
        p_fake = torch.softmax(model.eval()(x.permute(0, 3, 1, 2).float() / 255), 1)[:, 1].numpy()
    assert roc_auc_score(rows["det_label"].to_numpy(), p_fake) == pytest.approx(aucs[best], abs=1e-6)


def test_keeping_the_best_epoch_needs_a_val_split_with_both_classes(ray_session, tmp_path):
    from fst_ray.config import UserError
    from fst_ray.train.trainer import train_encoders

    data = str(tmp_path / "prepared")
    write_toy_frames(data, identities=4, frames=2, size=16)  # train and test only
    with pytest.raises(UserError, match="split 'val' of .* holds det labels \\[\\]: a validation AUC needs"):
        train_encoders(_config(data, str(tmp_path / "runs"), roles=["det"], workers=1, cpus_per_worker=1.0,
                               select_epoch="val_auc"))


def test_a_local_run_checkpoints_resumes_and_exports_like_a_ray_train_run(ray_session, tmp_path):
    """backend local: the engine in this process, a checkpoint per epoch (the last two kept), a rerun with more
    epochs continues from the last one, the exported models are the last epoch's; the run records its backend,
    so resuming it on Ray Train is refused."""
    from fst_ray.config import UserError
    from fst_ray.train.trainer import train_encoders

    data = str(tmp_path / "prepared")
    write_toy_frames(data, identities=6, frames=4, size=32)
    cfg = _config(data, str(tmp_path / "runs"), roles=["source", "det"], workers=1, cpus_per_worker=1.0, epochs=2,
                  backend="local", name="here")
    first = train_encoders(cfg, progress=False)
    assert [r["epoch"] for r in _history(first.run)] == [0, 1] and first.last_epoch["epoch"] == 1
    second = train_encoders(cfg.model_copy(update={"epochs": 3}), progress=False)
    history = _history(second.run)
    assert [r["epoch"] for r in history] == [0, 1, 2] and history[2]["resumed_from_epoch"] == 1
    assert history[2]["step"] == 3 * history[0]["step"] > 0
    folders = sorted({storage.parent(u).rsplit("/", 1)[1] for u, _ in storage.list_files(second.run)
                      if u.endswith(TRAIN_STATE)})
    assert folders == ["epoch_0001", "epoch_0002"]
    for role in ("source", "det"):
        model, info = load_model(second.models[role])
        last = safe_torch_load(storage.read_bytes(storage.join(second.run, "epoch_0002", f"{role}.pt")))
        assert info["metadata"]["epoch"] == 2
        assert all(torch.equal(v, last["state_dict"][k]) for k, v in model.state_dict().items())
    with pytest.raises(UserError, match="backend"):
        train_encoders(cfg.model_copy(update={"backend": "ray_train", "epochs": 4}), progress=False)

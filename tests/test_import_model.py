"""Bring your own detector: one trained outside fst-ray by a plain PyTorch loop (timm network, a single logit,
ImageNet normalisation, another input size, saved from DDP with 'module.' keys) imported, its outputs matched,
and explained by the Shapley job; what cannot be imported faithfully is refused in one line."""

from __future__ import annotations

import pytest
import timm
import torch
from conftest import ELSEWHERE_MEAN as MEAN, ELSEWHERE_SIDE as SIDE, ELSEWHERE_STD as STD, train_elsewhere

from fst_ray import frames, roles
from fst_ray.models import load_model
from fst_ray.models.importer import ImportConfig, run_import
from fst_ray.train.toy import toy_frames, write_toy_frames

ARCH = "test_resnet"


def _toy():
    table = toy_frames(identities=4, frames=2, size=32)
    return table, frames.to_float(torch.from_numpy(frames.decode(table["image"].to_pylist(), 32)))


def _train_outside(path) -> torch.nn.Module:
    """A detector as a researcher's own script makes it: timm, one logit, BCE, ImageNet normalisation, 40 px."""
    table, images = _toy()
    return train_elsewhere(path, images, table["det_label"].to_pylist())


def _normalised(x: torch.Tensor) -> torch.Tensor:
    x = frames.resize(x, SIDE)
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def test_a_detector_trained_elsewhere_is_imported_with_its_outputs_matched(tmp_path):
    original = _train_outside(tmp_path / "theirs.pth")
    cfg = ImportConfig(weights=str(tmp_path / "theirs.pth"), arch=ARCH, output=str(tmp_path / "det.pt"),
                       image_size=SIDE)
    imported = run_import(cfg)
    assert imported.max_abs_diff <= 1e-4 and imported.checked_images == 16
    model, info = load_model(cfg.output)
    assert info["role"] == "det" and info["metadata"]["image_size"] == SIDE
    images = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))  # stored frames: resized to 40
    with torch.no_grad():
        ours = torch.softmax(model(frames.resize(images, SIDE)), 1)[:, 1]
        theirs = torch.sigmoid(original(_normalised(images))[:, 0])
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_an_identity_encoder_trained_elsewhere_keeps_its_outputs_and_names_its_classes(tmp_path):
    table, images = _toy()
    ids = sorted(set(table["source_id"].to_pylist()), reverse=True)  # their class order, not fst-ray's
    original = train_elsewhere(tmp_path / "enc.pth", images, [ids.index(i) for i in table["source_id"].to_pylist()],
                               outputs=len(ids))
    cfg = ImportConfig(weights=str(tmp_path / "enc.pth"), arch=ARCH, output=str(tmp_path / "source.pt"),
                       image_size=SIDE, role="source", classes=ids)
    assert run_import(cfg).max_abs_diff <= 1e-4
    model, info = load_model(cfg.output)
    assert info["role"] == "source" and info["classes"] == ids and info["num_classes"] == len(ids)
    with torch.no_grad():
        assert torch.allclose(model(frames.resize(images, SIDE)), original(_normalised(images)), atol=1e-4)
    row = table.to_pylist()[0]  # a map of this frame explains its own id's output
    assert roles.explained_class("source", info["classes"], row) == (row["source_id"], ids.index(row["source_id"]))
    with pytest.raises(ValueError, match="classes"):  # an encoder without the ids of its outputs
        ImportConfig(weights=cfg.weights, arch=ARCH, output=cfg.output, image_size=SIDE, role="target")
    with pytest.raises(ValueError, match="importable role"):  # the FST model is two networks, not one
        ImportConfig(weights=cfg.weights, arch=ARCH, output=cfg.output, image_size=SIDE, role="fst")


def test_two_classes_are_reordered_so_that_fake_is_class_one(tmp_path):
    torch.manual_seed(0)
    net = timm.create_model(ARCH, pretrained=False, num_classes=2).eval()
    torch.save(net.state_dict(), tmp_path / "two.pth")
    cfg = ImportConfig(weights=str(tmp_path / "two.pth"), arch=ARCH, output=str(tmp_path / "det.pt"),
                       image_size=32, head="two_classes", fake_index=0, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    run_import(cfg)
    model, _ = load_model(cfg.output)
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        theirs = net((x - 0.5) / 0.5)
        assert torch.allclose(model(x), theirs[:, [1, 0]], atol=1e-5)


def test_what_cannot_be_imported_faithfully_is_one_line(tmp_path):
    from jobs.import_model import main

    torch.save(timm.create_model(ARCH, pretrained=False, num_classes=1).state_dict(), tmp_path / "one.pth")
    torch.save(torch.nn.Linear(3, 2).state_dict(), tmp_path / "other.pth")
    base = ["--arch", ARCH, "--output", str(tmp_path / "out" / "det.pt"), "--image-size", "32"]
    assert main(["--weights", str(tmp_path / "other.pth"), *base]) == 2  # not this network
    assert main(["--weights", str(tmp_path / "one.pth"), "--head", "two_classes", *base]) == 2  # one output, not two
    torch.save({"net": torch.nn.Linear(2, 2)}, tmp_path / "code.pth")  # a pickled module: never loaded
    assert main(["--weights", str(tmp_path / "code.pth"), *base]) == 2


@pytest.mark.slow
def test_an_imported_detector_is_explained_by_the_shapley_job(tmp_path, ray_session):
    from fst_ray.shapley.config import ShapleyConfig
    from fst_ray.shapley.run import run_shapley

    _train_outside(tmp_path / "theirs.pth")
    cfg = ImportConfig(weights=str(tmp_path / "theirs.pth"), arch=ARCH, output=str(tmp_path / "det.pt"),
                       image_size=SIDE)
    run_import(cfg)
    data = str(tmp_path / "prepared")
    write_toy_frames(data, identities=4, frames=1, size=32)
    summary = run_shapley(ShapleyConfig(input=data, models=[cfg.output], output=str(tmp_path / "maps"), split=None,
                                        grid=2, budget=32, estimator="exact", actors=1), progress=False)
    assert summary.maps == summary.images > 0

"""Bring your own detector: one trained outside fst-ray by a plain PyTorch loop (timm network, a single logit,
ImageNet normalisation, another input size, saved from DDP with 'module.' keys) imported, its outputs matched,
and explained by the Shapley job; what cannot be imported faithfully is refused in one line."""

from __future__ import annotations

import pytest
import timm
import torch

from fst_ray import frames
from fst_ray.models import load_model
from fst_ray.models.importer import ImportConfig, run_import
from fst_ray.train.toy import toy_frames, write_toy_frames

ARCH, SIDE = "test_resnet", 40
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _train_outside(path) -> torch.nn.Module:
    """A detector as a researcher's own script makes it: timm, one logit, BCE, ImageNet normalisation, 40 px."""
    torch.manual_seed(0)
    net = timm.create_model(ARCH, pretrained=False, num_classes=1)
    table = toy_frames(identities=4, frames=2, size=32)
    x = frames.resize(frames.to_float(torch.from_numpy(frames.decode(table["image"].to_pylist(), 32))), SIDE)
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    y = torch.tensor(table["det_label"].to_pylist(), dtype=torch.float32)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    for _ in range(5):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x)[:, 0], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, path)  # as DDP saves it
    return net.eval()


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
        theirs = torch.sigmoid(original((frames.resize(images, SIDE) - torch.tensor(MEAN).view(1, 3, 1, 1))
                                        / torch.tensor(STD).view(1, 3, 1, 1))[:, 0])
    assert torch.allclose(ours, theirs, atol=1e-5)


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

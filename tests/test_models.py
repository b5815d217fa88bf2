"""Model factory, FST-Matching model and model files (CPU, tiny timm models)."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pytest
import timm
import torch
from torch import nn

from fst_ray import storage
from fst_ray.roles import ROLES
from fst_ray.models import (CheckpointError, FSTMatching, create_model, fst_loss, interaction, load_model,
                            load_payload, save_model)

ARCH = "test_resnet"


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread avoids oversubscription stalls."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("role", sorted(ROLES))
def test_every_role_builds_and_takes_raw_pixels(role):
    model = create_model(role, ARCH, None if role == "det" else 5).eval()
    out = model(torch.rand(3, 3, 32, 32))
    assert out.shape == (3, 2 if role in ("det", "fst") else 5)
    # normalisation is inside the model: an all-zero input is black, i.e. -mean/std after normalising
    norm = model.normalize(torch.zeros(1, 3, 4, 4))
    assert torch.allclose(norm[0, :, 0, 0], -model.normalize.mean.view(3) / model.normalize.std.view(3))


def test_efficientnet_b3_constructs():
    model = create_model("det", "efficientnet_b3").eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 64)).shape == (1, 2)


@pytest.mark.slow
def test_pretrained_without_a_file_asks_timms_hub_and_says_why_it_could_not():
    """pretrained: true fetches timm's ImageNet weights; where the hub is out of reach (offline here), one clear
    error that names the alternative (a weights file), not a hub traceback."""
    code = ("from fst_ray.models import create_model\n"
            "try:\n    create_model('det', 'resnet18', pretrained=True)\n"
            "except ValueError as e:\n    print('ERR', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"}).stdout
    assert out.startswith("ERR could not fetch the ImageNet weights of resnet18 from timm's model hub")
    assert "train.weights" in out


def test_packaged_imagenet_weights_load_into_timm_and_recognise_a_photo():
    """The ImageNet EfficientNet-Lite0 weights shipped in a package (another implementation's names, matched by
    order and shape) make timm's tf_efficientnet_lite0 an ImageNet classifier: Grace Hopper's photo, centre
    crop at 224 px, is top-1 "military uniform" (ImageNet class 652) through the model's own normalisation."""
    from PIL import Image

    from fst_ray.models.factory import backbones
    from fst_ray.models.backbone import PACKAGED_IMAGENET, Normalize, create_backbone, load_backbone_weights, \
        read_state_dict
    from fst_ray.synth.photo import photo

    arch = "tf_efficientnet_lite0"
    net, normalize = create_backbone(arch, 1000)
    assert isinstance(normalize, Normalize) and normalize.mean.flatten().tolist() == [0.5, 0.5, 0.5]
    load_backbone_weights(net, read_state_dict(PACKAGED_IMAGENET[arch]), PACKAGED_IMAGENET[arch])
    img = Image.fromarray(photo())
    side = min(img.size)
    img = img.crop(((img.width - side) // 2, (img.height - side) // 2,
                    (img.width + side) // 2, (img.height + side) // 2)).resize((224, 224), Image.Resampling.BICUBIC)
    x = torch.from_numpy(np.asarray(img)).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad():
        logits = net.eval()(normalize(x))
    assert int(logits.argmax()) == 652
    assert float(torch.softmax(logits, 1)[0, 652]) > 0.3
    # the same weights through the role factory (pretrained=True: the package's, no hub), a new 2-class head
    det = create_model("det", arch, pretrained=True)
    assert torch.equal(det.backbone.conv_stem.weight, net.conv_stem.weight)
    assert det.backbone.classifier.out_features == 2
    # identity heads of another size, and the FST model's pooled-feature backbones (no classifier at all)
    for model in (create_model("source", arch, 7, pretrained=True), create_model("fst", arch, (7, 5), pretrained=True)):
        for backbone in backbones(model):
            assert torch.equal(backbone.blocks[3][0].conv_pw.weight, net.blocks[3][0].conv_pw.weight)


def test_a_package_uri_names_a_file_inside_an_installed_package_or_says_it_is_not_installed():
    from fst_ray.models.backbone import PACKAGED_IMAGENET

    assert storage.exists(PACKAGED_IMAGENET["tf_efficientnet_lite0"])
    with pytest.raises(ValueError, match="no installed package 'no_such_package'"):
        storage.read_bytes("package://no_such_package/w.pth")


def test_bad_requests_are_refused():
    with pytest.raises(ValueError, match="2 classes"):
        create_model("det", ARCH, num_classes=3)
    with pytest.raises(ValueError, match="num_classes"):
        create_model("source", ARCH)
    with pytest.raises(ValueError, match="unknown role"):
        create_model("teacher", ARCH, 3)
    with pytest.raises(ValueError, match="unknown timm"):
        create_model("det", "no_such_net")


def _imagenet_like_weights(arch: str) -> dict[str, torch.Tensor]:
    torch.manual_seed(123)
    return timm.create_model(arch, pretrained=False, num_classes=1000).state_dict()


@pytest.mark.parametrize("role", ["source", "fst"])
def test_backbone_weights_from_a_uri(role, tmp_path, s3_bucket):
    state = _imagenet_like_weights(ARCH)
    buf = io.BytesIO()
    torch.save({"state_dict": state}, buf)
    for uri in (str(tmp_path / "w.pth"), storage.join(s3_bucket, "w.pth")):
        storage.write_bytes(uri, buf.getvalue())
        model = create_model(role, ARCH, 7, pretrained=True, weights=uri)
        nets = [model.source_encoder, model.target_encoder] if role == "fst" else [model.backbone]
        for net in nets:
            got = net.state_dict()
            assert torch.equal(got["conv1.0.weight"], state["conv1.0.weight"])
            assert "fc.weight" not in got or got["fc.weight"].shape[0] == 7  # a new head


def test_weights_of_another_architecture_are_refused(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(_imagenet_like_weights("resnet10t"), path)
    with pytest.raises(ValueError, match="does not fit"):
        create_model("det", ARCH, pretrained=True, weights=str(path))


def test_interaction_per_sample_toward_its_own_label_and_bounded():
    torch.manual_seed(0)
    t, s, y = torch.randn(6, 8), torch.randn(6, 8), torch.tensor([0, 1, 1, 0, 1, 0])
    mlp = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 2))
    inter = interaction(mlp, t, s, y)
    assert inter.shape == (6,) and inter.abs().min() > 0 and inter.abs().max() <= 2
    i = 2  # one value per sample, toward that sample's own label (not a B x B block)
    f = lambda a, b: torch.softmax(mlp(torch.cat([a, b]).view(1, -1)), 1)[0, y[i]]  # noqa: E731
    z = torch.zeros(8)
    assert torch.allclose(inter[i], f(t[i], s[i]) - f(z, s[i]) - f(t[i], z) + f(z, z), atol=1e-6)
    # the official release's defect: a linear head's logits have no interaction at all
    lin = nn.Linear(16, 2)
    logit = lambda a, b: lin(torch.cat([a, b], 1))  # noqa: E731
    zt, zs = torch.zeros_like(t), torch.zeros_like(s)
    assert torch.allclose(logit(t, s) - logit(zt, s) - logit(t, zs) + logit(zt, zs), torch.zeros(6, 2), atol=1e-6)


def test_fst_loss_falls_on_a_toy_batch():
    torch.manual_seed(0)
    model = FSTMatching(ARCH, num_classes=4)
    x = torch.rand(8, 3, 24, 24)
    det, src, tar = torch.tensor([0, 1] * 4), torch.tensor([0, 1, 2, 3] * 2), torch.tensor([0, 2, 2, 1] * 2)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    totals, inters = [], []
    for _ in range(15):
        terms = fst_loss(model(x, det), det, src, tar, lam=0.1)
        opt.zero_grad()
        terms["total"].mean().backward()
        opt.step()
        totals.append(terms["total"].mean().item())
        inters.append(terms["interaction"].abs().mean().item())
    assert min(inters) > 0
    assert sum(totals[-3:]) / 3 < 0.7 * sum(totals[:3]) / 3
    model.eval()
    with torch.no_grad():  # plain call: detection logits, as a detector
        assert model(x).shape == (8, 2)


def test_model_file_round_trip(tmp_path, s3_bucket):
    model = create_model("source", ARCH, 3).eval()
    x = torch.rand(2, 3, 32, 32)
    for uri in (str(tmp_path / "m" / "source.pt"), storage.join(s3_bucket, "m/source.pt")):
        save_model(uri, model, role="source", arch=ARCH, num_classes=3, classes=["000", "001", "002"],
                   metadata={"epoch": 4})
        again, info = load_model(uri)
        assert info["classes"] == ["000", "001", "002"] and info["metadata"] == {"epoch": 4}
        with torch.no_grad():
            assert torch.equal(again(x), model(x))


class _Evil(nn.Module):
    def forward(self, x):
        return x


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "whole_module.pt"
    torch.save(_Evil(), path)  # pickles the class: code, not data
    with pytest.raises(CheckpointError, match="pickled code"):
        load_payload(str(path))
    plain = tmp_path / "plain.pt"
    torch.save({"format": "something else"}, plain)
    with pytest.raises(CheckpointError, match="not an fst-ray model file"):
        load_model(str(plain))


@pytest.mark.parametrize("arch", ["tf_efficientnet_lite0"])  # (timm's ResNet heads start small already)
def test_a_new_classifier_head_starts_near_zero_logits(arch):
    """timm's EfficientNet init draws a 2-class head from ±1/√2 (logits up to ~10 on random images, initial
    detector losses of ~4.7); fst-ray's heads start near 0, so fine-tuning does not first undo its head."""
    model = create_model("det", arch, 2).eval()
    with torch.no_grad():
        logits = model(torch.rand(8, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    assert logits.abs().max() < 1.0, logits

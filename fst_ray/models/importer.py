"""Bring your own models: a detector or an identity encoder trained elsewhere (a timm network), as an fst-ray
model file.

The weights are read as a state dict (``weights_only``, never pickled code), a common key prefix (``module.``
of DDP, ``model.`` of Lightning) stripped, another implementation's names mapped onto timm's by order and shape
(:func:`fst_ray.models.backbone.load_backbone_weights`: e.g. efficientnet_pytorch's ``_conv_stem/_blocks``
onto ``tf_efficientnet_*``). The result is an fst-ray model of its role: the same timm network behind the input
normalisation it was trained with, its input size recorded (jobs resize frames to it). A detector's output is
turned into fst-ray's two classes (class 1 = fake: a single logit z becomes (0, z), whose softmax is sigmoid(z);
two classes are reordered so that fake is 1); an identity encoder (``source``, ``target``) keeps its outputs, and
its file names the id of each (``classes``: the ids of the frames' ``source_id`` / ``target_id`` column, so that
a map explains the frame's own id). :func:`import_model` then runs the network as it was trained (timm with the
given weights, inputs normalised as given) and the imported model on the same images and refuses unless their
outputs agree within ``tolerance`` (a detector: its fake logit; an encoder: every logit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import timm
import torch
from pydantic import Field, model_validator
from torch import nn

from fst_ray import frames, roles, storage
from fst_ray.config import ImageSide, JobConfig, UserError, one_of, register_config
from fst_ray.data import views
from fst_ray.models.backbone import classifier_name, read_state_dict, timm_names
from fst_ray.models.checkpoint import save_model
from fst_ray.models.factory import create_model

__all__ = ["ImportedModel", "ImportConfig", "strip_prefix", "import_model", "fake_logit", "run_import", "importable"]


def importable() -> tuple[str, ...]:
    """The roles a single timm classifier can fill (the FST model's two backbones and heads cannot)."""
    return tuple(r for r in roles.names() if roles.get(r).family == "classifier")


Importable = one_of(importable, "importable role")
"""A role :func:`importable` names, checked when a config is validated."""


@dataclass
class ImportedModel:
    """An imported model: ``model`` (fst-ray's, of ``role``), what its file records, and the check it passed
    (``max_abs_diff`` of the compared logits over ``checked_images`` images)."""

    model: nn.Module
    role: str
    arch: str
    image_size: int
    max_abs_diff: float
    checked_images: int


def strip_prefix(state: dict[str, torch.Tensor], own: set[str], prefix: str | None = None) -> dict[str, torch.Tensor]:
    """``state`` without ``prefix`` on its keys; with ``prefix=None``, without the longest dotted prefix every
    key shares where the keys do not already name ``own``'s tensors (``module.``, ``model.``, ``net.`` ...)."""
    if prefix is None:
        keys = list(state)
        if not keys or set(keys) & own:
            return state
        parts = keys[0].split(".")
        prefix = ""
        for i in range(1, len(parts)):
            candidate = ".".join(parts[:i]) + "."
            if all(k.startswith(candidate) for k in keys):
                prefix = candidate
    return {k[len(prefix):] if prefix and k.startswith(prefix) else k: v for k, v in state.items()}


def fake_logit(logits: torch.Tensor, output: str, fake_index: int = 1) -> torch.Tensor:
    """The fake-vs-real logit of a detector's output ``[B, k]``: a single logit as it is (``output="logit"``),
    else the fake class's logit minus the other's (``"two_classes"``)."""
    if output == "logit":
        return logits[:, 0]
    return logits[:, fake_index] - logits[:, 1 - fake_index]


def _original(arch: str, state: dict[str, torch.Tensor], classes: int) -> nn.Module:
    """The network as it was trained: timm's ``arch`` with ``classes`` outputs and every tensor of ``state``."""
    net = timm.create_model(arch, pretrained=False, num_classes=classes)
    named = timm_names(net, state)
    missing = [k for k in net.state_dict() if k not in named]
    wrong = [k for k, v in named.items() if k in net.state_dict() and net.state_dict()[k].shape != v.shape]
    if missing or wrong:
        raise ValueError(f"the weights are not a whole {arch} with {classes} output(s): {len(missing)} tensors "
                         f"missing, {len(wrong)} of another shape (e.g. {(missing + wrong)[:3]})")
    net.load_state_dict({k: v for k, v in named.items() if k in net.state_dict()})
    return net.eval()


def import_model(weights: str, arch: str, image_size: int, mean: tuple[float, float, float],
                 std: tuple[float, float, float], role: str = "det", output: str = "logit", fake_index: int = 1,
                 classes: list[str] | None = None, prefix: str | None = None, check: torch.Tensor | None = None,
                 tolerance: float = 1e-4, seed: int = 0) -> ImportedModel:
    """Import the model of ``role`` whose state dict is at ``weights`` (see the module doc). A detector's
    ``output``: ``logit`` (one output, fake when positive) or ``two_classes`` (``fake_index`` says which); an
    encoder's ``classes``: the id of each of its outputs, in order. ``check``: images ``[N, 3, H, W]`` in 0..1
    to compare the two on (default: 16 random images at ``image_size``). Raises ``ValueError`` when the outputs
    disagree by more than ``tolerance`` (max abs difference)."""
    spec = roles.get(role)
    if role not in importable():
        raise ValueError(f"role {role!r} cannot be imported as one timm network (importable: "
                         f"{', '.join(importable())})")
    if spec.detector and output not in ("logit", "two_classes"):
        raise ValueError(f"output {output!r}: 'logit' (one output) or 'two_classes'")
    if not spec.detector and not classes:
        raise ValueError(f"an identity encoder ({role}) needs `classes`: the {spec.column} of each of its outputs")
    n = (1 if output == "logit" else 2) if spec.detector else len(classes)
    probe = timm.create_model(arch, pretrained=False, num_classes=n)
    state = strip_prefix(read_state_dict(weights), set(probe.state_dict()), prefix)
    original = _original(arch, state, n)
    model = create_model(role, arch, None if spec.detector else n)
    backbone = model.backbone
    head_name = classifier_name(backbone)
    backbone.load_state_dict({k: v for k, v in original.state_dict().items()
                              if not (spec.detector and k.startswith(head_name + "."))}, strict=not spec.detector)
    if spec.detector:
        _two_classes(backbone.get_classifier(), original.get_classifier(), arch, head_name, output, fake_index)
    with torch.no_grad():
        model.normalize.mean.copy_(torch.tensor(mean).view(1, -1, 1, 1))
        model.normalize.std.copy_(torch.tensor(std).view(1, -1, 1, 1))
    model.eval()
    if check is None:
        check = torch.rand(16, 3, image_size, image_size, generator=torch.Generator().manual_seed(seed))
    check = frames.resize(check, image_size)
    norm = (check - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    with torch.no_grad():
        theirs, ours = original(norm).double(), model(check).double()
    if spec.detector:
        theirs, ours = fake_logit(theirs, output, fake_index), ours[:, 1] - ours[:, 0]
    diff = float((theirs - ours).abs().max())
    if not diff <= tolerance:
        raise ValueError(f"the imported {arch} and the network as trained disagree on {len(check)} images: "
                         f"{'fake logit' if spec.detector else 'logits'} max abs difference {diff:.2e} > "
                         f"{tolerance:g} (check the normalisation" + (", the output kind and the fake index)"
                                                                       if spec.detector else ")"))
    return ImportedModel(model, role, arch, image_size, diff, len(check))


def _two_classes(head: nn.Module, theirs: nn.Module, arch: str, head_name: str, output: str,
                 fake_index: int) -> None:
    """Set fst-ray's two-class ``head`` from a detector's own (one logit z -> (0, z); two classes -> fake last)."""
    if not isinstance(head, nn.Linear) or not isinstance(theirs, nn.Linear):
        raise ValueError(f"{arch}'s classifier ({head_name}) is not one linear layer, which the import needs to "
                         "turn its output into fst-ray's two classes")
    with torch.no_grad():
        if output == "logit":  # (0, z): softmax gives sigmoid(z) for fake
            head.weight.copy_(torch.cat([torch.zeros_like(theirs.weight), theirs.weight]))
            head.bias.copy_(torch.cat([torch.zeros_like(theirs.bias), theirs.bias]))
        else:
            order = [1 - fake_index, fake_index]
            head.weight.copy_(theirs.weight[order])
            head.bias.copy_(theirs.bias[order])


@register_config("import_model")
class ImportConfig(JobConfig):
    """A detector or identity encoder trained elsewhere (a timm network's state dict) -> an fst-ray model file."""

    weights: str = Field(..., description="the detector's state dict: .pt/.pth (read weights_only) or .safetensors, "
                                          "local or s3://")
    arch: str = Field(..., description="its timm architecture (another implementation's names are matched by order "
                                       "and shape)")
    output: str = Field(..., description="the fst-ray model file to write (*.pt)")
    role: Importable = Field("det", description="what it is: det (a detector) or an identity encoder (source, target)")
    image_size: ImageSide = Field(..., description="the input side it was trained at (frames are resized to it)")
    mean: tuple[float, float, float] = Field((0.485, 0.456, 0.406), description="its input normalisation's mean "
                                                                               "(of 0..1 pixels; ImageNet's default)")
    std: tuple[float, float, float] = Field((0.229, 0.224, 0.225), description="its input normalisation's std")
    head: Literal["logit", "two_classes"] = Field("logit", description="one output (fake when positive) or two "
                                                                       "classes")
    fake_index: int = Field(1, ge=0, le=1, description="with two classes: the index of 'fake'")
    classes: list[str] | None = Field(None, description="an encoder's: the id of each output, in order, as the "
                                                        "frames' source_id (source) or target_id (target) names it")
    prefix: str | None = Field(None, description="key prefix to strip (default: the one every key shares, e.g. "
                                                 "'module.')")
    tables: str | None = Field(None, description="an ingest output whose test frames the check runs on (default: "
                                                 "random images)")
    check_images: int = Field(16, ge=1, description="images the check compares the two on")
    tolerance: float = Field(1e-4, gt=0, description="largest fake-logit difference the check accepts")

    def outputs(self) -> list[str]:
        return [storage.parent(self.output)]

    @model_validator(mode="after")
    def _encoders_name_their_classes(self):
        if not roles.get(self.role).detector and not self.classes:
            raise ValueError(f"an identity encoder ({self.role}) needs `classes`: the "
                             f"{roles.get(self.role).column} of each of its outputs, in order")
        return self


def run_import(cfg: ImportConfig) -> ImportedModel:
    """Import, check and write the model file (:func:`import_model`)."""
    check = None
    if cfg.tables:
        keys = frames.read_index(cfg.tables, views.where(split="test"))["key"].to_pylist()[: cfg.check_images]
        if not keys:
            raise UserError(f"{cfg.tables} holds no test frames to check the import on")
        check = torch.stack([frames.to_float(torch.from_numpy(v[None]))[0]
                             for v in frames.images(cfg.tables, keys).values()])
    try:
        imported = import_model(cfg.weights, cfg.arch, cfg.image_size, cfg.mean, cfg.std, cfg.role, cfg.head,
                                cfg.fake_index, cfg.classes, cfg.prefix, check, cfg.tolerance)
    except ValueError as e:
        raise UserError(str(e)) from e
    detector = roles.get(cfg.role).detector
    save_model(cfg.output, imported.model, role=cfg.role, arch=cfg.arch,
               num_classes=2 if detector else len(cfg.classes), classes=None if detector else cfg.classes,
               metadata={"image_size": cfg.image_size, "imported": {
                   "weights": cfg.weights, "mean": list(cfg.mean), "std": list(cfg.std),
                   **({"head": cfg.head, "fake_index": cfg.fake_index} if detector else {}),
                   "max_abs_diff": imported.max_abs_diff, "checked_images": imported.checked_images}})
    return imported

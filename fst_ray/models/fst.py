"""The FST-Matching detection model (docs/design.md §1), with the official release's defects fixed.

Two encoders, ``source`` and ``target``, each a timm backbone whose pooled feature ``x`` is split by a
squeeze-and-excitation gate ``w`` into a *related* part ``x*w`` (fed to that encoder's identity
classifier) and an *unrelated* part ``x*(1-w)``. The detection head ``f`` classifies the concatenated
unrelated parts ``[t, s]``. ``f`` is a two-layer MLP: with one linear layer (the official release) the
interaction ``f(t,s) - f(0,s) - f(t,0) + f(0,0)`` of its logits is identically zero.

Loss per sample (:func:`fst_loss`): ``CE_det + 0.5 CE_src + 1.0 CE_tar - lambda * I``, where ``I`` is the
interaction of ``f``'s probability of the sample's true label (one value per sample, not the release's
B x B block). Probabilities keep ``I`` in [-2, 2]; on logits the term is unbounded and the optimiser
inflates it by scaling the head (on the synthetic demo the logit interaction grew from 3 to 100 in three
epochs, the loss went negative and the detector fell to chance).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fst_ray.models.backbone import create_backbone

__all__ = ["SEGate", "FSTMatching", "FSTOutput", "interaction", "fst_loss", "LOSS_WEIGHTS"]

#: weights of (CE_det, CE_src, CE_tar) in the FST-Matching loss (the paper's 1, 0.5, 1.0)
LOSS_WEIGHTS = (1.0, 0.5, 1.0)


class SEGate(nn.Module):
    """Squeeze-and-excitation gate on a pooled feature: ``w = sigmoid(W2 relu(W1 x))``, ``w`` in (0, 1)^D."""

    def __init__(self, dim: int, reduction: int = 16):
        super().__init__()
        hidden = max(dim // reduction, 4)
        self.fc = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def interaction(head: nn.Module, t: torch.Tensor, s: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Per-sample interaction of the unrelated parts toward ``label``: with ``f = softmax(head(.))[y]``,
    ``f(t,s) - f(0,s) - f(t,0) + f(0,0)``, shape ``[B]``, in [-2, 2]. One head call on 4B rows."""
    zt, zs = torch.zeros_like(t), torch.zeros_like(s)
    logits = head(torch.cat([torch.cat([t, s], 1), torch.cat([zt, s], 1),
                             torch.cat([t, zs], 1), torch.cat([zt, zs], 1)], 0))
    prob = torch.softmax(logits.float(), 1)
    f_ts, f_0s, f_t0, f_00 = prob.gather(1, label.repeat(4).view(-1, 1)).view(4, -1)
    return f_ts - f_0s - f_t0 + f_00


@dataclass
class FSTOutput:
    """Everything one training forward gives: logits ``[B, 2]`` (det) and ``[B, C]`` (source, target
    identities), and the interaction ``[B]`` of the unrelated parts toward each sample's det label."""

    det: torch.Tensor
    source: torch.Tensor
    target: torch.Tensor
    interaction: torch.Tensor


class FSTMatching(nn.Module):
    """FST-Matching detector over raw pixels ``[B, 3, H, W]`` in 0..1; ``num_classes``: the class counts of its
    source and target heads (source scene videos, target identities; one int: both the same, as in FF++).

    ``model(x)`` gives detection logits ``[B, 2]`` (0 = real, 1 = fake), so it explains and evaluates
    like any detector; ``model(x, det_label)`` gives the training :class:`FSTOutput` (one forward call,
    so DistributedDataParallel sees it)."""

    def __init__(self, arch: str, num_classes: int | tuple[int, int], hidden: int = 256, reduction: int = 16):
        super().__init__()
        self.source_encoder, self.normalize = create_backbone(arch, 0)
        self.target_encoder, _ = create_backbone(arch, 0)
        dim = self.source_encoder.num_features
        self.source_gate, self.target_gate = SEGate(dim, reduction), SEGate(dim, reduction)
        n_source, n_target = (num_classes, num_classes) if isinstance(num_classes, int) else num_classes
        self.source_head, self.target_head = nn.Linear(dim, n_source), nn.Linear(dim, n_target)
        self.det_head = nn.Sequential(nn.Linear(2 * dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 2))

    def forward(self, x: torch.Tensor, det_label: torch.Tensor | None = None) -> torch.Tensor | FSTOutput:
        x = self.normalize(x)
        fs, ft = self.source_encoder(x), self.target_encoder(x)
        ws, wt = self.source_gate(fs), self.target_gate(ft)
        us, ut = fs * (1 - ws), ft * (1 - wt)
        if det_label is None:
            return self.det_head(torch.cat([ut, us], 1))
        return FSTOutput(det=self.det_head(torch.cat([ut, us], 1)), source=self.source_head(fs * ws),
                         target=self.target_head(ft * wt), interaction=interaction(self.det_head, ut, us, det_label))


def fst_loss(out: FSTOutput, det_label: torch.Tensor, source_label: torch.Tensor, target_label: torch.Tensor,
             lam: float, det_weight: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Per-sample terms ``[B]``: ``det``, ``source``, ``target`` cross-entropies, ``interaction`` toward the
    true det label, and ``total = 1.0 det + 0.5 source + 1.0 target - lam * interaction``. ``det_weight``:
    optional per-class weights ``[2]`` of the detection cross-entropy."""
    w_det, w_src, w_tar = LOSS_WEIGHTS
    terms = {
        "det": F.cross_entropy(out.det, det_label, weight=det_weight, reduction="none"),
        "source": F.cross_entropy(out.source, source_label, reduction="none"),
        "target": F.cross_entropy(out.target, target_label, reduction="none"),
        "interaction": out.interaction,
    }
    terms["total"] = (w_det * terms["det"] + w_src * terms["source"] + w_tar * terms["target"]
                      - lam * terms["interaction"])
    return terms

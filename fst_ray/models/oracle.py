"""Oracle architectures: models whose exact Shapley maps are known in closed form, registered with timm so that
their model files go through every job the way trained ones do (the known answers of ``tests/test_known_answers.py``).

``cell_oracle_g{G}`` (G in :data:`GRIDS`): the input ``[B, 3, S, S]`` (S a multiple of G; normalised by the
:class:`~fst_ray.models.Classifier` around it) is reduced to its G×G cell means per channel, ``m`` ``[B, 3·G²]``
(channel-major), and class k's logit is ``Σ_j weight[k, j] · m_j + bias[k]``. The logit is additive in the
cells, so under any removal that replaces whole cells (every baseline fst-ray has) the exact Shapley value of
cell c for class k is ``Σ_channels weight[k, (ch, c)] · (m_(ch, c)(image) − m_(ch, c)(baseline))``:
:func:`exact_map`. With ``num_classes=0`` the model returns ``m`` itself (features, as timm's backbones do).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.models import register_model
from torch import nn

__all__ = ["GRIDS", "CellOracle", "exact_map"]

GRIDS = (2, 4, 8, 16)


class CellOracle(nn.Module):
    """Linear in the cell means (see module doc); ``weight`` ``[num_classes, 3·G²]`` and ``bias`` are its state."""

    def __init__(self, grid: int, num_classes: int = 2, **_):
        super().__init__()
        self.grid = grid
        self.num_features = 3 * grid * grid
        self.num_classes = num_classes
        self.pretrained_cfg = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
        if num_classes:
            self.weight = nn.Parameter(torch.zeros(num_classes, self.num_features))
            self.bias = nn.Parameter(torch.zeros(num_classes))

    def cell_means(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 3·G²]``: each channel's mean over each cell, channel-major."""
        if x.shape[-1] % self.grid or x.shape[-2] % self.grid:
            raise ValueError(f"a {self.grid}x{self.grid} oracle needs a side divisible by {self.grid}: {tuple(x.shape)}")
        return F.adaptive_avg_pool2d(x, self.grid).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.cell_means(x)
        return F.linear(m, self.weight, self.bias) if self.num_classes else m


def exact_map(model: nn.Module, image: torch.Tensor, baseline: torch.Tensor, cls: int) -> torch.Tensor:
    """The exact Shapley map ``[G²]`` of class ``cls`` of a :class:`~fst_ray.models.Classifier` around a
    :class:`CellOracle`, for ``image`` and an all-baseline image ``baseline`` (both ``[3, S, S]`` in 0..1)."""
    oracle: CellOracle = model.backbone
    with torch.no_grad():
        diff = oracle.cell_means(model.normalize(image[None])) - oracle.cell_means(model.normalize(baseline[None]))
        return (oracle.weight[cls] * diff[0]).view(3, -1).sum(0)


def _register(grid: int) -> None:
    def build(pretrained: bool = False, num_classes: int = 2, **kwargs) -> CellOracle:
        return CellOracle(grid, num_classes)

    build.__name__ = f"cell_oracle_g{grid}"
    build.__qualname__ = build.__name__
    globals()[build.__name__] = build  # timm lists it in the module's __all__
    register_model(build)


for _g in GRIDS:
    _register(_g)

"""Point priors of anchor-free heads: one point per feature-map cell and level."""

from collections.abc import Sequence

import torch
from torch import nn

from .anchor_generator import _grid_centers

__all__ = ["PointGenerator"]


class PointGenerator(nn.Module):
    """Cell centres of every level, in input-image pixels.

    Args:
        strides: stride of each level (pixels per cell), e.g. ``[8, 16, 32, 64, 128]``.
        offset: position of the point inside its cell, in cells: 0.5 is the cell centre (FCOS's
            and MMRotate's choice), 0 its top-left corner.

    ``forward(features)`` with per-level ``[N, C, H_l, W_l]`` returns per level ``[H_l * W_l, 2]``
    points ``(x, y)`` in row-major cell order (the order of the heads' flattened outputs).
    """

    def __init__(self, strides: Sequence[int], offset: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= offset < 1.0:
            raise ValueError(f"point offset must be in [0, 1), got {offset}")
        self.strides = [int(s) for s in strides]
        self.offset = offset

    @property
    def num_features(self) -> int:
        return len(self.strides)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        if len(features) != len(self.strides):
            raise ValueError(
                f"point generator has {len(self.strides)} strides but got {len(features)} levels"
            )
        points = []
        for feature, stride in zip(features, self.strides):
            size = (feature.shape[-2], feature.shape[-1])
            x, y = _grid_centers(size, stride, self.offset, feature.device)
            points.append(torch.stack([x, y], dim=1))
        return points

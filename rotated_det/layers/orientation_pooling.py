"""Rotation-invariant encoding of oriented responses (ORN's ORPool): the maximum of each filter's
responses over its orientations.

The output of an active-rotating-filter layer (:class:`~rotated_det.layers.ORConv2d`) rolls its
orientation channels when the input turns by 90 degrees; the maximum over them does not change,
so the pooled features of a turned image are the turned pooled features (S2A-Net classifies from
them, and regresses boxes from the orientation-sensitive ones).
"""

import torch
from torch import nn

__all__ = ["RotationInvariantPooling"]


class RotationInvariantPooling(nn.Module):
    """Max over orientations.

    Args:
        num_orientations: N, orientations per filter in the input.

    ``[B, C * N, H, W]`` (channel ``c * N + r``: filter c at orientation r) -> ``[B, C, H, W]``.
    """

    def __init__(self, num_orientations: int = 8) -> None:
        super().__init__()
        if num_orientations < 1:
            raise ValueError(f"num_orientations must be >= 1, got {num_orientations}")
        self.num_orientations = num_orientations

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        if c % self.num_orientations != 0:
            raise ValueError(
                f"RotationInvariantPooling: channels ({c}) must be a multiple of "
                f"num_orientations={self.num_orientations}"
            )
        pooled: torch.Tensor = x.unflatten(1, (-1, self.num_orientations)).amax(dim=2)
        return pooled

    def extra_repr(self) -> str:
        return f"num_orientations={self.num_orientations}"

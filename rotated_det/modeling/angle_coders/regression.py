"""Plain angle regression: the head predicts the angle itself, in radians (one channel)."""

import math

import torch

from ..losses import smooth_l1_loss
from .base import AngleCoder

__all__ = ["RegressionAngleCoder"]


class RegressionAngleCoder(AngleCoder):
    """
    The angle as one channel in radians, with a smooth L1 (default: L1) loss on the plain
    difference. The baseline the other coders improve on: the loss does not know that the two
    ends of the range are one orientation, so a box at -89 degrees predicted as 89 degrees costs
    178 degrees of loss although the boxes nearly coincide, and a head torn between the two
    targets regresses to their mean, 0 degrees (the boundary problem).

    Args:
        angle_version: "le90", "le135" or "oc" (``angle_coders.base``).
        beta: smooth L1 transition point in radians; 0 gives L1, the loss of MMRotate's Rotated
            FCOS with a separate angle branch.

    ``default_loss_weight`` 0.2: MMRotate ``rotated_fcos_sep_angle_r50_fpn_1x_dota_le90``
    (``L1Loss``, averaged over positives).
    """

    encode_size = 1
    default_loss_weight = 0.2

    def __init__(self, angle_version: str = "le90", beta: float = 0.0) -> None:
        super().__init__(angle_version)
        if beta < 0:
            raise ValueError(f"beta must be >= 0 (radians; 0 is L1), got {beta}")
        self.beta = float(beta)

    def encode(self, angles: torch.Tensor) -> torch.Tensor:
        """[N] degrees -> [N, 1] radians (wrapped into the version's range first)."""
        return (self._prepare_angles(angles) * (math.pi / 180.0)).unsqueeze(1)

    def decode(self, pred: torch.Tensor) -> torch.Tensor:
        """[N, 1] radians -> [N] degrees, wrapped into the version's range (a prediction of
        91 degrees in "le90" is the orientation -89)."""
        self._check_pred(pred)
        return self._prepare_angles(pred[:, 0] * (180.0 / math.pi))

    def loss(self, pred: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        """[N, 1] radians, [N] degrees -> [N] smooth L1 (L1 when ``beta == 0``) in radians."""
        self._check_pred(pred)
        return smooth_l1_loss(pred[:, 0], self.encode(angles)[:, 0].to(pred.dtype), self.beta)

    def _repr_args(self) -> dict[str, object]:
        return {"angle_version": self.angle_version, "beta": self.beta}

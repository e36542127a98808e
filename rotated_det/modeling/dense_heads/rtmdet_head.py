"""The rotated RTMDet head: convolutions shared across levels, BatchNorms per level."""

import math

import torch
from torch import nn

from ..backbone.cspnext import ConvNormAct

__all__ = ["RotatedRTMDetHead"]


class RotatedRTMDetHead(nn.Module):
    """Classification and regression towers of 3x3 ConvNormAct units (SiLU) whose conv weights
    are shared by all levels while each level keeps its own norm layers (statistics differ from
    level to level), and 1x1 prediction convs per level (MMRotate's ``RotatedRTMDetSepBNHead``).

    Args:
        in_channels: channels of every input level.
        num_classes: K.
        strides: stride of each level (pixels).
        feat_channels: channels of the tower convs.
        stacked_convs: convs per tower (2 in RTMDet).
        norm: normalisation of the tower convs (one layer per level and conv).
        share_conv: share the tower conv weights across levels (RTMDet: yes).
        exp_on_reg: distances are ``exp(x) * stride`` (m / l models: always positive) instead of
            ``x * stride`` (tiny / s models). Either way every point starts out predicting
            distances of one stride (a square of side 2 strides): the linear form's bias starts
            at 1 where MMRotate's starts at 0. With 0, half the first boxes have a negative side,
            hence IoU 0 and no box-loss gradient (their soft-label weight is that IoU too); a gt
            whose only positive starts that way never learns (2 of 3 objects undetected after
            the 150 iterations of tests/modeling/test_overfit.py).
        angle_encode_size: channels of the angle output E (1: the angle in radians).
        prior_prob: initial foreground probability (sets the class-logit bias).

    ``forward`` takes per level ``[N, C, H_l, W_l]`` and returns three per-level lists: logits
    ``[N, K, H_l, W_l]``, distances ``[N, 4, H_l, W_l]`` (left, top, right, bottom in pixels; see
    ``DistanceAnglePointCoder``) and angle codes ``[N, E, H_l, W_l]``.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        strides: list[int] | tuple[int, ...],
        feat_channels: int = 256,
        stacked_convs: int = 2,
        norm: str = "BN",
        share_conv: bool = True,
        exp_on_reg: bool = True,
        angle_encode_size: int = 1,
        prior_prob: float = 0.01,
    ) -> None:
        super().__init__()
        if angle_encode_size < 1:
            raise ValueError(
                f"RotatedRTMDetHead: angle_encode_size must be >= 1, got {angle_encode_size}"
            )
        if stacked_convs < 1:
            raise ValueError(f"RotatedRTMDetHead: stacked_convs must be >= 1, got {stacked_convs}")
        self.strides = [int(s) for s in strides]
        num_levels = len(self.strides)

        def tower() -> list[ConvNormAct]:
            return [
                ConvNormAct(in_channels if i == 0 else feat_channels, feat_channels, 3, norm=norm)
                for i in range(stacked_convs)
            ]

        cls_towers = [tower() for _ in range(num_levels)]
        reg_towers = [tower() for _ in range(num_levels)]
        cls_preds = [nn.Conv2d(feat_channels, num_classes, 1) for _ in range(num_levels)]
        reg_preds = [nn.Conv2d(feat_channels, 4, 1) for _ in range(num_levels)]
        ang_preds = [nn.Conv2d(feat_channels, angle_encode_size, 1) for _ in range(num_levels)]
        for conv in [u.conv for t in cls_towers + reg_towers for u in t] + reg_preds + ang_preds:
            nn.init.normal_(conv.weight, std=0.01)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
        for conv in cls_preds:
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.constant_(_bias(conv), -math.log((1 - prior_prob) / prior_prob))
        if not exp_on_reg:
            for conv in reg_preds:
                nn.init.constant_(_bias(conv), 1.0)
        if share_conv:
            for towers in (cls_towers, reg_towers):
                for level_tower in towers[1:]:
                    for unit, first in zip(level_tower, towers[0]):
                        unit.conv = first.conv
        # per level: a Sequential of the tower's units (MMRotate's parameter names)
        self.cls_convs = nn.ModuleList(nn.Sequential(*t) for t in cls_towers)
        self.reg_convs = nn.ModuleList(nn.Sequential(*t) for t in reg_towers)
        self.rtm_cls = nn.ModuleList(cls_preds)
        self.rtm_reg = nn.ModuleList(reg_preds)
        self.rtm_ang = nn.ModuleList(ang_preds)
        self.num_classes = num_classes
        self.angle_encode_size = angle_encode_size
        self.exp_on_reg = exp_on_reg

    def forward(
        self, features: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        if len(features) != len(self.strides):
            raise ValueError(
                f"RotatedRTMDetHead has {len(self.strides)} strides but got {len(features)} levels"
            )
        logits, distances, angles = [], [], []
        for level, x in enumerate(features):
            cls_feat = self.cls_convs[level](x)
            reg_feat = self.reg_convs[level](x)
            logits.append(self.rtm_cls[level](cls_feat))
            reg = self.rtm_reg[level](reg_feat)
            if self.exp_on_reg:
                reg = reg.float().exp()
            distances.append(reg * self.strides[level])
            angles.append(self.rtm_ang[level](reg_feat))
        return logits, distances, angles


def _bias(conv: nn.Conv2d) -> torch.Tensor:
    if conv.bias is None:  # pragma: no cover - the predictors are built with a bias
        raise ValueError("a prediction conv without bias")
    return conv.bias

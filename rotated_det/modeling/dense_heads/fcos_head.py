"""The rotated FCOS head: per-point class, side distances, angle and centerness."""

import math

import torch
from torch import nn
from torch.nn import functional as F

from .conv_tower import Scale, conv_tower, init_dense_head

__all__ = ["RotatedFCOSHead"]


class RotatedFCOSHead(nn.Module):
    """Classification and regression towers shared across levels (Tian et al. 2019), with an
    angle output on the regression tower (MMRotate's rotated FCOS).

    Args:
        in_channels: channels of every input level.
        num_classes: K.
        strides: stride of each level (pixels); the predicted distances are in units of the
            level's stride before ``forward`` multiplies them back (FCOS's ``norm_on_bbox``).
        conv_dims: channels of the 3x3 convs of each tower (4 x 256 in the paper).
        norm: normalization after each conv ("GN" in FCOS).
        prior_prob: initial foreground probability (sets the logit bias).
        angle_encode_size: channels of the angle output E (1 for plain regression, the bins of
            CSL, the phases of PSC).
        scale_angle: multiply the angle output by a learnable scalar per level (MMRotate's
            ``scale_angle``, used with plain regression).
        centerness_on_reg: centerness from the regression tower (True, FCOS's improvement) or
            from the classification tower.

    ``forward`` takes per level ``[N, C, H_l, W_l]`` and returns four per-level lists: logits
    ``[N, K, H_l, W_l]``, distances ``[N, 4, H_l, W_l]`` (left, top, right, bottom in pixels,
    >= 0, see ``DistanceAnglePointCoder``), angle codes ``[N, E, H_l, W_l]`` and centerness
    logits ``[N, 1, H_l, W_l]``.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        strides: list[int] | tuple[int, ...],
        conv_dims: tuple[int, ...] | list[int] = (256, 256, 256, 256),
        norm: str = "GN",
        prior_prob: float = 0.01,
        angle_encode_size: int = 1,
        scale_angle: bool = True,
        centerness_on_reg: bool = True,
    ) -> None:
        super().__init__()
        if angle_encode_size < 1:
            raise ValueError(
                f"RotatedFCOSHead: angle_encode_size must be >= 1, got {angle_encode_size}"
            )
        self.cls_tower = conv_tower(in_channels, conv_dims, norm)
        self.reg_tower = conv_tower(in_channels, conv_dims, norm)
        cur = conv_dims[-1] if conv_dims else in_channels
        self.cls_score = nn.Conv2d(cur, num_classes, 3, padding=1)
        self.distance_pred = nn.Conv2d(cur, 4, 3, padding=1)
        self.angle_pred = nn.Conv2d(cur, angle_encode_size, 3, padding=1)
        self.centerness = nn.Conv2d(cur, 1, 3, padding=1)
        init_dense_head(self)
        if self.cls_score.bias is not None:
            nn.init.constant_(self.cls_score.bias, -math.log((1 - prior_prob) / prior_prob))
        self.strides = [int(s) for s in strides]
        self.scales = nn.ModuleList(Scale(1.0) for _ in self.strides)
        self.angle_scales = nn.ModuleList(Scale(1.0) for _ in self.strides) if scale_angle else None
        self.num_classes = num_classes
        self.angle_encode_size = angle_encode_size
        self.centerness_on_reg = centerness_on_reg

    def forward(
        self, features: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        if len(features) != len(self.strides):
            raise ValueError(
                f"RotatedFCOSHead has {len(self.strides)} strides but got {len(features)} levels"
            )
        logits, distances, angles, centerness = [], [], [], []
        for level, x in enumerate(features):
            cls_features = self.cls_tower(x)
            reg_features = self.reg_tower(x)
            logits.append(self.cls_score(cls_features))
            distance = F.relu(self.scales[level](self.distance_pred(reg_features)))
            distances.append(distance * self.strides[level])
            angle = self.angle_pred(reg_features)
            if self.angle_scales is not None:
                angle = self.angle_scales[level](angle)
            angles.append(angle)
            source = reg_features if self.centerness_on_reg else cls_features
            centerness.append(self.centerness(source))
        return logits, distances, angles, centerness

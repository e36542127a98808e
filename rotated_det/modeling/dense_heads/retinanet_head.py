"""The RetinaNet head: classification and box subnets shared across levels."""

import math

import torch
from torch import nn

from .conv_tower import conv_tower, init_dense_head

__all__ = ["RotatedRetinaNetHead"]


class RotatedRetinaNetHead(nn.Module):
    """Classification and box subnets shared across levels.

    Args:
        in_channels: channels of every input level.
        num_classes: K.
        num_anchors: anchors per cell A.
        conv_dims: channels of the 3x3 convs of each subnet (4 x 256 in the paper).
        norm: normalization after each conv ("" for none, "GN", ...).
        prior_prob: initial foreground probability of every anchor (sets the logit bias).
        box_dim: deltas per anchor: 5 (x, y, w, h, angle), or 4 (x, y, w, h) when an angle coder
            predicts the angle.
        angle_encode_size: E > 0 adds an angle branch (a 3x3 conv on the box subnet's features,
            as MMRotate's angle-branch heads) predicting E channels per anchor for an angle coder
            (CSL bins, PSC phases); 0: no angle branch.

    Per level ``[N, C, H, W]`` -> logits ``[N, A * K, H, W]``, deltas ``[N, A * box_dim, H, W]``
    and angle codes ``[N, A * E, H, W]`` (an empty list when E == 0).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        num_anchors: int,
        conv_dims: tuple[int, ...] | list[int] = (256, 256, 256, 256),
        norm: str = "",
        prior_prob: float = 0.01,
        box_dim: int = 5,
        angle_encode_size: int = 0,
    ) -> None:
        super().__init__()
        if box_dim not in (4, 5) or (box_dim == 4) != (angle_encode_size > 0):
            raise ValueError(
                "RotatedRetinaNetHead: box_dim must be 5 without an angle branch, or 4 with one "
                f"(angle_encode_size > 0); got box_dim={box_dim}, "
                f"angle_encode_size={angle_encode_size}"
            )
        self.cls_subnet = conv_tower(in_channels, conv_dims, norm)
        self.bbox_subnet = conv_tower(in_channels, conv_dims, norm)
        cur = conv_dims[-1] if conv_dims else in_channels
        self.cls_score = nn.Conv2d(cur, num_anchors * num_classes, 3, padding=1)
        self.bbox_pred = nn.Conv2d(cur, num_anchors * box_dim, 3, padding=1)
        self.angle_pred = (
            nn.Conv2d(cur, num_anchors * angle_encode_size, 3, padding=1)
            if angle_encode_size
            else None
        )
        init_dense_head(self)
        if self.cls_score.bias is not None:
            nn.init.constant_(self.cls_score.bias, -math.log((1 - prior_prob) / prior_prob))
        self.num_classes = num_classes
        self.box_dim = box_dim
        self.angle_encode_size = angle_encode_size

    def forward(
        self, features: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        logits, deltas, angles = [], [], []
        for x in features:
            logits.append(self.cls_score(self.cls_subnet(x)))
            box_features = self.bbox_subnet(x)
            deltas.append(self.bbox_pred(box_features))
            if self.angle_pred is not None:
                angles.append(self.angle_pred(box_features))
        return logits, deltas, angles

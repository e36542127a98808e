"""The S2A-Net head (Han et al., "Align Deep Features for Oriented Object Detection", TGRS 2021):
a feature alignment module and an oriented detection module, shared across levels."""

import math

import torch
from torch import nn
from torch.nn import functional as F

from rotated_det.layers import AlignConv, ORConv2d, RotationInvariantPooling

from .conv_tower import conv_tower, init_dense_head
from .retinanet_head import RotatedRetinaNetHead

__all__ = ["S2ANetHead"]


class S2ANetHead(nn.Module):
    """Both modules of S2A-Net's head.

    - Feature alignment module (FAM): the anchor refinement network, a RetinaNet head with one
      anchor per location (classification and box subnets), whose deltas turn each square anchor
      into a rotated box; then the alignment convolution (:class:`AlignConv`, + ReLU) re-samples
      the features along those boxes.
    - Oriented detection module (ODM): active rotating filters (:class:`ORConv2d`, ``C / N``
      filters at N orientations: C orientation-sensitive channels) feed the box subnet; their
      maximum over orientations (:class:`RotationInvariantPooling`, C / N channels) feeds the
      classification subnet.

    Args:
        in_channels: C, channels of every input level (a multiple of ``num_orientations``).
        num_classes: K.
        conv_dims: channels of the 3x3 convs of each subnet (2 x 256 in S2A-Net), in both modules.
        norm: normalization after each subnet conv ("" for none, "GN", ...).
        prior_prob: initial foreground probability of every location (both classifiers).
        num_orientations: N of the active rotating filters (8 in S2A-Net).
        align_kernel_size: k of the alignment convolution (3).

    See :meth:`alignment` and :meth:`detection` for the shapes.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        conv_dims: tuple[int, ...] | list[int] = (256, 256),
        norm: str = "",
        prior_prob: float = 0.01,
        num_orientations: int = 8,
        align_kernel_size: int = 3,
    ) -> None:
        super().__init__()
        if in_channels % num_orientations != 0:
            raise ValueError(
                f"S2ANetHead: in_channels={in_channels} must be a multiple of "
                f"num_orientations={num_orientations} (C / N active rotating filters)"
            )
        self.fam = RotatedRetinaNetHead(
            in_channels=in_channels,
            num_classes=num_classes,
            num_anchors=1,
            conv_dims=conv_dims,
            norm=norm,
            prior_prob=prior_prob,
            box_dim=5,
        )
        self.align_conv = AlignConv(in_channels, in_channels, align_kernel_size)
        self.or_conv = ORConv2d(
            in_channels, in_channels // num_orientations, 3, num_orientations=num_orientations
        )
        self.or_pool = RotationInvariantPooling(num_orientations)
        self.cls_subnet = conv_tower(in_channels // num_orientations, conv_dims, norm)
        self.bbox_subnet = conv_tower(in_channels, conv_dims, norm)
        cls_dim = conv_dims[-1] if conv_dims else in_channels // num_orientations
        box_dim = conv_dims[-1] if conv_dims else in_channels
        self.cls_score = nn.Conv2d(cls_dim, num_classes, 3, padding=1)
        self.bbox_pred = nn.Conv2d(box_dim, 5, 3, padding=1)
        init_dense_head(self)  # N(0, 0.01) convs (the FAM's own init is the same)
        nn.init.normal_(self.or_conv.weight, std=0.01)  # as MMRotate's ODM
        if self.or_conv.bias is not None:
            nn.init.zeros_(self.or_conv.bias)
        for classifier in (self.cls_score, self.fam.cls_score):
            if classifier.bias is not None:
                nn.init.constant_(classifier.bias, -math.log((1 - prior_prob) / prior_prob))
        self.num_classes = num_classes
        self.num_orientations = num_orientations

    def alignment(
        self, features: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """FAM's anchor refinement network: per level ``[N, C, H, W]`` -> logits
        ``[N, K, H, W]`` and deltas ``[N, 5, H, W]`` of the level's square anchors."""
        logits, deltas, _ = self.fam(features)
        return logits, deltas

    def detection(
        self,
        features: list[torch.Tensor],
        refined_boxes: list[torch.Tensor],
        strides: list[int] | list[float],
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """FAM's alignment convolution, then the ODM.

        Args:
            features: per level ``[N, C, H, W]``.
            refined_boxes: per level ``[N, H * W, 5]`` the refined box of each location (image
                pixels, degrees; row-major locations), the anchors of the ODM.
            strides: per level, image pixels per feature pixel.

        Returns:
            per level logits ``[N, K, H, W]`` and deltas ``[N, 5, H, W]`` against
            ``refined_boxes``.
        """
        logits, deltas = [], []
        for x, boxes, stride in zip(features, refined_boxes, strides):
            aligned = F.relu(self.align_conv(x, boxes, float(stride)))
            oriented = self.or_conv(aligned)
            logits.append(self.cls_score(self.cls_subnet(self.or_pool(oriented))))
            deltas.append(self.bbox_pred(self.bbox_subnet(oriented)))
        return logits, deltas

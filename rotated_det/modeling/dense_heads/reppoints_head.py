"""The RepPoints head (Yang et al., ICCV 2019), shared by the point-set detectors (rotated
RepPoints, Oriented RepPoints, CFA, SASM): per FPN location a set of K points in two stages and
a classification read at those points.

1. initial stage: a 3x3 conv + 1x1 conv on the regression tower predict K points around the
   location;
2. refine stage: a k x k deformable convolution (k * k = K) whose taps are the initial points
   reads the regression tower again and predicts a correction of each point; the same kind of
   deformable convolution on the classification tower gives the class logits. The initial
   points steer both deformable convolutions with their gradient scaled by ``gradient_mul``
   (RepPoints' choice: the classification and refinement should not drag the initial points
   much).

Points are (x, y) in units of the level's stride, relative to the location's point (the point
generator's cell point); ``RotatedRepPoints`` turns them into image pixels.
"""

import math

import torch
from torch import nn

from rotated_det.layers.deform_conv import DeformConv2d

from .conv_tower import conv_tower, init_dense_head

__all__ = ["RepPointsHead", "points_to_deform_offsets"]


def points_to_deform_offsets(points: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Deformable-convolution offsets that make tap t read point t.

    Args:
        points: ``[N, 2 * K, H, W]`` K = k * k points (x, y) per location, in feature pixels
            relative to the location.
        kernel_size: k.

    Returns:
        ``[N, 2 * K, H, W]`` offsets ``(dy, dx)`` per tap (row-major taps): point t minus the
        plain tap ``(ky, kx)``, ``ky, kx in {-(k-1)/2, ..., (k-1)/2}``.
    """
    n, _, h, w = points.shape
    radius = (kernel_size - 1) // 2
    taps = torch.arange(-radius, radius + 1, dtype=points.dtype, device=points.device)
    ky, kx = torch.meshgrid(taps, taps, indexing="ij")
    base = torch.stack([kx.reshape(-1), ky.reshape(-1)], dim=1)  # [K, 2] (x, y)
    xy = points.view(n, -1, 2, h, w) - base.view(1, -1, 2, 1, 1)
    return xy.flip(2).reshape(n, -1, h, w)


class RepPointsHead(nn.Module):
    """Classification and point towers, initial and refined point sets (module docstring).

    Args:
        in_channels: channels of every input level.
        num_classes: K classes.
        strides: stride of each level (pixels); informative here (the meta-architecture's point
            generator must agree).
        conv_dims: channels of the 3x3 convs of each tower (3 x 256 in RepPoints).
        point_feat_channels: channels of the points' 3x3 conv and of the deformable
            convolutions (256).
        num_points: points per set, an odd square (9: a 3 x 3 deformable kernel).
        gradient_mul: scale of the gradient that reaches the initial points through the
            deformable convolutions (0.3 in MMRotate's rotated RepPoints configs).
        norm: normalization after each tower conv ("GN" in MMRotate's configs).
        prior_prob: initial foreground probability (sets the logit bias).
        deform_implementation: see :class:`~rotated_det.layers.deform_conv.DeformConv2d`.

    ``forward`` takes per level ``[N, C, H_l, W_l]`` and returns three per-level lists: class
    logits ``[N, num_classes, H_l, W_l]``, initial points ``[N, 2 * num_points, H_l, W_l]`` and
    refined points ``[N, 2 * num_points, H_l, W_l]``, each point (x, y) in strides relative to
    its location. The refined points are the initial ones (detached) plus the refinement.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        strides: list[int] | tuple[int, ...],
        conv_dims: tuple[int, ...] | list[int] = (256, 256, 256),
        point_feat_channels: int = 256,
        num_points: int = 9,
        gradient_mul: float = 0.3,
        norm: str = "GN",
        prior_prob: float = 0.01,
        deform_implementation: str = "auto",
    ) -> None:
        super().__init__()
        kernel_size = math.isqrt(num_points)
        if kernel_size * kernel_size != num_points or kernel_size % 2 != 1:
            raise ValueError(
                f"RepPointsHead: num_points must be an odd square (9, 25, ...), got {num_points}"
            )
        if not 0.0 <= gradient_mul <= 1.0:
            raise ValueError(f"RepPointsHead: gradient_mul must be in [0, 1], got {gradient_mul}")
        self.cls_tower = conv_tower(in_channels, conv_dims, norm)
        self.reg_tower = conv_tower(in_channels, conv_dims, norm)
        cur = conv_dims[-1] if conv_dims else in_channels
        self.points_init_conv = nn.Conv2d(cur, point_feat_channels, 3, padding=1)
        self.points_init_out = nn.Conv2d(point_feat_channels, 2 * num_points, 1)
        self.cls_deform = DeformConv2d(
            cur, point_feat_channels, kernel_size, implementation=deform_implementation
        )
        self.cls_out = nn.Conv2d(point_feat_channels, num_classes, 1)
        self.points_refine_deform = DeformConv2d(
            cur, point_feat_channels, kernel_size, implementation=deform_implementation
        )
        self.points_refine_out = nn.Conv2d(point_feat_channels, 2 * num_points, 1)
        init_dense_head(self)
        if self.cls_out.bias is not None:
            nn.init.constant_(self.cls_out.bias, -math.log((1 - prior_prob) / prior_prob))
        self.num_classes = num_classes
        self.num_points = num_points
        self.kernel_size = kernel_size
        self.gradient_mul = gradient_mul
        self.strides = [int(s) for s in strides]
        self.relu = nn.ReLU()

    def forward(
        self, features: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        if len(features) != len(self.strides):
            raise ValueError(
                f"RepPointsHead has {len(self.strides)} strides but got {len(features)} levels"
            )
        logits, points_init, points_refine = [], [], []
        for x in features:
            cls_features = self.cls_tower(x)
            reg_features = self.reg_tower(x)
            init = self.points_init_out(self.relu(self.points_init_conv(reg_features)))
            steering = (1 - self.gradient_mul) * init.detach() + self.gradient_mul * init
            offsets = points_to_deform_offsets(steering, self.kernel_size)
            logits.append(self.cls_out(self.relu(self.cls_deform(cls_features, offsets))))
            refine = self.points_refine_out(
                self.relu(self.points_refine_deform(reg_features, offsets))
            )
            points_init.append(init)
            points_refine.append(refine + init.detach())
        return logits, points_init, points_refine

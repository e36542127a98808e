"""R3Det's feature refinement module (FRM): re-samples each FPN level at the refined boxes."""

import torch
from torch import nn

from rotated_det.layers import rotated_feature_align

__all__ = ["FeatureRefineModule"]


class FeatureRefineModule(nn.Module):
    """Feature refinement of R3Det (Yang et al., AAAI 2021), as MMRotate's FRM.

    Per level: ``y = conv_5x1(conv_1x5(x)) + conv_1x1(x)`` (no activation), then
    ``x + rotated_feature_align(y, boxes, 1 / stride)``: each location gets the features of its
    refined box's centre and four corners (:func:`rotated_det.layers.rotated_feature_align`).
    The convolutions are shared across levels.

    Args:
        in_channels: channels C of every level (kept).
        strides: stride of each level in input pixels, e.g. [8, 16, 32, 64, 128].
        points: samples per box: 5 (centre and corners, R3Det) or 1 (centre).

    Inputs: per level ``[N, C, H_l, W_l]`` features and ``[N, H_l * W_l, 5]`` boxes (one per
    location, in row-major location order, input pixels and degrees; R3Det passes them detached).
    Output: per level ``[N, C, H_l, W_l]``.
    """

    def __init__(self, *, in_channels: int, strides: list[int], points: int = 5) -> None:
        super().__init__()
        if points not in (1, 5):
            raise ValueError(f"FeatureRefineModule: points must be 1 or 5, got {points}")
        self.conv_1x5 = nn.Conv2d(in_channels, in_channels, (1, 5), padding=(0, 2))
        self.conv_5x1 = nn.Conv2d(in_channels, in_channels, (5, 1), padding=(2, 0))
        self.conv_1x1 = nn.Conv2d(in_channels, in_channels, 1)
        for conv in (self.conv_1x5, self.conv_5x1, self.conv_1x1):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)  # type: ignore[arg-type]
        self.strides = [int(s) for s in strides]
        self.points = points

    def forward(
        self, features: list[torch.Tensor], boxes: list[torch.Tensor]
    ) -> list[torch.Tensor]:
        if len(features) != len(self.strides) or len(boxes) != len(self.strides):
            raise ValueError(
                f"FeatureRefineModule: {len(self.strides)} strides {self.strides} but "
                f"{len(features)} feature levels and {len(boxes)} box levels"
            )
        out = []
        for x, level_boxes, stride in zip(features, boxes, self.strides):
            n, _, h, w = x.shape
            y = self.conv_5x1(self.conv_1x5(x)) + self.conv_1x1(x)
            aligned = rotated_feature_align(
                y, level_boxes.reshape(n, h, w, 5), 1.0 / stride, self.points
            )
            out.append(x + aligned)
        return out

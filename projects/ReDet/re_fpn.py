"""ReFPN: the rotation-equivariant Feature Pyramid Network of ReDet (Han et al., CVPR 2021)."""

import math

import torch
from torch import nn
from torch.nn import functional as F

from rotated_det.modeling import Backbone
from rotated_det.modeling.backbone.fpn import TopBlock

from .regular_layers import RegularConv2d, regular_fields

__all__ = ["ReFPN"]


class ReFPN(Backbone):
    """FPN whose lateral (1x1) and output (3x3) convolutions are C_N-equivariant (``RegularConv2d``
    with a bias per field, no normalisation or activation, as the authors' ReFPN), on a bottom-up
    network in the regular representation (``ReResNet``). Every output is a regular feature map
    of ``out_channels = fields * N`` channels: the rotated RoI heads pool it with RiRoIAlign, and
    the RPN reads it as plain channels.

    The top-down path upsamples with "nearest-exact" interpolation to the lateral map's size: the
    same as nearest for the usual exact doubling, and symmetric under a half turn for odd sizes,
    where nearest is not (so that odd-sized inputs keep exact quarter-turn equivariance).

    Args:
        bottom_up: a Backbone with a ``num_orientations`` attribute (ReResNet) whose outputs
            include ``in_features``.
        in_features: bottom-up features, fine to coarse, each at twice the previous stride.
        out_channels: width of every output map (a multiple of N; the authors': 256, 32 fields).
        top_block: optional coarser levels (``LastLevelMaxPool``: P6 by a 1x1 stride-2 max pool,
            which acts per channel and keeps the representation).

    Outputs ``{"p{s}": [B, out_channels, H / 2**s, W / 2**s]}``, fine to coarse.
    """

    def __init__(
        self,
        bottom_up: Backbone,
        in_features: list[str],
        out_channels: int,
        top_block: TopBlock | None = None,
    ) -> None:
        super().__init__()
        n = getattr(bottom_up, "num_orientations", None)
        if not isinstance(n, int):
            raise ValueError(
                f"ReFPN needs a bottom-up network in the regular representation of C_N with a "
                f"num_orientations attribute (ReResNet), got {type(bottom_up).__name__}"
            )
        regular_fields(out_channels, n, "ReFPN out_channels")
        shapes = bottom_up.output_shape()
        strides = []
        for f in in_features:
            if f not in shapes:
                raise ValueError(
                    f"ReFPN in_features has {f!r} but the bottom-up network outputs {list(shapes)}"
                )
            strides.append(int(shapes[f].stride or 0))
        for a, b in zip(strides[:-1], strides[1:]):
            if b != 2 * a:
                raise ValueError(f"ReFPN in_features strides must double level to level: {strides}")
        self.lateral_convs = nn.ModuleList(
            RegularConv2d(
                int(shapes[f].channels or 0), out_channels, 1, bias=True, num_orientations=n
            )
            for f in in_features
        )
        self.fpn_convs = nn.ModuleList(
            RegularConv2d(out_channels, out_channels, 3, padding=1, bias=True, num_orientations=n)
            for _ in in_features
        )
        self.bottom_up = bottom_up
        self.in_features = list(in_features)
        self.top_block = top_block
        self.num_orientations = n
        self._out_feature_strides = {f"p{int(math.log2(s))}": s for s in strides}
        if top_block is not None:
            last = int(math.log2(strides[-1]))
            for k in range(top_block.num_levels):
                self._out_feature_strides[f"p{last + k + 1}"] = 2 ** (last + k + 1)
        self._out_features = list(self._out_feature_strides)
        self._out_feature_channels = {k: out_channels for k in self._out_features}
        self._size_divisibility = strides[-1]

    @property
    def size_divisibility(self) -> int:
        return self._size_divisibility

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``x``: ``[B, 3, H, W]`` images; returns the pyramid, fine to coarse."""
        bottom_up = self.bottom_up(x)
        laterals = [conv(bottom_up[f]) for conv, f in zip(self.lateral_convs, self.in_features)]
        for i in range(len(laterals) - 1, 0, -1):
            size = laterals[i - 1].shape[-2:]
            laterals[i - 1] = laterals[i - 1] + F.interpolate(
                laterals[i], size=size, mode="nearest-exact"
            )
        results = [conv(lateral) for conv, lateral in zip(self.fpn_convs, laterals)]
        if self.top_block is not None:
            src = self.top_block.in_feature
            top_input = (
                bottom_up[src] if src in bottom_up else results[self._out_features.index(src)]
            )
            results.extend(self.top_block(top_input))
        return dict(zip(self._out_features, results))

"""CSPNeXt-PAFPN: RTMDet's neck, a path-aggregation FPN (Liu et al., CVPR 2018) built from CSP
layers, as MMDetection's ``CSPNeXtPAFPN``.

Top-down: the coarsest input is reduced by a 1x1 conv to the next level's channels, upsampled
(nearest, x2), concatenated with that level's input and fused by a CSP layer; repeated down to
the finest level. Bottom-up: each fused map is downsampled by a 3x3 stride-2 conv, concatenated
with the next coarser top-down map and fused by a CSP layer. A 3x3 conv per level then maps every
output to ``out_channels``.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

from .backbone import Backbone
from .cspnext import ConvNormAct, CSPLayer

__all__ = ["CSPNeXtPAFPN"]


class CSPNeXtPAFPN(Backbone):
    """
    Args:
        bottom_up: a Backbone (CSPNeXt) whose outputs include ``in_features``.
        in_features: its features, fine to coarse, each of twice the previous stride, e.g.
            ["res3", "res4", "res5"].
        out_channels: channels of every output level.
        num_csp_blocks: CSPNeXt blocks per CSP layer (1 tiny / s, 2 m, 3 l).
        expand_ratio: branch width of the CSP layers.
        norm: normalisation after every conv.

    ``forward``: ``[N, 3, H, W]`` -> ``{"p{log2 stride}": [N, out_channels, H / stride,
    W / stride]}`` for the strides of ``in_features`` (H, W multiples of the coarsest stride:
    ``size_divisibility``).
    """

    def __init__(
        self,
        *,
        bottom_up: Backbone,
        in_features: list[str],
        out_channels: int,
        num_csp_blocks: int = 3,
        expand_ratio: float = 0.5,
        norm: str = "BN",
    ) -> None:
        super().__init__()
        shapes = bottom_up.output_shape()
        missing = [f for f in in_features if f not in shapes]
        if missing or len(in_features) < 2:
            raise ValueError(
                f"CSPNeXtPAFPN: in_features {list(in_features)} must be >= 2 of the bottom-up "
                f"outputs {list(shapes)}"
            )
        channels = [int(shapes[f].channels or 0) for f in in_features]
        strides = [int(shapes[f].stride or 0) for f in in_features]
        if any(b != 2 * a for a, b in zip(strides[:-1], strides[1:])):
            raise ValueError(f"CSPNeXtPAFPN: in_features strides must double, got {strides}")
        n = len(channels)
        self.bottom_up = bottom_up
        self.in_features = list(in_features)
        # top-down, coarse to fine: reduce_layers[j] / top_down_blocks[j] feed level n - 2 - j
        self.reduce_layers = nn.ModuleList(
            ConvNormAct(channels[i], channels[i - 1], 1, norm=norm) for i in range(n - 1, 0, -1)
        )
        self.top_down_blocks = nn.ModuleList(
            CSPLayer(
                2 * channels[i - 1],
                channels[i - 1],
                num_csp_blocks,
                add_identity=False,
                expand_ratio=expand_ratio,
                norm=norm,
            )
            for i in range(n - 1, 0, -1)
        )
        # bottom-up, fine to coarse
        self.downsamples = nn.ModuleList(
            ConvNormAct(channels[i], channels[i], 3, stride=2, norm=norm) for i in range(n - 1)
        )
        self.bottom_up_blocks = nn.ModuleList(
            CSPLayer(
                2 * channels[i],
                channels[i + 1],
                num_csp_blocks,
                add_identity=False,
                expand_ratio=expand_ratio,
                norm=norm,
            )
            for i in range(n - 1)
        )
        self.out_convs = nn.ModuleList(ConvNormAct(c, out_channels, 3, norm=norm) for c in channels)
        self._out_features = [f"p{int(math.log2(s))}" for s in strides]
        self._out_feature_channels = {f: out_channels for f in self._out_features}
        self._out_feature_strides = dict(zip(self._out_features, strides))
        self._size_divisibility = max(strides[-1], bottom_up.size_divisibility)

    @property
    def size_divisibility(self) -> int:
        return self._size_divisibility

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.bottom_up(x)
        inputs = [features[f] for f in self.in_features]
        n = len(inputs)
        top_down = [inputs[-1]]  # fine to coarse once complete
        for j in range(n - 1):
            high = self.reduce_layers[j](top_down[0])
            top_down[0] = high
            low = inputs[n - 2 - j]
            up = F.interpolate(high, size=low.shape[-2:], mode="nearest")
            top_down.insert(0, self.top_down_blocks[j](torch.cat([up, low], dim=1)))
        outs = [top_down[0]]
        for i in range(n - 1):
            down = self.downsamples[i](outs[-1])
            outs.append(self.bottom_up_blocks[i](torch.cat([down, top_down[i + 1]], dim=1)))
        return {
            name: conv(out) for name, conv, out in zip(self._out_features, self.out_convs, outs)
        }

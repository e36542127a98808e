"""Feature Pyramid Network on top of a bottom-up backbone."""

import math

import torch
from torch import nn
from torch.nn import functional as F

from rotated_det.layers.batch_norm import get_norm
from rotated_det.layers.wrappers import Conv2d

from .backbone import Backbone

__all__ = ["FPN", "TopBlock", "LastLevelMaxPool", "LastLevelP6P7"]


def _init_xavier(conv: nn.Conv2d) -> None:
    nn.init.kaiming_uniform_(conv.weight, a=1)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class TopBlock(nn.Module):
    """Adds ``num_levels`` coarser levels to an FPN, computed from the feature ``in_feature`` (a
    bottom-up output such as "res5" or an FPN output such as "p5"); ``forward`` returns them
    fine to coarse, each at twice the stride of the previous."""

    num_levels: int
    in_feature: str

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError


class LastLevelMaxPool(TopBlock):
    """Adds P6 = max-pool(P5, kernel 1, stride 2) (two-stage detectors: P2-P6)."""

    num_levels = 1
    in_feature = "p5"

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [F.max_pool2d(x, kernel_size=1, stride=2, padding=0)]


class LastLevelP6P7(TopBlock):
    """Adds P6 = conv3x3/2(in), P7 = conv3x3/2(relu(P6)) (RetinaNet: P3-P7).

    Args:
        in_channels: channels of the input feature (C5's 2048 or 512, or the FPN width for "p5").
        out_channels: FPN width.
        in_feature: "res5" (from the backbone's C5) or "p5" (from the FPN output).
    """

    num_levels = 2

    def __init__(self, in_channels: int, out_channels: int, in_feature: str = "res5"):
        super().__init__()
        self.in_feature = in_feature
        self.p6 = nn.Conv2d(in_channels, out_channels, 3, 2, 1)
        self.p7 = nn.Conv2d(out_channels, out_channels, 3, 2, 1)
        for conv in (self.p6, self.p7):
            _init_xavier(conv)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        p6 = self.p6(x)
        p7 = self.p7(F.relu(p6))
        return [p6, p7]


class FPN(Backbone):
    """Feature Pyramid Network (Lin et al. 2017).

    Args:
        bottom_up: a Backbone (e.g. ResNet) whose outputs include ``in_features``.
        in_features: bottom-up features to use, fine to coarse, e.g. ["res2", ..., "res5"];
            each must have twice the stride of the previous.
        out_channels: width of every output map.
        norm: normalization of the lateral and output convs ("" for none).
        top_block: optional module adding coarser levels (LastLevelMaxPool / LastLevelP6P7).
        fuse_type: "sum" or "avg" for merging the top-down and lateral paths.

    Outputs ``{"p{s}": [N, out_channels, H / 2**s, W / 2**s]}`` where ``s = log2(stride)``.
    """

    def __init__(
        self,
        bottom_up: Backbone,
        in_features: list[str],
        out_channels: int,
        norm: str = "",
        top_block: TopBlock | None = None,
        fuse_type: str = "sum",
    ):
        super().__init__()
        if fuse_type not in ("sum", "avg"):
            raise ValueError(f"FPN fuse_type must be 'sum' or 'avg', got {fuse_type!r}")
        input_shapes = bottom_up.output_shape()
        for f in in_features:
            if f not in input_shapes:
                raise ValueError(
                    f"FPN in_features has {f!r} but the bottom-up backbone outputs "
                    f"{list(input_shapes)}"
                )
        strides: list[int] = []
        in_channels: list[int] = []
        for f in in_features:
            stride, channels = input_shapes[f].stride, input_shapes[f].channels
            if stride is None or channels is None:
                raise ValueError(
                    f"FPN needs the stride and channels of the bottom-up feature {f!r}, got "
                    f"{input_shapes[f]}"
                )
            strides.append(stride)
            in_channels.append(channels)
        for a, b in zip(strides[:-1], strides[1:]):
            if b != 2 * a:
                raise ValueError(
                    f"FPN in_features strides must double level to level, got {strides}"
                )
        use_bias = norm == ""
        # Plain lists: the convs are registered once, under their Detectron2-style names below.
        self.lateral_convs: list[Conv2d] = []
        self.output_convs: list[Conv2d] = []
        for idx, c in enumerate(in_channels):
            lateral = Conv2d(c, out_channels, 1, bias=use_bias, norm=get_norm(norm, out_channels))
            output = Conv2d(
                out_channels,
                out_channels,
                3,
                padding=1,
                bias=use_bias,
                norm=get_norm(norm, out_channels),
            )
            _init_xavier(lateral)
            _init_xavier(output)
            stage = int(math.log2(strides[idx]))
            self.add_module(f"fpn_lateral{stage}", lateral)
            self.add_module(f"fpn_output{stage}", output)
            self.lateral_convs.append(lateral)
            self.output_convs.append(output)
        self.bottom_up = bottom_up
        self.in_features = list(in_features)
        self.top_block = top_block
        self.fuse_type = fuse_type
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
        """``x``: ``[N, C, H, W]``; returns the pyramid, fine to coarse."""
        bottom_up = self.bottom_up(x)
        results: list[torch.Tensor] = []
        prev = None
        for idx in range(len(self.in_features) - 1, -1, -1):
            feat = bottom_up[self.in_features[idx]]
            lateral = self.lateral_convs[idx](feat)
            if prev is None:
                prev = lateral
            else:
                top_down = F.interpolate(prev, size=lateral.shape[-2:], mode="nearest")
                prev = lateral + top_down
                if self.fuse_type == "avg":
                    prev = prev / 2
            results.insert(0, self.output_convs[idx](prev))
        if self.top_block is not None:
            src = self.top_block.in_feature
            if src in bottom_up:
                top_input = bottom_up[src]
            else:
                top_input = results[self._out_features.index(src)]
            results.extend(self.top_block(top_input))
        return dict(zip(self._out_features, results))

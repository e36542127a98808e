"""FastRCNNConvFCHead: the per-RoI feature extractor of the box branch."""

import torch
from torch import nn
from torch.nn import functional as F

from rotated_det.layers.batch_norm import get_norm
from rotated_det.layers.shape_spec import ShapeSpec
from rotated_det.layers.wrappers import Conv2d

__all__ = ["FastRCNNConvFCHead"]


class FastRCNNConvFCHead(nn.Module):
    """Optional 3x3 convs, then flatten and fully connected layers, each followed by ReLU.

    Args:
        input_shape: the pooled feature shape (channels, height, width).
        conv_dims: output channels of each 3x3 conv.
        fc_dims: output width of each fully connected layer.
        conv_norm: normalization of the convs ("" for none).

    Input ``[R, C, h, w]``; output ``[R, fc_dims[-1]]`` (or the conv map when ``fc_dims`` is empty).
    """

    def __init__(
        self,
        input_shape: ShapeSpec,
        *,
        conv_dims: list[int] | tuple[int, ...] = (),
        fc_dims: list[int] | tuple[int, ...] = (1024, 1024),
        conv_norm: str = "",
    ) -> None:
        super().__init__()
        if not conv_dims and not fc_dims:
            raise ValueError("FastRCNNConvFCHead needs at least one conv or fc layer")
        c, h, w = input_shape.channels, input_shape.height, input_shape.width
        if c is None or h is None or w is None:
            raise ValueError(
                "FastRCNNConvFCHead: input_shape must give the pooled features' channels, height "
                f"and width, got {input_shape}"
            )
        self.conv_norm_relus: list[Conv2d] = []
        for k, dim in enumerate(conv_dims):
            conv = Conv2d(
                c,
                dim,
                3,
                padding=1,
                bias=not conv_norm,
                norm=get_norm(conv_norm, dim),
                activation=F.relu,
            )
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
            self.add_module(f"conv{k + 1}", conv)
            self.conv_norm_relus.append(conv)
            c = dim
        self.fcs: list[nn.Linear] = []
        in_dim = c * h * w
        for k, dim in enumerate(fc_dims):
            fc = nn.Linear(in_dim, dim)
            nn.init.kaiming_uniform_(fc.weight, a=1)
            nn.init.zeros_(fc.bias)
            self.add_module(f"fc{k + 1}", fc)
            self.fcs.append(fc)
            in_dim = dim
        self._output_size = in_dim if fc_dims else (c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.conv_norm_relus:
            x = layer(x)
        if self.fcs:
            x = torch.flatten(x, start_dim=1)
            for fc in self.fcs:
                x = F.relu(fc(x))
        return x

    @property
    def output_shape(self) -> ShapeSpec:
        if isinstance(self._output_size, int):
            return ShapeSpec(channels=self._output_size)
        c, h, w = self._output_size
        return ShapeSpec(channels=c, height=h, width=w)

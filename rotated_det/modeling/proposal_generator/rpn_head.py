"""StandardRPNHead: the per-level convolutional head of a region proposal network."""

import torch
from torch import nn

__all__ = ["StandardRPNHead"]


class StandardRPNHead(nn.Module):
    """A shared 3x3 conv + ReLU, then 1x1 convs for objectness and anchor deltas.

    Args:
        in_channels: channels of every input level (they must agree).
        num_anchors: anchors per cell A (the same at every level).
        box_dim: deltas per anchor (5 for rotated anchors, 6 for midpoint offsets).
        conv_dims: channels of the hidden conv(s); [-1] keeps ``in_channels``.

    For each level ``[N, C, H, W]`` it returns objectness logits ``[N, A, H, W]`` and deltas
    ``[N, A * box_dim, H, W]``.
    """

    def __init__(
        self,
        in_channels: int,
        num_anchors: int,
        box_dim: int = 5,
        conv_dims: tuple[int, ...] | list[int] = (-1,),
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cur = in_channels
        for d in conv_dims:
            out = in_channels if d == -1 else d
            if out <= 0:
                raise ValueError(
                    f"StandardRPNHead conv_dims must be positive or -1, got {conv_dims}"
                )
            conv = nn.Conv2d(cur, out, 3, padding=1)
            layers += [conv, nn.ReLU(inplace=True)]
            cur = out
        self.conv = nn.Sequential(*layers)
        self.objectness_logits = nn.Conv2d(cur, num_anchors, 1)
        self.anchor_deltas = nn.Conv2d(cur, num_anchors * box_dim, 1)
        self.box_dim = box_dim
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(
        self, features: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        logits, deltas = [], []
        for x in features:
            t = self.conv(x)
            logits.append(self.objectness_logits(t))
            deltas.append(self.anchor_deltas(t))
        return logits, deltas

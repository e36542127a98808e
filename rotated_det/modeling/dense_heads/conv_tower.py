"""Pieces shared by the dense heads: the stacked 3x3 conv tower and the per-level scale."""

import torch
from torch import nn

from rotated_det.layers.batch_norm import get_norm

__all__ = ["Scale", "conv_tower", "init_dense_head"]


def conv_tower(
    in_channels: int, conv_dims: tuple[int, ...] | list[int], norm: str
) -> nn.Sequential:
    """3x3 conv (+ norm) + ReLU per entry of ``conv_dims``: ``[N, in_channels, H, W]`` ->
    ``[N, conv_dims[-1], H, W]`` (``in_channels`` when ``conv_dims`` is empty)."""
    layers: list[nn.Module] = []
    cur = in_channels
    for d in conv_dims:
        layers.append(nn.Conv2d(cur, d, 3, padding=1, bias=not norm))
        n = get_norm(norm, d)
        if n is not None:
            layers.append(n)
        layers.append(nn.ReLU())
        cur = d
    return nn.Sequential(*layers)


def init_dense_head(head: nn.Module) -> None:
    """Every conv of a dense head: weights N(0, 0.01), biases 0 (RetinaNet's and FCOS's)."""
    for m in head.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class Scale(nn.Module):
    """A learnable scalar multiplier (one per FPN level in FCOS-style heads)."""

    def __init__(self, init_value: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale

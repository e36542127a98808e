"""Active rotating filters (ORN: Zhou et al., "Oriented Response Networks", CVPR 2017), as used by
S2A-Net's oriented detection module.

An active rotating filter (ARF) is one learnt filter applied at N orientations: output channel
``o * N + r`` is the convolution with filter o turned by ``r * 360 / N`` degrees (CCW on screen).
Its response to an image turned by 90 degrees is the response to the original image turned by
90 degrees with the orientation channels of every filter rolled by N / 4 (for N divisible by 4):
the orientation is encoded in the channel order. Filters may themselves have orientation
channels (an ARF applied to another ARF's output, ``in_orientations == N``): turning a filter
then also rolls them, so that equivariance holds layer after layer.

Turning a filter is an index gather over its taps, precomputed per orientation: multiples of 90
degrees are exact (``torch.rot90``); 45-degree steps (N = 8) of a 3 x 3 filter move the eight
border taps one place around the ring, ORN's approximation.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ORConv2d", "rotated_filter_indices"]

# Border taps of a 3 x 3 filter (row, column) in counter-clockwise order on screen, from the
# right-hand tap: a 45-degree CCW turn moves each one place forward.
_RING_3X3 = ((1, 2), (0, 2), (0, 1), (0, 0), (1, 0), (2, 0), (2, 1), (2, 2))


def _turn_45(grid: torch.Tensor) -> torch.Tensor:
    """A 3 x 3 grid turned 45 degrees CCW on screen (border taps one place around the ring)."""
    out = grid.clone()
    for k, (r, c) in enumerate(_RING_3X3):
        src_r, src_c = _RING_3X3[k - 1]
        out[r, c] = grid[src_r, src_c]
    return out


def rotated_filter_indices(
    kernel_size: int, num_orientations: int, in_orientations: int
) -> torch.Tensor:
    """Gather indices that turn a filter through ``num_orientations`` orientations.

    Args:
        kernel_size: k. Any k when ``360 / num_orientations`` is a multiple of 90; k in {1, 3}
            for N = 8.
        num_orientations: N in {1, 2, 4, 8}.
        in_orientations: orientation channels of the filter: 1, or N.

    Returns:
        int64 ``[N, in_orientations * k * k]``: row r lists, for each entry of the filter turned
        by ``r * 360 / N`` degrees CCW (flattened ``[in_orientations, k, k]``), the entry of the
        unturned filter it takes.
    """
    if num_orientations not in (1, 2, 4, 8):
        raise ValueError(f"num_orientations must be 1, 2, 4 or 8, got {num_orientations}")
    if in_orientations not in (1, num_orientations):
        raise ValueError(
            f"in_orientations must be 1 or num_orientations={num_orientations}, got "
            f"{in_orientations}"
        )
    if num_orientations == 8 and kernel_size not in (1, 3):
        raise ValueError(
            f"45-degree turns (num_orientations=8) need kernel_size 1 or 3, got {kernel_size}"
        )
    k = kernel_size
    taps = torch.arange(k * k).view(k, k)
    rows = []
    eighths_per_step = 8 // num_orientations
    for r in range(num_orientations):
        eighths = r * eighths_per_step
        grid = torch.rot90(taps, eighths // 2, dims=(0, 1))
        if eighths % 2:
            grid = _turn_45(grid)
        # orientation channel q of the turned filter takes channel q - r of the original
        shift = r if in_orientations > 1 else 0
        src_orientation = (torch.arange(in_orientations) - shift) % in_orientations
        rows.append((src_orientation[:, None] * (k * k) + grid.reshape(1, -1)).reshape(-1))
    return torch.stack(rows)


class ORConv2d(nn.Module):
    """Convolution with active rotating filters.

    Args:
        in_channels: C_in filters' input channels; the input has ``C_in * in_orientations``
            channels (channel ``c * in_orientations + q``: channel c at orientation q).
        out_channels: C_out learnt filters; the output has ``C_out * num_orientations`` channels
            (channel ``o * N + r``: filter o turned by ``r * 360 / N`` degrees).
        kernel_size: k (see :func:`rotated_filter_indices` for the allowed values).
        num_orientations: N.
        in_orientations: 1 (plain input features) or N (the output of another ARF layer).
        stride, padding: as ``nn.Conv2d`` (padding defaults to ``(k - 1) // 2``).
        bias: one learnt bias per filter, shared by its orientations (keeps the equivariance).

    ``[B, C_in * in_orientations, H, W]`` -> ``[B, C_out * N, H', W']``. Weights are initialised
    as ORN's, N(0, 2 / fan_in).
    """

    indices: torch.Tensor

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        num_orientations: int = 8,
        in_orientations: int = 1,
        stride: int = 1,
        padding: int | None = None,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.register_buffer(
            "indices",
            rotated_filter_indices(kernel_size, num_orientations, in_orientations),
            persistent=False,
        )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.num_orientations = num_orientations
        self.in_orientations = in_orientations
        self.stride = stride
        self.padding = (kernel_size - 1) // 2 if padding is None else padding
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels, in_orientations, kernel_size, kernel_size)
        )
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        fan_in = in_channels * in_orientations * kernel_size * kernel_size
        nn.init.normal_(self.weight, std=math.sqrt(2.0 / fan_in))

    def rotated_weight(self) -> torch.Tensor:
        """The filter bank ``[C_out * N, C_in * in_orientations, k, k]`` of every orientation."""
        k, n = self.kernel_size, self.num_orientations
        flat = self.weight.flatten(2)  # [C_out, C_in, in_orientations * k * k]
        turned = flat[:, :, self.indices]  # [C_out, C_in, N, in_orientations * k * k]
        turned = turned.view(self.out_channels, self.in_channels, n, self.in_orientations, k, k)
        turned = turned.permute(0, 2, 1, 3, 4, 5)
        return turned.reshape(self.out_channels * n, self.in_channels * self.in_orientations, k, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        expected = self.in_channels * self.in_orientations
        if x.shape[1] != expected:
            raise ValueError(
                f"ORConv2d: input must have in_channels * in_orientations = {expected} channels, "
                f"got {tuple(x.shape)}"
            )
        bias = None
        if self.bias is not None:
            bias = self.bias.repeat_interleave(self.num_orientations)
        return F.conv2d(x, self.rotated_weight(), bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"num_orientations={self.num_orientations}, in_orientations={self.in_orientations}, "
            f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}"
        )

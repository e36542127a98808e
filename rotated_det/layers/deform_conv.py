"""Deformable convolution (Dai et al. 2017) as a module: torchvision's ``deform_conv2d`` kernel on
CUDA, its ``grid_sample`` formulation (:func:`~rotated_det.layers.deform_conv_grid.
deform_conv2d_grid`) elsewhere, the same choice as :class:`~rotated_det.layers.AlignConv`."""

import math

import torch
from torch import nn
from torchvision.ops import deform_conv2d

from .deform_conv_grid import deform_conv2d_grid

__all__ = ["DeformConv2d", "DEFORM_CONV_IMPLEMENTATIONS"]

DEFORM_CONV_IMPLEMENTATIONS = ("auto", "deform_conv2d", "grid_sample")


class DeformConv2d(nn.Module):
    """A k x k deformable convolution, stride 1, "same" padding, one offset group, no bias (as
    MMCV's ``DeformConv2d`` in RepPoints).

    Args:
        in_channels, out_channels: C_in and C_out.
        kernel_size: k (odd).
        implementation: "deform_conv2d" (torchvision's kernel), "grid_sample" (``grid_sample`` +
            a matrix product: 4-5x faster forward + backward than torchvision's CPU kernel,
            dev/bench_align_conv.py; exports to ONNX with standard operators) or "auto":
            torchvision's kernel on CUDA, ``grid_sample`` elsewhere. Equal within float
            rounding.

    ``forward(x, offset)``: ``x`` ``[N, C_in, H, W]``, ``offset`` ``[N, 2 * k * k, H, W]`` in
    feature pixels, ``(dy, dx)`` per tap in row-major tap order (torchvision's layout). Returns
    ``[N, C_out, H, W]``. Gradients reach the input, the weight and the offsets.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        implementation: str = "auto",
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1 or kernel_size < 1:
            raise ValueError(
                f"{type(self).__name__}: kernel_size must be odd and >= 1, got {kernel_size}"
            )
        if implementation not in DEFORM_CONV_IMPLEMENTATIONS:
            raise ValueError(
                f"{type(self).__name__}: implementation must be one of "
                f"{DEFORM_CONV_IMPLEMENTATIONS}, "
                f"got {implementation!r}"
            )
        self.kernel_size = kernel_size
        self.implementation = implementation
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Conv2d's default initialisation."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, x: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        n, _, height, width = x.shape
        if offset.shape != (n, 2 * k * k, height, width):
            raise ValueError(
                f"DeformConv2d: offset must be [N, 2 * k * k, H, W] = "
                f"{[n, 2 * k * k, height, width]} for input {tuple(x.shape)}, got "
                f"{tuple(offset.shape)}"
            )
        pad = (k - 1) // 2
        # float32 at least: offsets of several feature pixels lose precision in bfloat16
        dtype = torch.promote_types(x.dtype, torch.float32)
        x32, weight, offset = x.to(dtype), self.weight.to(dtype), offset.to(dtype)
        use_grid = self.implementation == "grid_sample" or (
            self.implementation == "auto" and x.device.type != "cuda"
        )
        if use_grid:
            bias = weight.new_zeros(weight.shape[0])
            out = deform_conv2d_grid(
                x32, weight, offset, bias[:0], bias, 1, 1, pad, pad, 1, 1, 1, 1, False
            )
        else:
            out = deform_conv2d(x32, offset, weight, padding=pad)
        return out.to(x.dtype)

    def extra_repr(self) -> str:
        out_channels, in_channels = self.weight.shape[:2]
        return (
            f"{in_channels}, {out_channels}, kernel_size={self.kernel_size}, "
            f"implementation={self.implementation!r}"
        )

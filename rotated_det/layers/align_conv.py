"""Alignment convolution (S2A-Net, Han et al., TGRS 2021): a k x k convolution whose sampling
points follow one rotated anchor per feature location, as a deformable convolution (torchvision's
``deform_conv2d`` on CUDA, its ``grid_sample`` formulation on the CPU).

A plain k x k convolution at feature location (row i, column j) reads the taps
``(i + ky, j + kx)``, ``ky, kx in {-(k-1)/2, ..., (k-1)/2}``. The alignment convolution reads
them from the anchor ``(cx, cy, w, h, angle)`` (image pixels, degrees CCW on screen) instead:
tap ``(ky, kx)`` is the point ``u = kx * w / k`` along the box's width axis and
``v = ky * h / k`` along its height axis, i.e. the image point

    x = cx + u * cos(angle) + v * sin(angle)
    y = cy - u * sin(angle) + v * cos(angle)

divided by the feature stride. Its offset is that point minus the plain tap. An angle-0 anchor
of side ``k * stride`` centred on its location therefore reads exactly the plain taps (zero
offsets), and a 90-degree turn of that anchor reads the taps of the kernel turned by 90 degrees.

Worked example (k = 3, stride 8): the anchor (16, 8, 48, 24, 0) at location (row 1, column 2)
has centre (2, 1) in feature pixels, tap spacing (48 / 3 / 8, 24 / 3 / 8) = (2, 1): tap
(ky, kx) = (0, 1) is read at (row 1, column 4) instead of (1, 3): offset (dy, dx) = (0, 1);
tap (1, -1) at (2, 0) instead of (2, 1): offset (0, -1).
"""

import math

import torch
from torch import nn

from .deform_conv import DEFORM_CONV_IMPLEMENTATIONS, DeformConv2d

__all__ = ["AlignConv", "align_conv_offsets", "ALIGN_CONV_IMPLEMENTATIONS"]

ALIGN_CONV_IMPLEMENTATIONS = DEFORM_CONV_IMPLEMENTATIONS


def align_conv_offsets(
    anchors: torch.Tensor, height: int, width: int, stride: float, kernel_size: int
) -> torch.Tensor:
    """Sampling offsets of the alignment convolution.

    Args:
        anchors: ``[N, H * W, 5]`` one rotated box per feature location (cx, cy, w, h in image
            pixels, angle in degrees CCW on screen), locations in row-major order; location
            (i, j) is centred on the image point ``(j * stride, i * stride)``.
        height, width: the feature map's H and W (ints, or traced sizes).
        stride: image pixels per feature pixel.
        kernel_size: k (odd).

    Returns:
        ``[N, 2 * k * k, H, W]`` offsets in feature pixels, ``(dy, dx)`` per tap in row-major tap
        order: the ``offset`` argument of ``torchvision.ops.deform_conv2d``.
    """
    if kernel_size % 2 != 1 or kernel_size < 1:
        raise ValueError(f"align_conv_offsets: kernel_size must be odd and >= 1, got {kernel_size}")
    if anchors.dim() != 3 or anchors.shape[-1] != 5:
        raise ValueError(
            f"align_conv_offsets: anchors must be [N, H * W, 5], got {tuple(anchors.shape)}"
        )
    dtype, device = anchors.dtype, anchors.device
    radius = (kernel_size - 1) // 2
    taps = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    ky, kx = torch.meshgrid(taps, taps, indexing="ij")
    ky, kx = ky.reshape(-1), kx.reshape(-1)  # [K], row-major taps
    rows = torch.arange(height, dtype=dtype, device=device)
    cols = torch.arange(width, dtype=dtype, device=device)
    grid_y, grid_x = torch.meshgrid(rows, cols, indexing="ij")
    grid_y, grid_x = grid_y.reshape(-1, 1), grid_x.reshape(-1, 1)  # [L, 1]

    cx, cy, w, h, angle = (anchors[..., i : i + 1] for i in range(5))  # [N, L, 1]
    rad = angle * (math.pi / 180.0)
    cos, sin = torch.cos(rad), torch.sin(rad)
    u = kx * (w / kernel_size)  # [N, L, K]
    v = ky * (h / kernel_size)
    sample_x = (cx + u * cos + v * sin) / stride
    sample_y = (cy - u * sin + v * cos) / stride
    offset_y = sample_y - (grid_y + ky)
    offset_x = sample_x - (grid_x + kx)
    offsets = torch.stack([offset_y, offset_x], dim=-1)  # [N, L, K, 2]
    n = anchors.shape[0]
    return offsets.reshape(n, height, width, -1).permute(0, 3, 1, 2).contiguous()


class AlignConv(DeformConv2d):
    """A k x k convolution sampled along one rotated anchor per location (no bias, as S2A-Net's).

    Args:
        in_channels, out_channels: C_in and C_out.
        kernel_size: k (odd); the convolution keeps the feature map's size (stride 1).
        implementation: "deform_conv2d" (torchvision's kernel), "grid_sample" (the same
            convolution from ``grid_sample`` and a matrix product,
            :func:`~rotated_det.layers.deform_conv_grid.deform_conv2d_grid`) or "auto":
            torchvision's kernel on CUDA, ``grid_sample`` elsewhere (4-5x faster forward +
            backward than torchvision's CPU kernel, dev/bench_align_conv.py; exports to ONNX
            with standard operators). Equal results within float rounding.

    ``forward(x, anchors, stride)``: ``x`` ``[N, C_in, H, W]``; ``anchors`` ``[N, H * W, 5]``
    (see :func:`align_conv_offsets`); ``stride`` image pixels per feature pixel. Returns
    ``[N, C_out, H, W]``. Offsets are computed from detached anchors: gradients reach the
    features and the weight, not the boxes (as in S2A-Net, whose anchors come from the previous
    stage's detached predictions).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        implementation: str = "auto",
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, implementation)

    def reset_parameters(self) -> None:
        """S2A-Net's initialisation: normal, std 0.01."""
        nn.init.normal_(self.weight, std=0.01)

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, anchors: torch.Tensor, stride: float
    ) -> torch.Tensor:
        n, _, height, width = x.shape
        if anchors.dim() != 3 or anchors.shape[0] != n or anchors.shape[-1] != 5:
            raise ValueError(
                f"AlignConv: anchors must be [N={n}, H * W, 5] for features of shape "
                f"{tuple(x.shape)}, got {tuple(anchors.shape)}"
            )
        # float32 at least: offsets of tens of feature pixels lose a tenth of a pixel in bfloat16
        dtype = torch.promote_types(x.dtype, torch.float32)
        offsets = align_conv_offsets(
            anchors.detach().to(dtype), height, width, stride, self.kernel_size
        )
        return super().forward(x, offsets)

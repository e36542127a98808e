"""Deformable convolution from standard operators (``grid_sample`` + a matrix product).

Used by :class:`~rotated_det.layers.AlignConv` on the CPU, where it is several times faster than
torchvision's ``deform_conv2d`` kernel (dev/bench_align_conv.py: forward + backward of S2A-Net's
P3 alignment convolution 4-5x faster on one thread), and by
:class:`~rotated_det.export.standard_ops.StandardOpsMode` in place of
``torchvision::deform_conv2d`` for ONNX graphs below opset 19 (which has no ``DeformConv``).

Each tap's sampling points are bilinearly sampled at once by one ``grid_sample`` (zero outside
the image: the same as torchvision's kernel, which drops out-of-image corners), then the taps
are contracted with the weight.
"""

import torch
from torch.nn import functional as F

__all__ = ["deform_conv2d_grid"]


def deform_conv2d_grid(
    x: torch.Tensor,
    weight: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    bias: torch.Tensor,
    stride_h: int,
    stride_w: int,
    pad_h: int,
    pad_w: int,
    dil_h: int,
    dil_w: int,
    n_weight_grps: int,
    n_offset_grps: int,
    use_mask: bool,
) -> torch.Tensor:
    """``torch.ops.torchvision.deform_conv2d`` with the same arguments, one weight group and one
    offset group.

    Args:
        x: ``[N, C, H, W]``.
        weight: ``[O, C, kh, kw]``.
        offset: ``[N, 2 * kh * kw, H_out, W_out]``, ``(dy, dx)`` per tap (row-major taps).
        mask: ``[N, kh * kw, H_out, W_out]`` modulation (read when ``use_mask``).
        bias: ``[O]`` (zeros when the caller has none).

    Returns:
        ``[N, O, H_out, W_out]``.
    """
    if n_weight_grps != 1 or n_offset_grps != 1:
        raise NotImplementedError(
            "deform_conv2d_grid handles one weight group and one offset group, got "
            f"n_weight_grps={n_weight_grps}, n_offset_grps={n_offset_grps}"
        )
    _, c, height, width = x.shape
    out_channels, _, kh, kw = weight.shape
    h_out, w_out = offset.shape[-2], offset.shape[-1]
    dtype, device = x.dtype, x.device
    taps_y = torch.arange(kh, dtype=dtype, device=device) * dil_h - pad_h
    taps_x = torch.arange(kw, dtype=dtype, device=device) * dil_w - pad_w
    ty, tx = torch.meshgrid(taps_y, taps_x, indexing="ij")  # [kh, kw]
    rows = torch.arange(h_out, dtype=dtype, device=device) * stride_h
    cols = torch.arange(w_out, dtype=dtype, device=device) * stride_w
    off = offset.unflatten(1, (kh * kw, 2))
    # sampling point (pixels) of tap t at output (i, j): [N, K, H_out, W_out]
    py = rows.view(1, 1, -1, 1) + ty.reshape(1, -1, 1, 1) + off[:, :, 0]
    px = cols.view(1, 1, 1, -1) + tx.reshape(1, -1, 1, 1) + off[:, :, 1]
    # pixel centres at (2 p + 1) / size - 1 with align_corners=False (any size, even 1)
    grid = torch.stack([(2 * px + 1) / width - 1, (2 * py + 1) / height - 1], dim=-1)
    grid = grid.flatten(2, 3)  # [N, K, H_out * W_out, 2]
    sampled = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if use_mask:
        sampled = sampled * mask.flatten(2).unsqueeze(1)
    # [N, C, K, H_out * W_out] x [O, C, K] -> [N, O, H_out * W_out]
    out = torch.einsum("nckl,ock->nol", sampled, weight.reshape(out_channels, c, kh * kw))
    result: torch.Tensor = out.unflatten(2, (h_out, w_out)) + bias.view(1, -1, 1, 1)
    return result

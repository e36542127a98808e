"""Rotated RoIAlign written with ``grid_sample``: the formulation that ONNX export uses instead of
the compiled ``rotated_det::roi_align_rotated_forward`` (ONNX ``GridSample``, opset >= 16, runs
in stock ONNX Runtime, OpenVINO and TensorRT).

Same semantics as :func:`rotated_det.layers.roi_align_rotated` (Detectron2's "aligned" rotated
RoIAlign): each of the ``pooled_h x pooled_w`` bins of a RoI averages ``grid_h x grid_w``
bilinear samples at the centres of a regular sub-grid of the bin, laid out along the RoI's own
axes. A sample at feature-map position (y, x), pixel centres at integers:

- outside ``[-1, H] x [-1, W]`` contributes 0;
- otherwise is clamped to ``[0, H - 1] x [0, W - 1]`` and interpolated bilinearly, which is
  ``grid_sample(..., padding_mode="border", align_corners=True)`` at that point.

Adaptive sampling (``sampling_ratio <= 0``: ``ceil(bin side)`` samples per bin side, a different
count for every RoI) cannot have a static shape. Here every bin is sampled on a fixed
``max_adaptive_samples x max_adaptive_samples`` set of slots and RoI ``k`` uses its first
``g_k = min(ceil(bin side), max_adaptive_samples)`` slots per side, placed and averaged as the
compiled op places and averages its ``ceil(bin side)`` samples; the other slots get weight 0.
This equals the compiled op for every RoI whose bins are at most ``max_adaptive_samples``
feature-map pixels a side, and samples larger bins on a coarser regular grid (still the bin's
average, from fewer points). The cost is ``max_adaptive_samples ** 2`` samples per bin for
every RoI, so keep it small; the configs of this repository use ``sampling_ratio=2`` (exact,
4 samples per bin).
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

__all__ = ["roi_align_rotated_grid", "DEFAULT_MAX_ADAPTIVE_SAMPLES"]

DEFAULT_MAX_ADAPTIVE_SAMPLES = 4


def roi_align_rotated_grid(
    input: torch.Tensor,
    rois: torch.Tensor,
    spatial_scale: float,
    pooled_height: int,
    pooled_width: int,
    sampling_ratio: int,
    max_adaptive_samples: int = DEFAULT_MAX_ADAPTIVE_SAMPLES,
) -> torch.Tensor:
    """Rotated RoIAlign from standard operators (see the module docstring for the semantics).

    The argument order follows the compiled op ``rotated_det::roi_align_rotated_forward``.

    Args:
        input: ``[N, C, H, W]`` float feature maps.
        rois: ``[K, 6]`` rows ``(batch_idx, cx, cy, w, h, angle)``: input-image pixels, angle in
            degrees counter-clockwise on screen; same dtype and device as ``input``.
        spatial_scale: feature-map size / image size, e.g. 1/16.
        pooled_height, pooled_width: bins per RoI side.
        sampling_ratio: samples per bin side (> 0), or <= 0 for adaptive sampling (capped at
            ``max_adaptive_samples`` per side, see the module docstring).
        max_adaptive_samples: sample slots per bin side for adaptive sampling.

    Returns:
        ``[K, C, pooled_height, pooled_width]``. RoIs with a non-finite value or a batch index
        outside ``[0, N)`` give zeros, as in the compiled op.
    """
    n, c, height, width = input.shape
    k = rois.shape[0]
    dtype = input.dtype
    finite = torch.isfinite(rois).all(dim=1)
    rois = torch.where(finite[:, None], rois, torch.zeros_like(rois))
    batch = rois[:, 0]
    valid = finite & (batch >= 0) & (batch < n)
    # a batch index is a float column: floor it like the kernel's cast (valid rows are >= 0)
    batch_idx = batch.clamp(0, n - 1).floor().long()
    cx = rois[:, 1] * spatial_scale - 0.5
    cy = rois[:, 2] * spatial_scale - 0.5
    w = (rois[:, 3] * spatial_scale).clamp(min=0)
    h = (rois[:, 4] * spatial_scale).clamp(min=0)
    # reduced in degrees first, as the kernel's sincos_deg: exact turns stay exact and angles far
    # outside [-360, 360] keep their precision
    theta = torch.fmod(rois[:, 5], 360.0) * (math.pi / 180.0)
    cos, sin = torch.cos(theta), torch.sin(theta)
    bin_w = w / pooled_width
    bin_h = h / pooled_height

    if sampling_ratio > 0:
        slots = int(sampling_ratio)
        grid_w = torch.full_like(w, float(slots))
        grid_h = grid_w
    else:
        slots = int(max_adaptive_samples)
        grid_w = torch.ceil(bin_w).clamp(max=slots)
        grid_h = torch.ceil(bin_h).clamp(max=slots)
    count = (grid_w * grid_h).clamp(min=1)  # the kernel divides by max(n, 1)

    # Slot centres in units of the bin, per RoI: [K, S]; unused slots (index >= grid) weigh 0.
    idx = torch.arange(slots, dtype=dtype, device=input.device)
    frac_x = (idx[None, :] + 0.5) / grid_w[:, None].clamp(min=1)
    frac_y = (idx[None, :] + 0.5) / grid_h[:, None].clamp(min=1)
    use_x = (idx[None, :] < grid_w[:, None]).to(dtype)
    use_y = (idx[None, :] < grid_h[:, None]).to(dtype)
    bins_x = torch.arange(pooled_width, dtype=dtype, device=input.device)
    bins_y = torch.arange(pooled_height, dtype=dtype, device=input.device)
    # Local coordinates (along w, along h, origin at the RoI centre):
    # xx [K, PW, S] and yy [K, PH, S].
    xx = (
        -w[:, None, None] * 0.5
        + (bins_x[None, :, None] + frac_x[:, None, :]) * bin_w[:, None, None]
    )
    yy = (
        -h[:, None, None] * 0.5
        + (bins_y[None, :, None] + frac_y[:, None, :]) * bin_h[:, None, None]
    )
    # Rotated into the map, every (bin_y, slot_y, bin_x, slot_x): [K, PH, S, PW, S].
    cos5, sin5 = cos[:, None, None, None, None], sin[:, None, None, None, None]
    xx5, yy5 = xx[:, None, None, :, :], yy[:, :, :, None, None]
    x = xx5 * cos5 + yy5 * sin5 + cx[:, None, None, None, None]
    y = yy5 * cos5 - xx5 * sin5 + cy[:, None, None, None, None]
    inside = (y >= -1) & (y <= height) & (x >= -1) & (x <= width)
    weight = (
        inside.to(dtype)
        * use_y[:, None, :, None, None]
        * use_x[:, None, None, None, :]
        / count[:, None, None, None, None]
        * valid.to(dtype)[:, None, None, None, None]
    )
    # align_corners=True maps -1 / +1 to the first / last pixel centre; a 1-pixel side maps all
    # positions to its only pixel (the divisor's floor of 1 keeps the grid finite there).
    gx = x * (2.0 / torch.sym_max(width - 1, 1)) - 1.0
    gy = y * (2.0 / torch.sym_max(height - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1)  # [K, PH, S, PW, S, 2]
    rows = torch.arange(k, device=rois.device)
    out = input.new_zeros((k, c, pooled_height, pooled_width))
    # One grid_sample per sample slot: memory stays at one [K, C, PH, PW] block per call.
    for sy in range(slots):
        for sx in range(slots):
            g = grid[:, :, sy, :, sx].reshape(1, k * pooled_height, pooled_width, 2)
            s = F.grid_sample(
                input, g.expand(n, -1, -1, -1), padding_mode="border", align_corners=True
            ).reshape(n, c, k, pooled_height, pooled_width)  # [N, C, K, PH, PW]
            if n == 1:
                s = s[0].transpose(0, 1)
            else:  # each RoI reads its own image
                s = s.permute(0, 2, 1, 3, 4)[batch_idx, rows]
            out = out + s * weight[:, None, :, sy, :, sx]
    return out

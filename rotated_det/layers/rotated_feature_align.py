"""Rotated feature alignment: R3Det's feature reconstruction (Yang et al., AAAI 2021).

Each location of a feature map holds a rotated box (the box refined from that location's anchor);
the aligned feature at the location is the feature there plus the features bilinearly sampled at
the box's centre and four corners, so that the next stage sees where the box actually is.

Written with ``grid_sample`` (one call per point): CPU and CUDA kernels, autograd,
TorchScript tracing, torch.export and ONNX (``GridSample``, opset >= 16) come with it.
``dev/bench_rotated_feature_align.py`` measures it against a plain gather formulation.

Sampling follows RoIAlign's bilinear convention (feature pixel centres at integer positions): a
point at feature position (y, x) outside ``[-1, H] x [-1, W]`` contributes 0; otherwise it is
clamped to ``[0, H - 1] x [0, W - 1]`` and interpolated bilinearly, which is
``grid_sample(..., padding_mode="border", align_corners=True)`` at that point.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

__all__ = ["rotated_feature_align", "rotated_feature_align_points"]


def rotated_feature_align_points(
    boxes: torch.Tensor, spatial_scale: float, points: int = 5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Feature-map positions sampled for each box.

    Args:
        boxes: ``[..., 5]`` rotated boxes ``(cx, cy, w, h, angle)``: input-image pixels, angle in
            degrees counter-clockwise on screen.
        spatial_scale: feature-map size / image size (1 / stride).
        points: 1 (the centre) or 5 (the centre, then the corners at ``(+w/2, +h/2)``,
            ``(-w/2, +h/2)``, ``(-w/2, -h/2)``, ``(+w/2, -h/2)`` along the box's own axes).

    Returns:
        x and y, each ``[points, ...]``, in feature pixels (pixel centres at integers: image
        point ``p`` is feature position ``p * spatial_scale``).
    """
    if points not in (1, 5):
        raise ValueError(f"rotated_feature_align: points must be 1 or 5, got {points}")
    if not torch.jit.is_tracing() and boxes.shape[-1] != 5:
        raise ValueError(
            f"rotated_feature_align: boxes must be [..., 5] (cx, cy, w, h, angle), got "
            f"{tuple(boxes.shape)}"
        )
    cx = boxes[..., 0] * spatial_scale
    cy = boxes[..., 1] * spatial_scale
    if points == 1:
        return cx[None], cy[None]
    theta = boxes[..., 4] * (math.pi / 180.0)
    cos, sin = torch.cos(theta), torch.sin(theta)
    half_w = boxes[..., 2] * (0.5 * spatial_scale)
    half_h = boxes[..., 3] * (0.5 * spatial_scale)
    # The w axis is (cos, -sin) and the h axis (sin, cos) on screen (y down, angle CCW).
    wx, wy = half_w * cos, -half_w * sin
    hx, hy = half_h * sin, half_h * cos
    x = torch.stack([cx, cx + wx + hx, cx - wx + hx, cx - wx - hx, cx + wx - hx])
    y = torch.stack([cy, cy + wy + hy, cy - wy + hy, cy - wy - hy, cy + wy - hy])
    return x, y


def _to_grid(coord: torch.Tensor, size: int | torch.Tensor) -> torch.Tensor:
    """Feature positions -> ``grid_sample`` coordinates with ``align_corners=True``.

    ``size`` is an int (eager), a SymInt (torch.export) or a 0-dim tensor (TorchScript tracing),
    so that exported graphs keep the input's size. A 1-pixel side maps every position to its only
    pixel: the divisor's floor of 1 keeps the grid finite there.
    """
    if isinstance(size, torch.Tensor):
        span = (size - 1).clamp(min=1).to(coord.dtype)
    else:
        span = torch.sym_max(size - 1, 1)
    return coord * (2.0 / span) - 1.0


def rotated_feature_align(
    features: torch.Tensor, boxes: torch.Tensor, spatial_scale: float, points: int = 5
) -> torch.Tensor:
    """R3Det's rotated feature alignment (the sampling rule is in the module docstring).

    Args:
        features: ``[N, C, H, W]`` feature map (float32, float64 or half).
        boxes: ``[N, H, W, 5]``: the rotated box of every location ``(cx, cy, w, h, angle)``, in
            input-image pixels, angle in degrees counter-clockwise on screen. Gradients flow to
            ``features`` and, where they are differentiable, to ``boxes`` (R3Det detaches them).
        spatial_scale: feature-map size / image size (1 / stride); location ``(i, j)`` is image
            point ``(j / spatial_scale, i / spatial_scale)``, as with anchors of offset 0.
        points: 5 (the centre and the four corners, R3Det) or 1 (the centre only).

    Returns:
        ``[N, C, H, W]``, ``features`` plus the sum of the ``points`` samples of ``features`` at
        each location's box, in the dtype of ``features`` (half features are sampled in float32).
    """
    if features.dim() != 4:
        raise ValueError(
            f"rotated_feature_align: features must be [N, C, H, W], got {tuple(features.shape)}"
        )
    n, _, height, width = features.shape
    # (while tracing, sizes are tensors: comparing them would freeze them into the graph)
    if boxes.dim() != 4 or (
        not torch.jit.is_tracing() and tuple(boxes.shape[:3]) != (n, height, width)
    ):
        raise ValueError(
            "rotated_feature_align: boxes must be [N, H, W, 5] with the features' N, H, W "
            f"({n}, {height}, {width}), got {tuple(boxes.shape)}"
        )
    compute = torch.promote_types(boxes.dtype, torch.float32)
    x, y = rotated_feature_align_points(boxes.to(compute), spatial_scale, points)  # [P, N, H, W]
    inside = ((x >= -1) & (x <= width) & (y >= -1) & (y <= height)).to(compute)
    grid = torch.stack([_to_grid(x, width), _to_grid(y, height)], dim=-1)  # [P, N, H, W, 2]
    source = features.to(compute)
    # One call per point: stacking the points in one grid would have to split a P * H axis
    # again, which torch.export cannot do for a dynamic H.
    aligned = source.new_zeros(())
    for i in range(points):
        sample = F.grid_sample(
            source, grid[i], mode="bilinear", padding_mode="border", align_corners=True
        )
        aligned = aligned + sample * inside[i, :, None]
    return features + aligned.to(features.dtype)

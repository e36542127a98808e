"""Geometry of point sets against rotated boxes shared by the point-set detectors' assigners and
losses (RepPoints family): membership, distances in a box's frame, points along a box's edges.

Boxes are ``(cx, cy, w, h, angle)``: pixels, angle in degrees counter-clockwise on screen (image
y axis down): the box's w-axis is ``u = (cos a, -sin a)`` and its h-axis ``v = (sin a, cos a)``.
"""

import math

import torch

from rotated_det.structures import rbox_to_poly

__all__ = ["box_frame_offsets", "points_in_rboxes", "rbox_edge_samples"]


def box_frame_offsets(points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """``[..., 2]`` offsets (u, v) of ``points`` ``[..., 2]`` from the centres of ``boxes``
    ``[..., 5]`` (broadcast) along each box's w- and h-axis, pixels."""
    rad = boxes[..., 4] * (math.pi / 180.0)
    cos, sin = torch.cos(rad), torch.sin(rad)
    dx = points[..., 0] - boxes[..., 0]
    dy = points[..., 1] - boxes[..., 1]
    return torch.stack([dx * cos - dy * sin, dx * sin + dy * cos], dim=-1)


def points_in_rboxes(points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Bool ``[...]``: point ``[..., 2]`` inside (or on the border of) its box ``[..., 5]``
    (broadcast shapes)."""
    uv = box_frame_offsets(points, boxes).abs()
    return (uv[..., 0] <= boxes[..., 2] / 2) & (uv[..., 1] <= boxes[..., 3] / 2)


def rbox_edge_samples(boxes: torch.Tensor, per_edge: int = 10) -> torch.Tensor:
    """``[N, 4 * per_edge, 2]``: ``per_edge`` evenly spaced points (both ends included) on each
    of the four edges of each box ``[N, 5]``, edge after edge (corners repeat)."""
    corners = rbox_to_poly(boxes).view(-1, 4, 2)
    ends = corners.roll(-1, dims=1)
    t = torch.linspace(0, 1, per_edge, dtype=boxes.dtype, device=boxes.device).view(1, 1, -1, 1)
    samples = corners[:, :, None] * (1 - t) + ends[:, :, None] * t  # [N, 4, E, 2]
    return samples.reshape(boxes.shape[0], -1, 2)

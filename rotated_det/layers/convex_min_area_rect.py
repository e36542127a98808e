"""Minimum-area rotated rectangle of point sets (convex hull + rotating calipers), batched.

One side of a minimum-area enclosing rectangle lies along an edge of the points' convex hull
(Freeman & Shapira 1975). So each set's hull is found (``convex_hull``), the rectangle aligned
with each hull edge is measured (the extents of all K points along the edge and across it: a
[K, K] product per set), and the smallest is kept: the first hull edge, in hull order from the
lowest-x point, whose area is within the dtype's rounding tolerance of the minimum (ties happen
when several rectangles are minimal, e.g. a regular polygon; any of them is a correct answer,
the rule makes the choice deterministic). The choice is discrete (no gradient); the rectangle
is then computed from the points, so gradients flow to the edge's two points and to the points
that touch the rectangle.

This is ``rotated_det.structures.points_to_rbox`` (and ``cv2.minAreaRect``) for the layers floor:
the same rectangles, computed from the explicit hull that the convex IoU ops share.
"""

import math

import torch

from .convex_hull import _hull_indices, check_points, compute_dtype

__all__ = ["min_area_rect"]

# Relative tolerance under which two candidate areas count as a tie (rounding noise).
_TIE_TOL = {torch.float64: 1e-9, torch.float32: 1e-5}


def _le90(
    w: torch.Tensor, h: torch.Tensor, angle: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The "le90" form of the rectangles (``w >= h``, angle in [-90, 90) degrees), as
    ``rotated_det.structures.normalize_rbox_angles(boxes, "le90")`` writes them."""
    swap = w < h
    angle = torch.where(swap, angle + 90.0, angle)
    angle = torch.remainder(angle + 90.0, 180.0) - 90.0
    angle = torch.where(angle >= 90.0, angle - 180.0, angle)  # remainder rounding up to 180
    return torch.where(swap, h, w), torch.where(swap, w, h), angle


def min_area_rect(points: torch.Tensor) -> torch.Tensor:
    """Minimum-area rotated rectangle enclosing each set of K points.

    Args:
        points: [..., K, 2] (x, y) in pixels, K >= 1, any float dtype. Any point sets:
            repeated, collinear or identical points are fine.

    Returns:
        [..., 5] ``(cx, cy, w, h, angle)``: pixels, angle in degrees counter-clockwise on screen,
        in the "le90" angle version (``w >= h``, angle in [-90, 90)), like
        ``rotated_det.structures.poly_to_rbox``'s default (``normalize_rbox_angles`` gives the
        other versions). float64 for float64 input, else float32. Collinear points give
        ``h == 0`` (the segment), identical points ``w == h == 0`` and angle 0. The area and the
        rectangle equal ``cv2.minAreaRect``'s up to rounding (where the minimum is unique).
        Sets with a NaN or infinite coordinate give NaN rows. Differentiable (see the module
        docstring).

    Raises:
        ValueError: on a wrong shape or dtype.
    """
    check_points(points, "min_area_rect: points")
    lead, k = points.shape[:-2], points.shape[-2]
    dtype = compute_dtype(points.dtype)
    flat = points.reshape(-1, k, 2).to(dtype)
    # [K, N] coordinates (sets along the contiguous dimension), relative to each set's first
    # point (detached: no cancellation from large absolute coordinates; added back at the end)
    origin = flat[:, 0].detach()
    x = (flat[..., 0] - origin[:, :1]).T
    y = (flat[..., 1] - origin[:, 1:]).T
    with torch.no_grad():
        idx, _ = _hull_indices(flat)
        order = idx.T  # [K, N] hull vertices (indices), padded with the first one
        hx, hy = x.gather(0, order), y.gather(0, order)
        ex, ey = hx.roll(-1, dims=0) - hx, hy.roll(-1, dims=0) - hy  # [K(edge), N]
        # extents of all points along each hull edge and across it, scaled by |edge|
        s = x[:, None] * ex + y[:, None] * ey  # [K(point), K(edge), N]
        q = y[:, None] * ex - x[:, None] * ey
        area = (s.amax(0) - s.amin(0)) * (q.amax(0) - q.amin(0)) / (ex * ex + ey * ey)
        area = area.nan_to_num_(nan=math.inf)  # zero-length (padding) edges never win
        near_min = (area <= area.amin(0, keepdim=True) * (1.0 + _TIE_TOL[dtype])) & (
            area < math.inf
        )
        steps = torch.arange(k, device=x.device)[:, None]
        first = torch.where(near_min, steps, k).amin(0, keepdim=True)  # [1, N]
        has_edge = first < k  # False when all points coincide (or NaN)
        first = first.clamp(max=k - 1)
        i = order.gather(0, first)
        j = order.gather(0, (first + 1) % k)
    # the chosen edge's direction, with gradients; (1, 0) when there is none
    xi, yi = x.gather(0, i), y.gather(0, i)
    dx = torch.where(has_edge, x.gather(0, j) - xi, 1.0)
    dy = torch.where(has_edge, y.gather(0, j) - yi, 0.0)
    norm = torch.hypot(dx, dy)
    ux, uy = dx / norm, dy / norm  # [1, N]
    s = x * ux + y * uy  # [K, N]: coordinates along u and along v = (-uy, ux)
    q = y * ux - x * uy
    s_min, s_max = s.amin(0), s.amax(0)
    q_min, q_max = q.amin(0), q.amax(0)
    sc, qc = 0.5 * (s_min + s_max), 0.5 * (q_min + q_max)
    ux, uy = ux[0], uy[0]
    cx = sc * ux - qc * uy + origin[:, 0]
    cy = sc * uy + qc * ux + origin[:, 1]
    # our angle: the w-axis is u = (cos a, -sin a) in image coordinates
    angle = torch.rad2deg(torch.atan2(-uy, ux))
    w, h, angle = _le90(s_max - s_min, q_max - q_min, angle)
    angle = angle + 0.0 * (cx + cy + w + h)  # NaN with the rest of a row of non-finite points
    return torch.stack([cx, cy, w, h, angle], dim=-1).reshape(*lead, 5)

"""Which points lie in which polygons: a batched [P, B] mask (the point-set detectors' assigners
test the priors against ground-truth polygons with it).

Winding numbers, vectorised over points x polygons x edges: an edge that crosses the horizontal
line through the point upwards, with the point strictly on its left, adds 1; one that crosses it
downwards with the point strictly on its right subtracts 1 (Sunday 2001, no division); a point is
inside where the sum is not 0. Points on an edge (cross product exactly 0 and inside the edge's
bounding box) count as inside, as ``cv2.pointPolygonTest(...) >= 0`` and shapely's ``covers``:
exact for integer coordinates and axis-aligned edges, within rounding otherwise. Works for any
simple polygon, convex or not, in either vertex order; repeated vertices (zero-length edges)
change nothing, and a polygon of zero area contains the points of its outline.

For rotated boxes, ``rotated_det.structures.points_in_rotated_boxes`` does the same test in the
boxes' own frames (exact borders for axis-aligned boxes).
"""

import torch

from .convex_hull import check_points

__all__ = ["points_in_polygons"]

# Points x polygons per block: the [M, block] temporaries stay in cache.
_BLOCK = 1 << 16


def _inside(px: torch.Tensor, py: torch.Tensor, vx: torch.Tensor, vy: torch.Tensor) -> torch.Tensor:
    """px, py [1, n] points; vx, vy [M, n] vertices of the polygon paired with each point ->
    [n] bool."""
    ax, ay = vx, vy
    bx, by = vx.roll(-1, 0), vy.roll(-1, 0)
    crs = (bx - ax) * (py - ay) - (by - ay) * (px - ax)  # > 0: point left of edge a -> b
    a_below, b_below = ay <= py, by <= py
    up = a_below & ~b_below & (crs > 0)
    down = ~a_below & b_below & (crs < 0)
    winding = up.sum(0) - down.sum(0)
    on_edge = (
        (crs == 0)
        & (torch.minimum(ax, bx) <= px)
        & (px <= torch.maximum(ax, bx))
        & (torch.minimum(ay, by) <= py)
        & (py <= torch.maximum(ay, by))
    )
    return (winding != 0) | on_edge.any(0)


def points_in_polygons(points: torch.Tensor, polygons: torch.Tensor) -> torch.Tensor:
    """Whether each point lies inside (or on the outline of) each polygon.

    Args:
        points: [P, 2] (x, y) in pixels, any float dtype.
        polygons: [B, M, 2] or [B, 2M] (x1, y1, x2, y2, ...) simple polygons (convex or not,
            either vertex order), M >= 1, on the same device.

    Returns:
        [P, B] bool. Points on an edge or a vertex are inside (see the module docstring). A
        polygon or point with a NaN coordinate gives False.

    Raises:
        ValueError: on wrong shapes, dtypes or devices.
    """
    if not isinstance(points, torch.Tensor) or not points.is_floating_point():
        raise ValueError(
            f"points_in_polygons: points must be a floating-point torch.Tensor, got {type(points)}"
        )
    if points.dim() != 2 or points.shape[1] != 2:
        raise ValueError(
            f"points_in_polygons: points must have shape [P, 2], got {tuple(points.shape)}"
        )
    if not isinstance(polygons, torch.Tensor) or not polygons.is_floating_point():
        raise ValueError(
            f"points_in_polygons: polygons must be a floating-point torch.Tensor, got "
            f"{type(polygons)}"
        )
    if polygons.dim() == 2 and polygons.shape[1] % 2 == 0 and polygons.shape[1] >= 2:
        polygons = polygons.unflatten(1, (-1, 2))
    check_points(polygons, "points_in_polygons: polygons")
    if polygons.dim() != 3:
        raise ValueError(
            "points_in_polygons: polygons must have shape [B, M, 2] or [B, 2M], got "
            f"{tuple(polygons.shape)}"
        )
    if points.device != polygons.device:
        raise ValueError(
            "points_in_polygons: points and polygons must be on the same device, got "
            f"{points.device} and {polygons.device}"
        )
    dtype = torch.promote_types(points.dtype, polygons.dtype)
    p, b, m = points.shape[0], polygons.shape[0], polygons.shape[1]
    # [1, P * B] points against [M, P * B] vertices, pairs along the contiguous dimension
    px = points[:, 0].to(dtype)[:, None].expand(p, b).reshape(1, -1)
    py = points[:, 1].to(dtype)[:, None].expand(p, b).reshape(1, -1)
    vx = polygons[..., 0].to(dtype).T[:, None].expand(m, p, b).reshape(m, -1)
    vy = polygons[..., 1].to(dtype).T[:, None].expand(m, p, b).reshape(m, -1)
    finite = torch.isfinite(polygons).flatten(1).all(1)  # [B]
    if torch.jit.is_tracing() or px.shape[1] <= _BLOCK:
        return _inside(px, py, vx, vy).reshape(p, b) & finite
    parts = [
        _inside(
            px[:, i : i + _BLOCK],
            py[:, i : i + _BLOCK],
            vx[:, i : i + _BLOCK],
            vy[:, i : i + _BLOCK],
        )
        for i in range(0, px.shape[1], _BLOCK)
    ]
    return torch.cat(parts).reshape(p, b) & finite

"""Vectorised numpy geometry on polygons of any vertex count, used when cropping, splitting and
clipping labels: vertex ordering, areas, clipping to rectangles and the minimum-area rectangle of
a point set. Conversions between 4-point polygons and rotated boxes, and angle normalisation, are
:mod:`rotated_det.structures`' (``poly_to_rbox``, ``rbox_to_poly``, ``normalize_rbox_angles``);
for a clipped polygon, ``poly_to_rbox(min_area_rect_corners(p).reshape(-1, 8))`` is its box.

Polygons are stored as ``[N, K, 2]`` float arrays of ``(x, y)`` pixel vertices. Polygons with
fewer than ``K`` vertices are padded by repeating their last vertex: a repeated vertex adds a
zero-length edge, which changes neither the area nor the clipping, so no vertex count is needed.
An empty polygon (fully clipped away) is all zeros.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "order_quads",
    "polygon_areas",
    "clip_polygons_to_rects",
    "min_area_rect_corners",
]


def order_quads(polys: np.ndarray) -> np.ndarray:
    """Order each polygon's vertices by angle around their mean, making self-crossing quads simple.

    Args:
        polys: ``[N, K, 2]`` (or ``[N, 2K]``) vertices in any order.
    Returns:
        ``[N, K, 2]`` float64, same vertices sorted by ``atan2`` around the vertex mean.
    """
    p = np.asarray(polys, dtype=np.float64)
    p = p.reshape(len(p), -1, 2) if p.size else p.reshape(0, max(p.shape[-1] // 2, 1), 2)
    c = p.mean(axis=1, keepdims=True)
    ang = np.arctan2(p[..., 1] - c[..., 1], p[..., 0] - c[..., 0])
    order = np.argsort(ang, axis=1, kind="stable")
    return np.take_along_axis(p, order[..., None], axis=1)


def polygon_areas(polys: np.ndarray) -> np.ndarray:
    """Absolute shoelace area of simple polygons ``[N, K, 2]`` -> ``[N]`` (pixels^2)."""
    p = np.asarray(polys, dtype=np.float64)
    x, y = p[..., 0], p[..., 1]
    xn, yn = np.roll(x, -1, axis=1), np.roll(y, -1, axis=1)
    return 0.5 * np.abs((x * yn - xn * y).sum(axis=1))


def _compact(points: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Move kept points to the front (order preserved) and pad with the last kept point."""
    n = len(points)
    counts = keep.sum(axis=1)
    width = max(int(counts.max()) if n else 0, 1)
    order = np.argsort(~keep, axis=1, kind="stable")[:, :width]
    pos = np.minimum(np.arange(width)[None, :], np.maximum(counts - 1, 0)[:, None])
    idx = np.take_along_axis(order, pos, axis=1)
    out = np.take_along_axis(points, idx[..., None], axis=1)
    out[counts == 0] = 0.0
    return out


def clip_polygons_to_rects(polys: np.ndarray, rects: np.ndarray) -> np.ndarray:
    """Clip simple polygons to axis-aligned rectangles (Sutherland-Hodgman, vectorised over N).

    Args:
        polys: ``[N, K, 2]`` vertices (padded by repetition, see module doc).
        rects: ``[4]`` one rectangle ``(x0, y0, x1, y1)`` for all polygons, or ``[N, 4]``.
    Returns:
        ``[N, K', 2]`` clipped polygons (``K' <= K + 4``), padded by repetition; all zeros where a
        polygon lies entirely outside its rectangle.
    """
    p = np.asarray(polys, dtype=np.float64)
    n = len(p)
    r = np.broadcast_to(np.asarray(rects, dtype=np.float64), (n, 4))
    if n == 0:
        return p.reshape(0, max(p.shape[1] if p.ndim == 3 else 1, 1), 2)
    # Each clip boundary: (axis, bound, sign): inside iff sign * (coord - bound) >= 0.
    for axis, col, sign in ((0, 0, 1.0), (0, 2, -1.0), (1, 1, 1.0), (1, 3, -1.0)):
        bound = r[:, col][:, None]
        cur = p
        nxt = np.roll(p, -1, axis=1)
        dc = sign * (cur[..., axis] - bound)
        dn = sign * (nxt[..., axis] - bound)
        cin, nin = dc >= 0, dn >= 0
        cross = cin != nin
        denom = np.where(cross, dc - dn, 1.0)
        t = np.where(cross, dc / denom, 0.0)
        inter = cur + t[..., None] * (nxt - cur)
        inter[..., axis] = np.where(cross, np.broadcast_to(bound, dc.shape), inter[..., axis])
        # Each vertex emits itself (if inside) then the crossing point of its outgoing edge.
        pts = np.stack([cur, inter], axis=2).reshape(n, -1, 2)
        keep = np.stack([cin, cross], axis=2).reshape(n, -1)
        p = _compact(pts, keep)
    return p


def min_area_rect_corners(polys: np.ndarray) -> np.ndarray:
    """Minimum-area enclosing rectangle of each point set, as 4 corners.

    Tries every direction given by a pair of the points (which includes every convex-hull
    edge, where the optimum lies), so it is exact for any point set, convex or not.

    Args:
        polys: ``[N, K, 2]`` points (repeated points are fine).
    Returns:
        ``[N, 4, 2]`` corners in order around the rectangle.
    """
    p = np.asarray(polys, dtype=np.float64)
    n, k = p.shape[:2]
    if n == 0:
        return np.zeros((0, 4, 2))
    if k < 2:
        p = np.concatenate([p, p], axis=1)
        k = 2
    ii, jj = np.triu_indices(k, 1)
    d = p[:, jj] - p[:, ii]  # [N, P, 2]
    length = np.hypot(d[..., 0], d[..., 1])
    valid = length > 1e-9
    u = d / np.where(valid, length, 1.0)[..., None]
    u[~valid] = (1.0, 0.0)
    v = np.stack([-u[..., 1], u[..., 0]], axis=-1)
    pu = np.einsum("npc,nkc->npk", u, p)
    pv = np.einsum("npc,nkc->npk", v, p)
    umin, umax = pu.min(-1), pu.max(-1)
    vmin, vmax = pv.min(-1), pv.max(-1)
    area = (umax - umin) * (vmax - vmin)
    best = np.argmin(area, axis=1)
    sel = np.arange(n)
    ub, vb = u[sel, best], v[sel, best]
    u0, u1, v0, v1 = umin[sel, best], umax[sel, best], vmin[sel, best], vmax[sel, best]
    corners = np.stack(
        [
            ub * u0[:, None] + vb * v0[:, None],
            ub * u1[:, None] + vb * v0[:, None],
            ub * u1[:, None] + vb * v1[:, None],
            ub * u0[:, None] + vb * v1[:, None],
        ],
        axis=1,
    )
    return corners

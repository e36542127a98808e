"""Vectorised numpy geometry on small polygons, used when cropping, splitting and clipping labels.

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
    "rboxes_to_corners",
    "rect_corners_to_rboxes",
    "quads_to_rboxes",
    "normalize_le90",
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


def rboxes_to_corners(boxes: np.ndarray) -> np.ndarray:
    """``[N, 5]`` XYWHA_ABS boxes -> ``[N, 4, 2]`` corners (numpy fast path of
    ``rotated_det.structures.rbox_to_poly``, same corner order)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
    a = np.radians(b[:, 4])
    c, s = np.cos(a), np.sin(a)
    u = np.stack([c, -s], axis=1) * (b[:, 2:3] / 2)
    v = np.stack([s, c], axis=1) * (b[:, 3:4] / 2)
    ctr = b[:, :2]
    return np.stack([ctr - u - v, ctr + u - v, ctr + u + v, ctr - u + v], axis=1)


def rect_corners_to_rboxes(corners: np.ndarray) -> np.ndarray:
    """Corners of rectangles in order around them (``[N, 4, 2]``, e.g. from
    :func:`min_area_rect_corners`) -> ``[N, 5]`` XYWHA_ABS boxes with ``w`` along corner 0 -> 1
    and the angle in ``[-180, 180)``."""
    q = np.asarray(corners, dtype=np.float64).reshape(-1, 4, 2)
    e1 = q[:, 1] - q[:, 0]
    e2 = q[:, 3] - q[:, 0]
    out = np.empty((len(q), 5))
    out[:, :2] = q.mean(axis=1)
    out[:, 2] = np.hypot(e1[:, 0], e1[:, 1])
    out[:, 3] = np.hypot(e2[:, 0], e2[:, 1])
    out[:, 4] = np.degrees(np.arctan2(-e1[:, 1], e1[:, 0]))
    out[:, 4] = (out[:, 4] + 180.0) % 360.0 - 180.0
    return out


_PAIRS_I = np.array([0, 0, 0, 1, 1, 2])
_PAIRS_J = np.array([1, 2, 3, 2, 3, 3])


def quads_to_rboxes(polys: np.ndarray) -> np.ndarray:
    """Minimum-area rotated rectangles of 4-point polygons, in numpy.

    Same rectangles as ``rotated_det.structures.poly_to_rbox(polys)`` (version "le90": ``w >= h``,
    angle in ``[-90, 90)``), computed without torch: the data pipeline converts many small
    arrays, often in processes where torch's thread pool only adds overhead. The rectangle is the
    one aligned with the first of the point pairs (0,1), (0,2), (0,3), (1,2), (1,3), (2,3) whose
    area is smallest; equal areas (within a relative 1e-9) keep the earlier pair. Such exact ties
    happen when the hull is a triangle or a parallelogram (several different rectangles have the
    minimal area); ``poly_to_rbox`` then may return another of them.

    Args:
        polys: ``[N, 8]`` (or ``[N, 4, 2]``) points in any order.
    Returns:
        ``[N, 5]`` float64 XYWHA_ABS boxes.
    """
    p = np.asarray(polys, dtype=np.float64).reshape(-1, 8)
    n = len(p)
    if n == 0:
        return np.zeros((0, 5))
    xs = [p[:, 2 * k] for k in range(4)]
    ys = [p[:, 2 * k + 1] for k in range(4)]
    best_area = np.full(n, np.inf)
    ux = np.ones(n)
    uy = np.zeros(n)
    ext = np.zeros((4, n))  # umin, umax, vmin, vmax of the best pair
    # One pass per point pair over [N] arrays: small-axis reductions over [N, 6, 4] arrays are
    # several times slower in numpy.
    for i, j in zip(_PAIRS_I.tolist(), _PAIRS_J.tolist()):
        dx, dy = xs[j] - xs[i], ys[j] - ys[i]
        length = np.hypot(dx, dy)
        ok = length > 0
        safe = np.where(ok, length, 1.0)
        cx, cy = np.where(ok, dx / safe, 1.0), np.where(ok, dy / safe, 0.0)
        pu = [xs[k] * cx + ys[k] * cy for k in range(4)]
        pv = [ys[k] * cx - xs[k] * cy for k in range(4)]
        umin = np.minimum(np.minimum(pu[0], pu[1]), np.minimum(pu[2], pu[3]))
        umax = np.maximum(np.maximum(pu[0], pu[1]), np.maximum(pu[2], pu[3]))
        vmin = np.minimum(np.minimum(pv[0], pv[1]), np.minimum(pv[2], pv[3]))
        vmax = np.maximum(np.maximum(pv[0], pv[1]), np.maximum(pv[2], pv[3]))
        area = (umax - umin) * (vmax - vmin)
        # ties (a triangle hull, a parallelogram) go to the earlier pair, whatever the rounding
        better = area < best_area * (1 - 1e-9)
        best_area = np.where(better, area, best_area)
        ux, uy = np.where(better, cx, ux), np.where(better, cy, uy)
        ext = np.where(better, np.stack([umin, umax, vmin, vmax]), ext)
    uc, vc = (ext[0] + ext[1]) / 2, (ext[2] + ext[3]) / 2
    w, h = ext[1] - ext[0], ext[3] - ext[2]
    nan = np.isnan(p).any(axis=1)
    out = np.empty((n, 5))
    out[:, 0] = ux * uc - uy * vc
    out[:, 1] = uy * uc + ux * vc
    out[:, 2], out[:, 3] = w, h
    out[:, 4] = np.degrees(np.arctan2(-uy, ux))
    out = normalize_le90(out)
    out[nan] = np.nan
    return out


def normalize_le90(boxes: np.ndarray) -> np.ndarray:
    """Numpy version of ``normalize_rbox_angles(boxes, "le90")``: the same rectangles written
    with ``w >= h`` and the angle in ``[-90, 90)``. Returns a new ``[N, 5]`` float64 array."""
    b = np.array(boxes, dtype=np.float64).reshape(-1, 5)
    w, h, ang = b[:, 2].copy(), b[:, 3].copy(), b[:, 4]
    swap = w < h
    b[:, 2] = np.where(swap, h, w)
    b[:, 3] = np.where(swap, w, h)
    ang = np.where(swap, ang + 90.0, ang)
    ang = np.remainder(ang + 90.0, 180.0) - 90.0
    b[:, 4] = np.where(ang >= 90.0, ang - 180.0, ang)
    return b

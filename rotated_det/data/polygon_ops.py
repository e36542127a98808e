"""Vectorised numpy geometry on polygons of any vertex count, used when cropping, splitting and
clipping labels: vertex ordering, areas and clipping to rectangles. Conversions between polygons
and rotated boxes, and angle normalisation, are :mod:`rotated_det.structures`' (``poly_to_rbox``,
``rbox_to_poly``, ``normalize_rbox_angles``); for a clipped polygon, ``points_to_rbox(p)`` is its
box (the minimum-area rectangle of its vertices).

Polygons are stored as ``[N, K, 2]`` float arrays of ``(x, y)`` pixel vertices. Polygons with
fewer than ``K`` vertices are padded by repeating their last vertex: a repeated vertex adds a
zero-length edge, which changes neither the area nor the clipping, so no vertex count is needed.
An empty polygon (fully clipped away) is all zeros.
"""

from __future__ import annotations

import numpy as np

from rotated_det.structures import points_to_rbox

__all__ = [
    "order_quads",
    "polygon_areas",
    "clip_polygons_to_rects",
    "clip_polys_to_image",
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


def clip_polys_to_image(
    polys: np.ndarray, width, height, tolerance: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Find polygons that leave the image and clip them to it.

    Args:
        polys: ``[N, 8]`` polygons.
        width, height: image size in pixels (scalars, or ``[N]`` arrays: one image per polygon).
        tolerance: polygons that exceed the image by at most this many pixels are left as they are
            (annotators routinely click one pixel past the border).
    Returns:
        ``(outside, visible_fraction, clipped_boxes)``: ``outside`` ``[N]`` bool, True where the
        polygon exceeds the image by more than ``tolerance``; ``visible_fraction`` ``[N]`` the
        fraction of the polygon's area inside the image (1 where not outside);
        ``clipped_boxes`` ``[N, 5]`` XYWHA boxes of the clipped polygons (rows of polygons
        that are not outside are not meaningful).
    """
    polys = np.asarray(polys, dtype=np.float64).reshape(-1, 8)
    width = np.broadcast_to(np.asarray(width, dtype=np.float64), (len(polys),))
    height = np.broadcast_to(np.asarray(height, dtype=np.float64), (len(polys),))
    xs, ys = polys[:, 0::2], polys[:, 1::2]
    outside = (
        (xs.min(1) < -tolerance)
        | (ys.min(1) < -tolerance)
        | (xs.max(1) > width + tolerance)
        | (ys.max(1) > height + tolerance)
    )
    frac = np.ones(len(polys))
    boxes = np.zeros((len(polys), 5))
    idx = np.nonzero(outside)[0]
    if len(idx):
        q = order_quads(polys[idx].reshape(-1, 4, 2))
        zeros = np.zeros(len(idx))
        rects = np.stack([zeros, zeros, width[idx], height[idx]], axis=1)
        clipped = clip_polygons_to_rects(q, rects)
        area = polygon_areas(q)
        inter = polygon_areas(clipped)
        frac[idx] = np.where(area > 0, inter / np.maximum(area, 1e-12), 0.0)
        boxes[idx] = points_to_rbox(clipped)
    return outside, frac, boxes

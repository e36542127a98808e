"""IoU and GIoU between the convex hull of a point set and a rotated box or convex polygon.

Used by the point-set detectors (Oriented RepPoints, CFA, SASM): ``convex_giou`` is their
localisation loss (``1 - GIoU``, differentiable in the points) and ``convex_overlaps`` the IoU
matrix of their max-IoU assigner. Vectorised torch: autograd gives the backward, no Python loop
over sets, no data-dependent control flow on the paths that trace and export. Where no gradient is
needed (``convex_overlaps``; ``convex_iou`` without autograd) the compiled op
``rotated_det::convex_overlaps`` computes the same IoU (within 1e-9 in float64) by clipping each
hull with the polygon in float64 (``csrc/convex_polygon.h``), about 8-10x faster on the CPU.

Intersection area without clipping polygons (Green's theorem): the area of a region is
``1/2`` of the integral of ``x dy - y dx`` along its boundary, and the boundary of the
intersection of two convex polygons P and Q is made of the parts of P's edges inside Q and the
parts of Q's edges inside P. An edge ``a + t d, t in [0, 1]`` lies inside a convex polygon for
``t`` in one interval, cut by each side's half-plane (Cyrus-Beck), and contributes
``(t1 - t0) * cross(a, d) / 2``. So the area is a sum over the K x M edge/half-plane pairs of both
polygons, with no vertex ordering and no sort; it is continuous in the points, and its gradient
is the exact one away from coincident edges. Edges that run along the other polygon's side (the
same line, up to rounding) are counted once: P's edge when both go the same way, neither when they
go opposite ways (the polygons then only touch).

GIoU (Rezatofighi et al. 2019) with the convex hull of the union as the enclosing region C, as in
MMCV's ``convex_giou``: ``GIoU = IoU - (area(C) - union) / area(C)``.

Conventions: points and polygons in pixels, (x, y) with y down; rotated boxes
``(cx, cy, w, h, angle)`` with the angle in degrees counter-clockwise on screen. Polygons given as
vertices may come in either order; each is replaced by the convex hull of its vertices (the same
region for a convex polygon).
"""

import torch

from .convex_hull import _hull_indices, building_graph, check_points, polygon_area
from .diff_iou_rotated import _sincos_deg
from .ops_library import has_kernel

__all__ = ["convex_iou", "convex_giou", "convex_overlaps"]

# Edges within this many epsilons (relative to |d| |e|) of parallel are treated as parallel.
_PARALLEL_EPS = 8.0
# Parallel edges within this many epsilons of the polygons' coordinate scale count as one line.
_SAME_LINE_EPS = 64.0
# Point-set/polygon pairs per block in convex_overlaps (the [K, M, pairs] temporaries stay small).
_PAIR_CHUNK = 8192
# The compiled op takes up to this many points per set and vertices per polygon
# (csrc/convex_polygon.h).
_COMPILED_MAX_POINTS = 64


def _box_corners(boxes: torch.Tensor) -> torch.Tensor:
    """[G, 5] boxes -> [G, 4, 2] corners relative to the centre, in hull order (clockwise on
    screen): (-w/2, -h/2), (w/2, -h/2), (w/2, h/2), (-w/2, h/2) in the box's (u, v) frame."""
    sin, cos = _sincos_deg(boxes[:, 4])
    hw, hh = 0.5 * boxes[:, 2], 0.5 * boxes[:, 3]
    ux, uy = hw * cos, -hw * sin  # half w-side, along u = (cos a, -sin a)
    vx, vy = hh * sin, hh * cos  # half h-side, along v = (sin a, cos a)
    xs = torch.stack([-ux - vx, ux - vx, ux + vx, vx - ux], 1)
    ys = torch.stack([-uy - vy, uy - vy, uy + vy, vy - uy], 1)
    return torch.stack([xs, ys], 2)


class _Regions:
    """The second argument of the ops as convex polygons: ``origin`` [G, 2] (the box centre or
    the first vertex: coordinates are taken relative to it, for precision), ``rel`` [G, M, 2]
    vertices in hull order relative to the origin (padded with copies of the first), ``area``
    [G] and ``valid`` [G] (finite values; boxes with no negative side)."""

    def __init__(self, polys_or_boxes: torch.Tensor, dtype: torch.dtype, name: str) -> None:
        t = polys_or_boxes
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise ValueError(f"{name} must be a floating-point torch.Tensor, got {type(t)}")
        if t.dim() == 2 and t.shape[1] == 5:
            boxes = t.to(dtype)
            valid = torch.isfinite(boxes).all(1) & (boxes[:, 2] >= 0) & (boxes[:, 3] >= 0)
            unit = torch.zeros_like(boxes[:1])
            unit[:, 2:4] = 1.0
            boxes = torch.where(valid[:, None], boxes, unit)
            self.origin = boxes[:, :2]
            self.rel = _box_corners(boxes)
            self.area = boxes[:, 2] * boxes[:, 3]
        else:
            if t.dim() == 2 and t.shape[1] % 2 == 0 and t.shape[1] >= 2:
                t = t.unflatten(1, (-1, 2))
            if t.dim() != 3 or t.shape[2] != 2:
                raise ValueError(
                    f"{name} must be rotated boxes [G, 5] (cx, cy, w, h, angle_deg) or polygons "
                    f"[G, M, 2] or [G, 2M] (x1, y1, x2, y2, ...), got {tuple(t.shape)}"
                )
            polys = t.to(dtype)
            valid = torch.isfinite(polys).flatten(1).all(1)
            polys = torch.where(valid[:, None, None], polys, torch.zeros_like(polys))
            self.origin = polys[:, 0]
            with torch.no_grad():
                idx, _ = _hull_indices(polys)
            hull = polys.gather(1, idx[:, :, None].expand(-1, -1, 2))
            self.rel = hull - self.origin[:, None]
            self.area = polygon_area(self.rel)
        self.valid = valid


def _check_points(points: torch.Tensor, regions: torch.Tensor, name: str) -> torch.dtype:
    check_points(points, f"{name}: points")
    if points.dim() != 3:
        raise ValueError(f"{name}: points must have shape [N, K, 2], got {tuple(points.shape)}")
    if not isinstance(regions, torch.Tensor):
        raise ValueError(f"{name}: boxes/polygons must be a torch.Tensor, got {type(regions)}")
    if points.device != regions.device:
        raise ValueError(
            f"{name}: points and boxes/polygons must be on the same device, got {points.device} "
            f"and {regions.device}"
        )
    if torch.float64 in (points.dtype, regions.dtype):
        return torch.float64
    return torch.float32


def _clipped_edges(
    a: tuple[torch.Tensor, torch.Tensor],
    d: tuple[torch.Tensor, torch.Tensor],
    c: tuple[torch.Tensor, torch.Tensor],
    e: tuple[torch.Tensor, torch.Tensor],
    scale: torch.Tensor,
    own_side: bool,
) -> torch.Tensor:
    """Sum over the edges ``a_k + t d_k`` (coordinates [K, 1, n]) of ``(t1 - t0) cross(a_k, d_k)``
    where [t0, t1] is the part of [0, 1] inside the convex polygon of sides ``c_m + s e_m``
    ([1, M, n], interior on the left; zero-length sides are no constraint). An edge along a side
    (parallel, on the same line within ``scale``'s tolerance) is kept when ``own_side`` and both go
    the same way, else dropped. Returns [n]."""
    ax, ay = a
    dx, dy = d
    cx, cy = c
    ex, ey = e
    num = ex * (ay - cy) - ey * (ax - cx)  # cross(e, a - c): >= 0 where a is inside side m
    rate = ex * dy - ey * dx  # its change per unit t
    eps = torch.finfo(num.dtype).eps
    with torch.no_grad():
        d_l1, e_l1 = dx.abs() + dy.abs(), ex.abs() + ey.abs()
        parallel = rate.abs() <= (_PARALLEL_EPS * eps) * d_l1 * e_l1  # also every zero-length
        same_line = num.abs() <= (_SAME_LINE_EPS * eps) * scale * e_l1
        if own_side:
            keep = torch.where(same_line, dx * ex + dy * ey > 0, num > 0)
        else:
            keep = (num > 0) & ~same_line
        cut = parallel & ~keep & (e_l1 > 0)  # an edge entirely outside one side
        blocked = cut.any(1)  # [K, n]
        enter = ~parallel & (rate > 0)
        leave = ~parallel & (rate < 0)
    t = num / torch.where(parallel, 1.0, -rate)  # where the edge crosses side m's line
    t0 = torch.where(enter, t, 0.0).amax(1)  # [K, n]; lower bound 0
    t1 = torch.where(leave, t, 1.0).amin(1)  # upper bound 1
    length = torch.where(blocked, 0.0, (t1 - t0).clamp(min=0.0))
    moment = (ax * dy - ay * dx)[:, 0]  # [K, n]
    return (length * moment).sum(0)


def _intersection_area(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Area of the intersection of aligned pairs of convex polygons in hull order (interior on
    the left), padded with repeated vertices: p [n, K, 2], q [n, M, 2] (same frame, near the
    origin for precision) -> [n]."""
    px, py = p[..., 0].T, p[..., 1].T  # [K, n]
    qx, qy = q[..., 0].T, q[..., 1].T  # [M, n]
    pdx, pdy = px.roll(-1, 0) - px, py.roll(-1, 0) - py
    qdx, qdy = qx.roll(-1, 0) - qx, qy.roll(-1, 0) - qy
    with torch.no_grad():
        scale = torch.maximum(
            torch.maximum(px.abs().amax(0), py.abs().amax(0)),
            torch.maximum(qx.abs().amax(0), qy.abs().amax(0)),
        )
        # a polygon with no edge (one point) has no interior and cuts nothing
        p_has_edge = ((pdx != 0) | (pdy != 0)).any(0)
        q_has_edge = ((qdx != 0) | (qdy != 0)).any(0)
    p_in_q = _clipped_edges(
        (px[:, None], py[:, None]),
        (pdx[:, None], pdy[:, None]),
        (qx[None], qy[None]),
        (qdx[None], qdy[None]),
        scale,
        own_side=True,
    )
    q_in_p = _clipped_edges(
        (qx[:, None], qy[:, None]),
        (qdx[:, None], qdy[:, None]),
        (px[None], py[None]),
        (pdx[None], pdy[None]),
        scale,
        own_side=False,
    )
    both = p_has_edge & q_has_edge
    return torch.where(both, 0.5 * (p_in_q + q_in_p), 0.0).clamp(min=0.0)


def _iou(
    p: torch.Tensor, q: torch.Tensor, area_p: torch.Tensor, area_q: torch.Tensor
) -> torch.Tensor:
    """[n] IoU of aligned convex polygons p [n, K, 2], q [n, M, 2] (hull order, same frame) of
    areas ``area_p``, ``area_q`` [n]."""
    inter = _intersection_area(p, q)
    inter = torch.minimum(inter, torch.minimum(area_p, area_q))  # rounding can exceed by an ulp
    union = area_p + area_q - inter
    return inter / torch.where(union > 0, union, 1.0)


def _compiled_iou(points: torch.Tensor, regions: _Regions, aligned: bool) -> torch.Tensor | None:
    """IoU by the compiled op ``rotated_det::convex_overlaps`` (no gradient; float64 inside), or
    None where it has no kernel for the inputs (device, more than 64 points or vertices)."""
    if (
        points.shape[1] > _COMPILED_MAX_POINTS
        or regions.rel.shape[1] > _COMPILED_MAX_POINTS
        or not has_kernel("convex_overlaps", points.device)
    ):
        return None
    polys = (regions.rel + regions.origin[:, None]).contiguous()
    iou: torch.Tensor = torch.ops.rotated_det.convex_overlaps(points.contiguous(), polys, aligned)
    valid = regions.valid if aligned else regions.valid[None]
    return torch.where(valid, iou, 0.0)


def _aligned(
    points: torch.Tensor, polys_or_boxes: torch.Tensor, name: str, giou: bool
) -> torch.Tensor:
    dtype = _check_points(points, polys_or_boxes, name)
    regions = _Regions(polys_or_boxes, dtype, f"{name}: boxes/polygons")
    if not torch.jit.is_tracing() and points.shape[0] != regions.rel.shape[0]:
        raise ValueError(
            f"{name}: points and boxes/polygons must hold as many sets (aligned pairs), got "
            f"{points.shape[0]} and {regions.rel.shape[0]}"
        )
    pts = points.to(dtype)
    needs_grad = torch.is_grad_enabled() and (pts.requires_grad or regions.rel.requires_grad)
    if not giou and not needs_grad:
        iou = _compiled_iou(pts, regions, aligned=True)
        if iou is not None:
            return iou
    finite = torch.isfinite(pts).flatten(1).all(1)
    valid = finite & regions.valid
    # invalid pairs: harmless values, so that no NaN reaches the backward; result 0
    rel = torch.where(valid[:, None, None], pts - regions.origin[:, None], 0.0)
    with torch.no_grad():
        idx, _ = _hull_indices(rel)
    hull = rel.gather(1, idx[:, :, None].expand(-1, -1, 2))
    area_p = polygon_area(hull)
    area_q = regions.area
    inter = _intersection_area(hull, regions.rel)
    inter = torch.minimum(inter, torch.minimum(area_p, area_q))  # rounding can exceed by an ulp
    union = area_p + area_q - inter
    iou = inter / torch.where(union > 0, union, 1.0)
    if giou:
        both = torch.cat([rel, regions.rel], 1)
        with torch.no_grad():
            idx_c, _ = _hull_indices(both)
        area_c = polygon_area(both.gather(1, idx_c[:, :, None].expand(-1, -1, 2)))
        iou = iou - (area_c - union) / torch.where(area_c > 0, area_c, 1.0)
    return torch.where(valid, iou, 0.0)


def convex_iou(points: torch.Tensor, polys_or_boxes: torch.Tensor) -> torch.Tensor:
    """IoU of the convex hull of each point set with a rotated box or convex polygon (aligned
    pairs), differentiable in the points (and in the boxes/polygons).

    Args:
        points: [N, K, 2] (x, y) point sets in pixels, any float dtype.
        polys_or_boxes: [N, 5] rotated boxes (cx, cy, w, h, angle in degrees), or [N, M, 2] /
            [N, 2M] polygons (each replaced by the convex hull of its vertices).

    Returns:
        [N] IoU in [0, 1], float64 when either input is float64, else float32. Pairs with a
        non-finite value or a box side < 0 give 0 with zero gradient. A degenerate hull
        (collinear or identical points) has area 0, IoU 0 and a finite gradient.

    Raises:
        ValueError: on wrong shapes, dtypes, devices or unequal numbers of sets.
    """
    return _aligned(points, polys_or_boxes, "convex_iou", giou=False)


def convex_giou(points: torch.Tensor, polys_or_boxes: torch.Tensor) -> torch.Tensor:
    """GIoU of the convex hull of each point set with a rotated box or convex polygon (aligned
    pairs), the enclosing region being the convex hull of both (MMCV's ``convex_giou``); the
    loss of Oriented RepPoints is ``1 - convex_giou``.

    Args:
        points: [N, K, 2] (x, y) point sets in pixels, any float dtype.
        polys_or_boxes: [N, 5] rotated boxes (cx, cy, w, h, angle in degrees), or [N, M, 2] /
            [N, 2M] polygons.

    Returns:
        [N] GIoU in [-1, 1] (float64 when either input is float64, else float32). Pairs with a
        non-finite value or a box side < 0 give 0 with zero gradient. Degenerate hulls
        (collinear or identical points) keep a finite gradient that pulls them towards the box.

    Raises:
        ValueError: on wrong shapes, dtypes, devices or unequal numbers of sets.
    """
    return _aligned(points, polys_or_boxes, "convex_giou", giou=True)


def convex_overlaps(points: torch.Tensor, polys_or_boxes: torch.Tensor) -> torch.Tensor:
    """IoU of the convex hull of every point set with every rotated box or convex polygon (the
    cost matrix of the point-set detectors' max-IoU assigner). No gradient.

    Args:
        points: [N, K, 2] (x, y) point sets in pixels, any float dtype.
        polys_or_boxes: [G, 5] rotated boxes (cx, cy, w, h, angle in degrees), or [G, M, 2] /
            [G, 2M] polygons.

    Returns:
        [N, G] IoU, equal to ``convex_iou`` of each pair (float64 when either input is float64,
        else float32). In eager mode only the pairs whose bounding boxes overlap are computed
        (the others are 0); traced and exported graphs compute every pair.

    Raises:
        ValueError: on wrong shapes, dtypes or devices.
    """
    name = "convex_overlaps"
    dtype = _check_points(points, polys_or_boxes, name)
    with torch.no_grad():
        regions = _Regions(polys_or_boxes, dtype, f"{name}: boxes/polygons")
        pts = points.to(dtype)
        compiled = _compiled_iou(pts, regions, aligned=False)
        if compiled is not None:
            return compiled
        n, g = pts.shape[0], regions.rel.shape[0]
        finite = torch.isfinite(pts).flatten(1).all(1)
        pts = torch.where(finite[:, None, None], pts, 0.0)
        idx, _ = _hull_indices(pts)
        hull = pts.gather(1, idx[:, :, None].expand(-1, -1, 2))  # [N, K, 2]
        area_p = polygon_area(hull)
        if building_graph():  # every pair, one pass (valid for any N and G)
            k, m = hull.shape[1], regions.rel.shape[1]
            p = (hull[:, None] - regions.origin[None, :, None]).reshape(-1, k, 2)
            q = regions.rel[None].expand(n, -1, -1, -1).reshape(-1, m, 2)
            ap = area_p[:, None].expand(-1, g).reshape(-1)
            aq = regions.area[None].expand(n, -1).reshape(-1)
            ok = (finite[:, None] & regions.valid[None]).reshape(-1)
            return torch.where(ok, _iou(p, q, ap, aq), 0.0).reshape(n, g)
        # pairs whose axis-aligned bounding boxes overlap (the others have IoU 0), in blocks
        lo_p, hi_p = hull.amin(1), hull.amax(1)  # [N, 2]
        corners = regions.rel + regions.origin[:, None]
        lo_q, hi_q = corners.amin(1), corners.amax(1)  # [G, 2]
        near = (lo_p[:, None] <= hi_q[None]).all(2) & (lo_q[None] <= hi_p[:, None]).all(2)
        near &= finite[:, None] & regions.valid[None]
        pi, gi = near.nonzero(as_tuple=True)
        out = torch.zeros(n, g, dtype=dtype, device=pts.device)
        for pc, gc in zip(pi.split(_PAIR_CHUNK), gi.split(_PAIR_CHUNK)):
            p = hull[pc] - regions.origin[gc][:, None]
            out[pc, gc] = _iou(p, regions.rel[gc], area_p[pc], regions.area[gc])
        return out

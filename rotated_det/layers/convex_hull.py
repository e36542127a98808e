"""Convex hulls of small point sets, batched: the shared first step of the convex-polygon ops.

A hull is found by gift wrapping, vectorised over the sets: start at each set's lowest-x point
(lowest y among equal x), which is a hull vertex, and take K - 1 steps; each step turns from the
direction of the last hull edge to the point with the smallest turn angle (the farthest one when
several are collinear with the last edge), and stops once it is back at the start. That is
O(K^2) work per set on [N, K] tensors, with no data-dependent Python control flow (the K steps
are a loop over a fixed count, not over sets), so it traces and exports.

Orientation: hull vertices come in the order that keeps the interior on the LEFT of each edge in
(x, y) algebra (positive shoelace area). Image y points down, so on screen that order is
CLOCKWISE: the same order as ``rbox_to_poly``'s corners and DOTA's polygons. Worked example: the
points (0, 0), (2, 0), (2, 1), (0, 1), (1, 0.5) give the hull (0, 0), (2, 0), (2, 1), (0, 1)
(the centre point is inside): on screen top-left, top-right, bottom-right, bottom-left.

Degenerate sets: repeated points are skipped (a point equal to the current vertex is never the
next one), and the walk stops at the first vertex it would take twice (a near-duplicate of the
start, different by rounding, then closes the hull with a tiny edge). Collinear sets give a
two-vertex hull (the segment's ends, walked there and back), and a set of identical points a
one-vertex hull. A turn within 16 epsilons (of the dtype) of straight ahead or straight back
counts as exactly straight, so that rounding cannot make nearly collinear points zigzag.
"""

import torch

__all__ = ["convex_hull", "polygon_area"]

# Turns (cross product relative to the product of the L1 norms) within this many epsilons of
# 0 or 180 degrees count as exactly straight.
_STRAIGHT_EPS = 16.0


def building_graph() -> bool:
    """True under torch.jit.trace, torch.compile and torch.export: take no shape-dependent branch
    (the ops then record one dense pass, valid for any count)."""
    exporting = getattr(torch.compiler, "is_exporting", lambda: False)()
    return bool(torch.jit.is_tracing() or torch.compiler.is_compiling() or exporting)


def check_points(points: torch.Tensor, name: str) -> None:
    """Raises ValueError unless ``points`` is a [..., K, 2] floating-point tensor, K >= 1."""
    if not isinstance(points, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape [..., K, 2], got {type(points)}")
    if not points.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {points.dtype}")
    if not torch.jit.is_tracing() and (points.dim() < 2 or points.shape[-1] != 2):
        raise ValueError(f"{name} must have shape [..., K, 2], got {tuple(points.shape)}")
    if not torch.jit.is_tracing() and points.shape[-2] == 0:
        raise ValueError(f"{name} must hold at least one point per set, got {tuple(points.shape)}")


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; float16, bfloat16 and float32 are computed in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _hull_indices(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[N, K, 2] points -> ([N, K] long indices of the hull vertices in order, padded with the
    first one; [N, K] bool, True for the real vertices). No gradient (a discrete choice).

    Works on [K, N] coordinates (sets along the contiguous dimension: every elementwise op is
    vectorised over the sets, several times faster than [N, K] for K ~ 9)."""
    k = points.shape[1]
    x = points[..., 0].T.contiguous()  # [K, N]
    y = points[..., 1].T.contiguous()
    eps = torch.finfo(points.dtype).eps * _STRAIGHT_EPS
    # start: lowest x, then lowest y (a hull vertex); all-NaN sets start at 0
    x_min = x.amin(dim=0, keepdim=True)
    start = torch.where(x == x_min, y, torch.inf).min(dim=0).indices  # [N]
    cur = start[None]  # [1, N]
    cur_x, cur_y = x.gather(0, cur), y.gather(0, cur)
    # the direction "arriving" at the start: straight down in (x, y) algebra, (0, -1), so that
    # the first step turns counter-clockwise (algebraically) towards the points right of it
    dx_in = torch.zeros_like(cur_x)
    dy_in = -torch.ones_like(cur_x)
    closed = torch.zeros_like(cur, dtype=torch.bool)
    visited = torch.zeros_like(x).scatter_(0, cur, 1.0)  # [K, N], 1 for the vertices taken
    order = [cur]
    valid = [torch.ones_like(closed)]
    for _ in range(k - 1):
        vx, vy = x - cur_x, y - cur_y  # [K, N] offsets from the current vertex
        crs = dx_in * vy - dy_in * vx
        dot = dx_in * vx + dy_in * vy
        tol = (eps * (dx_in.abs() + dy_in.abs())) * (vx.abs() + vy.abs())
        crs = torch.where(crs.abs() <= tol, 0.0, crs)  # exact elsewhere: collinear points tie
        # pseudo-angle of the turn, increasing with the counter-clockwise angle on [0, 360):
        # 0 straight ahead, 2 straight back, 4 a full turn: 1 - ratio for left turns (crs >= 0),
        # 3 + ratio for right turns, written without a mask; inf for the vertex itself and its
        # repeats (0 / 0) and NaN points
        ratio = dot / (dot.abs() + crs.abs())
        turn = (2.0 - torch.copysign(1.0 + ratio, crs)).nan_to_num_(nan=torch.inf)
        best = turn.amin(dim=0, keepdim=True)
        dist = torch.where(turn == best, vx * vx + vy * vy, -1.0)
        nxt = dist.max(dim=0, keepdim=True).indices
        stuck = best.isinf()  # every point equals the current vertex
        # back at a vertex already taken: the start, or (when rounding makes a near-duplicate
        # of the start look like a different vertex) the one after it
        closed = closed | stuck | (visited.gather(0, nxt) > 0)
        moved = ~closed
        nxt = torch.where(moved, nxt, start)
        nxt_x, nxt_y = x.gather(0, nxt), y.gather(0, nxt)
        dx_in = torch.where(moved, nxt_x - cur_x, dx_in)
        dy_in = torch.where(moved, nxt_y - cur_y, dy_in)
        cur_x = torch.where(moved, nxt_x, cur_x)
        cur_y = torch.where(moved, nxt_y, cur_y)
        visited.scatter_(0, nxt, 1.0)
        order.append(nxt)
        valid.append(moved)
    return torch.cat(order).T, torch.cat(valid).T


def convex_hull(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Convex hull of each set of K points (see the module docstring for the order).

    Args:
        points: [..., K, 2] (x, y), any float dtype, K >= 1.

    Returns:
        ``(hull, is_vertex)``: [..., K, 2] the hull vertices in order, starting at the
        lowest-x point, padded with copies of that first vertex (so that a padded hull is a
        valid closed polygon with zero-length edges), in the dtype of ``points``; and [..., K]
        bool, True for the real vertices. Gradients flow to the points that are hull vertices.

    Raises:
        ValueError: on a wrong shape or dtype.
    """
    check_points(points, "convex_hull: points")
    lead, k = points.shape[:-2], points.shape[-2]
    flat = points.reshape(-1, k, 2)
    with torch.no_grad():
        idx, is_vertex = _hull_indices(flat.to(compute_dtype(points.dtype)))
    hull = flat.gather(1, idx[:, :, None].expand(-1, -1, 2))
    return hull.reshape(*lead, k, 2), is_vertex.reshape(*lead, k)


def polygon_area(polys: torch.Tensor) -> torch.Tensor:
    """Signed shoelace area of closed polygons: [..., M, 2] -> [...] (pixels**2), positive for
    the hull order (clockwise on screen), negative for the opposite order. Computed about the
    first vertex (no cancellation from large absolute coordinates)."""
    rel = polys - polys[..., :1, :]
    nxt = torch.roll(rel, -1, dims=-2)
    return 0.5 * (rel[..., 0] * nxt[..., 1] - rel[..., 1] * nxt[..., 0]).sum(-1)

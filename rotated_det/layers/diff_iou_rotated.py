"""Differentiable IoU of aligned pairs of rotated boxes, and the area of their enclosing rectangle.

Vectorised torch (autograd gives the backward; no Python loop over boxes, no data-dependent
Python control flow, so the functions trace). Both boxes of a pair are first expressed in the
local frame of the second box (origin at its centre, x along its w-axis, y along its h-axis), as
the compiled op does: large absolute coordinates lose no precision and the second box becomes
``|x| <= w2 / 2, |y| <= h2 / 2``.

Intersection (``diff_iou_rotated``): the intersection of two convex polygons is the convex
polygon whose vertices are among 24 candidates: the 4 corners of each box that lie inside the
other (8) and the crossings of each edge of box 1 with each side line of box 2 that lie on both
segments (16). The valid candidates are ordered by angle around their mean (the order is a
permutation: no gradient flows through it) and the area follows from the shoelace formula over
the ordered points; invalid slots repeat the first ordered point, which adds nothing. A point
within the rounding tolerance of a boundary (8 epsilons of the magnitudes that make up the tested
coordinate) counts as inside, so that identical, nested and edge-sharing boxes keep all their
vertices under rounding without letting a thin box's sliver in; crossings of lines within
~1e-8 rad (float32) of parallel are skipped (a corner within the tolerance stands in for them),
so no division by (nearly) zero reaches the graph.

Enclosing area (``diff_enclosing_area_rotated``): the minimum-area rotated rectangle that
encloses both boxes, chosen over the convex hull of the 8 corners because (a) it is the GIoU
paper's "smallest enclosing box" C, only rotated, and (b) it needs no ordering of hull vertices,
which breaks down when corners coincide (identical or edge-sharing boxes): the minimum-area
enclosing rectangle of a point set has a side along an edge of the set's convex hull (Freeman &
Shapira 1975), and every hull edge of two convex polygons is an edge of one of them or a bridge
from a corner of one to a corner of the other, so the minimum over 18 directions (the axes of
each box and the 16 corner-to-corner bridges) of the area of the bounding rectangle along that
direction is exact. It is continuous in the boxes (a minimum of continuous functions) and
differentiable almost everywhere.

Box convention: ``(cx, cy, w, h, angle)``, pixels, angle in degrees, counter-clockwise positive
on screen (image y axis down).
"""

import torch

from ._op_args import check_boxes, geometry_dtype

__all__ = ["diff_iou_rotated", "diff_enclosing_area_rotated"]

# Tolerance of the inside tests, in units of the dtype's epsilon times the magnitude of the terms
# that make up the tested coordinate (a bound of its rounding error, with a margin).
_TOL_EPS = 8.0
# Crossings of an edge with a line are skipped when the edge's extent across the line is at most
# this many epsilons of its length (a relative angle under ~1e-8 rad in float32): closer to
# parallel, the crossing's position along the line (and its gradient) is mostly rounding noise.
_PARALLEL_EPS = 1.0 / 16


def _check_pair(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.dtype:
    check_boxes(boxes1, "boxes1")
    check_boxes(boxes2, "boxes2")
    if boxes1.device != boxes2.device:
        raise ValueError(
            f"boxes1 and boxes2 must be on the same device, got {boxes1.device} and {boxes2.device}"
        )
    if boxes1.shape[0] != boxes2.shape[0]:
        raise ValueError(
            "boxes1 and boxes2 must hold as many boxes (aligned pairs), got "
            f"{boxes1.shape[0]} and {boxes2.shape[0]}"
        )
    return geometry_dtype(boxes1.dtype, boxes2.dtype)


def _sincos_deg(deg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """sin and cos of angles in degrees; multiples of 90 degrees give exact 0 and +-1.

    The angle is reduced to ``q * 90 + rem`` with ``|rem| <= 45`` (as the compiled op does), so
    axis-aligned boxes have exactly axis-aligned sides. Differentiable in ``deg``.
    """
    r = torch.fmod(deg, 360.0)
    q = torch.round(r / 90.0).detach()
    rem = torch.deg2rad(r - q * 90.0)
    s, c = torch.sin(rem), torch.cos(rem)
    quadrant = torch.remainder(q, 4.0)
    q1, q2, q3 = quadrant == 1.0, quadrant == 2.0, quadrant == 3.0
    sin = torch.where(q1, c, torch.where(q2, -s, torch.where(q3, -c, s)))
    cos = torch.where(q1, -s, torch.where(q2, -c, torch.where(q3, s, c)))
    return sin, cos


def _sanitize(
    boxes1: torch.Tensor, boxes2: torch.Tensor, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Casts to ``dtype`` and replaces pairs with a non-finite value or a negative side by a
    harmless unit-box pair, so that no NaN reaches the backward. Returns the boxes and the
    ``[N]`` mask of the pairs kept."""
    b1, b2 = boxes1.to(dtype), boxes2.to(dtype)
    ok1 = torch.isfinite(b1).all(1) & (b1[:, 2] >= 0) & (b1[:, 3] >= 0)
    ok2 = torch.isfinite(b2).all(1) & (b2[:, 2] >= 0) & (b2[:, 3] >= 0)
    valid = ok1 & ok2
    unit = torch.zeros_like(b1[:1])
    unit[:, 2:4] = 1.0
    b1 = torch.where(valid[:, None], b1, unit)
    b2 = torch.where(valid[:, None], b2, unit)
    return b1, b2, valid


class _PairFrame:
    """Both boxes of each pair in box 2's frame (x along box 2's w-axis, y along its h-axis).

    Attributes (``[N]`` or ``[N, 4]`` tensors; corners in order around each box):
        x1, y1: ``[N, 4]`` corners of box 1.
        x2, y2: ``[N, 4]`` corners of box 2, ``(+-w2/2, +-h2/2)``.
        cx1, cy1: ``[N]`` centre of box 1.
        cos_r, sin_r: ``[N]`` cos and sin of the angle of box 1 relative to box 2: box 1's w-axis
            is ``(cos_r, -sin_r)`` and its h-axis ``(sin_r, cos_r)``.
        tol_x1, tol_y1: ``[N]`` (detached) rounding tolerance of box 1's corner coordinates:
            ``_TOL_EPS`` epsilons of the magnitudes that enter them.
        tol_u2, tol_v2: ``[N]`` the same for box 2's corners measured along box 1's axes.
    """

    def __init__(self, b1: torch.Tensor, b2: torch.Tensor) -> None:
        s2, c2 = _sincos_deg(b2[:, 4])
        sr, cr = _sincos_deg(b1[:, 4] - b2[:, 4])
        dx, dy = b1[:, 0] - b2[:, 0], b1[:, 1] - b2[:, 1]
        # Projections of the centre offset on box 2's w-axis (c, -s) and h-axis (s, c).
        self.cx1 = dx * c2 - dy * s2
        self.cy1 = dx * s2 + dy * c2
        self.cos_r, self.sin_r = cr, sr
        hw1, hh1 = 0.5 * b1[:, 2], 0.5 * b1[:, 3]
        ux, uy = hw1 * cr, -hw1 * sr  # half w-side of box 1
        vx, vy = hh1 * sr, hh1 * cr  # half h-side
        self.x1 = torch.stack([ux + vx, vx - ux, -ux - vx, ux - vx], 1) + self.cx1[:, None]
        self.y1 = torch.stack([uy + vy, vy - uy, -uy - vy, uy - vy], 1) + self.cy1[:, None]
        hw2, hh2 = 0.5 * b2[:, 2], 0.5 * b2[:, 3]
        self.x2 = torch.stack([hw2, -hw2, -hw2, hw2], 1)
        self.y2 = torch.stack([hh2, hh2, -hh2, -hh2], 1)
        with torch.no_grad():
            eps = torch.finfo(b1.dtype).eps * _TOL_EPS
            offset = dx.abs() + dy.abs()
            self.tol_x1 = eps * (offset + ux.abs() + vx.abs() + hw2)
            self.tol_y1 = eps * (offset + uy.abs() + vy.abs() + hh2)
            ac, as_ = cr.abs(), sr.abs()
            self.tol_u2 = eps * (offset + hw2 * ac + hh2 * as_ + hw1)
            self.tol_v2 = eps * (offset + hw2 * as_ + hh2 * ac + hh1)


def _intersection_area(b1: torch.Tensor, b2: torch.Tensor) -> torch.Tensor:
    """``[N]`` area of the intersection of aligned pairs of (sanitized) boxes, pixels**2."""
    f = _PairFrame(b1, b2)
    eps = torch.finfo(b1.dtype).eps
    hw1, hh1 = 0.5 * b1[:, 2:3], 0.5 * b1[:, 3:4]  # [N, 1]
    hw2, hh2 = 0.5 * b2[:, 2:3], 0.5 * b2[:, 3:4]

    # 1. Corners of box 1 inside box 2 (<= with the rounding tolerance of their coordinates).
    in2 = (f.x1.abs() <= hw2 + f.tol_x1[:, None]) & (f.y1.abs() <= hh2 + f.tol_y1[:, None])
    # 2. Corners of box 2 inside box 1 (coordinates along box 1's axes).
    with torch.no_grad():
        rx, ry = f.x2 - f.cx1[:, None], f.y2 - f.cy1[:, None]
        cr, sr = f.cos_r[:, None], f.sin_r[:, None]
        in1 = ((rx * cr - ry * sr).abs() <= hw1 + f.tol_u2[:, None]) & (
            (rx * sr + ry * cr).abs() <= hh1 + f.tol_v2[:, None]
        )

    # 3. Edge k of box 1 (corner k -> corner k+1) crossing box 2's side lines x = +-w2/2 and
    # y = +-h2/2, where the crossing lies on both segments. Edges within ~1e-8 rad (float32) of
    # parallel to a line are skipped: the corner at the edge's end, within the tolerance of the
    # line, stands in for the crossing.
    ex = torch.roll(f.x1, -1, dims=1) - f.x1  # [N, 4]
    ey = torch.roll(f.y1, -1, dims=1) - f.y1
    with torch.no_grad():
        parallel_tol = (eps * _PARALLEL_EPS) * (ex.abs() + ey.abs())

    def crossings(
        start: torch.Tensor,
        d: torch.Tensor,
        start_o: torch.Tensor,
        d_o: torch.Tensor,
        half: torch.Tensor,
        limit_o: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # Crossings of the edges (start + t d, start_o + t d_o) with the lines at +-half along
        # the first coordinate: positions along the line (other coordinate) and validity, [N, 8].
        ok = d.detach().abs() > parallel_tol
        d_safe = torch.where(ok, d, torch.ones_like(d))
        lines = torch.cat([half.expand_as(start), -half.expand_as(start)], 1)  # [N, 8]
        t = (lines - start.repeat(1, 2)) / d_safe.repeat(1, 2)
        other = start_o.repeat(1, 2) + t * d_o.repeat(1, 2)
        with torch.no_grad():
            t_tol = eps * _TOL_EPS
            ok = ok.repeat(1, 2) & (t >= -t_tol) & (t <= 1 + t_tol) & (other.abs() <= limit_o)
        return lines, other, ok

    lx, oy, ok_x = crossings(f.x1, ex, f.y1, ey, hw2, hh2 + f.tol_y1[:, None])
    ly, ox, ok_y = crossings(f.y1, ey, f.x1, ex, hh2, hw2 + f.tol_x1[:, None])

    xs = torch.cat([f.x1, f.x2, lx, ox], 1)  # [N, 24]
    ys = torch.cat([f.y1, f.y2, oy, ly], 1)
    valid = torch.cat([in2, in1, ok_x, ok_y], 1)

    # Order the valid points by angle around their mean (detached: the order is a permutation).
    with torch.no_grad():
        weight = valid.to(xs.dtype)
        count = weight.sum(1, keepdim=True).clamp(min=1)
        mx = (xs * weight).sum(1, keepdim=True) / count
        my = (ys * weight).sum(1, keepdim=True) / count
        px, py = xs - mx, ys - my
        # Pseudo-angle, increasing with atan2(py, px), in [-1, 3): cheaper than atan2.
        ratio = py / (px.abs() + py.abs()).clamp(min=torch.finfo(xs.dtype).tiny)
        key = torch.where(px >= 0, ratio, 2.0 - ratio)
        key = torch.where(valid, key, 10.0)
        key, order = torch.sort(key, dim=1)
        ordered_valid = key < 5.0
    # Shoelace over the ordered points, relative to the mean; the invalid slots (last) repeat
    # the first point and add nothing.
    ox_ = torch.gather(xs - mx, 1, order)
    oy_ = torch.gather(ys - my, 1, order)
    ox_ = torch.where(ordered_valid, ox_, ox_[:, :1])
    oy_ = torch.where(ordered_valid, oy_, oy_[:, :1])
    twice = (ox_ * torch.roll(oy_, -1, dims=1) - oy_ * torch.roll(ox_, -1, dims=1)).sum(1)
    return 0.5 * twice.abs()


def diff_iou_rotated(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """IoU of aligned pairs of rotated boxes, differentiable in both inputs.

    Args:
        boxes1: ``[N, 5]`` boxes ``(cx, cy, w, h, angle)``: pixels, angle in degrees,
            counter-clockwise positive on screen; float16, bfloat16, float32 or float64.
        boxes2: ``[N, 5]`` boxes on the same device, compared with ``boxes1`` row by row.

    Returns:
        ``[N]`` IoU in [0, 1], in float64 when either input is float64, else float32. Equals
        ``box_iou_rotated(boxes1, boxes2, aligned=True)`` up to rounding: within 1e-5 in
        float32 (typically 3e-7; the tests include thin boxes turned by a few ulps), 1e-12 in
        float64.
        Pairs with a non-finite value or a negative side have IoU 0 and zero gradient, as in
        ``box_iou_rotated``; a box with a side of exactly 0 has IoU 0 up to rounding and keeps
        the gradient of the intersection (so that a degenerate prediction can still grow).

    The gradient is finite everywhere, including identical, nested, edge-sharing, zero-area and
    far-apart (IoU 0, gradient 0) boxes. Where the IoU has a kink (identical boxes, touching
    edges, a corner on an edge) it depends on which of the coinciding vertices the rounding
    kept; away from those it is the exact derivative (``gradcheck`` in float64).

    Raises:
        ValueError: on wrong shapes, dtypes, devices or unequal numbers of boxes.
    """
    dtype = _check_pair(boxes1, boxes2)
    b1, b2, valid = _sanitize(boxes1, boxes2, dtype)
    inter = _intersection_area(b1, b2)
    area1, area2 = b1[:, 2] * b1[:, 3], b2[:, 2] * b2[:, 3]
    inter = torch.minimum(inter, torch.minimum(area1, area2))  # rounding can exceed by an ulp
    union = area1 + area2 - inter
    union_safe = torch.where(union > 0, union, torch.ones_like(union))
    iou = inter / union_safe
    return torch.where(valid, iou, torch.zeros_like(iou))


def diff_enclosing_area_rotated(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Area of the minimum-area rotated rectangle enclosing both boxes of each aligned pair.

    See the module docstring for the method and why the rectangle rather than the convex hull.

    Args:
        boxes1, boxes2: ``[N, 5]`` boxes ``(cx, cy, w, h, angle)`` (pixels, degrees), as in
            ``diff_iou_rotated``.

    Returns:
        ``[N]`` areas in pixels**2 (float64 when either input is float64, else float32),
        at least the area of the union of the two boxes. Pairs with a non-finite value or a
        negative side give 0 (zero gradient).

    Raises:
        ValueError: on wrong shapes, dtypes, devices or unequal numbers of boxes.
    """
    dtype = _check_pair(boxes1, boxes2)
    b1, b2, valid = _sanitize(boxes1, boxes2, dtype)
    f = _PairFrame(b1, b2)
    xs = torch.cat([f.x1, f.x2], 1)  # [N, 8]
    ys = torch.cat([f.y1, f.y2], 1)
    # Candidate directions (not normalised): box 2's x-axis, box 1's w-axis and the 16 bridges
    # from a corner of box 1 to a corner of box 2. A bridge between (nearly) coincident corners
    # has no direction: box 1's w-axis stands in for it.
    bx = (f.x1[:, :, None] - f.x2[:, None, :]).flatten(1)  # [N, 16]
    by = (f.y1[:, :, None] - f.y2[:, None, :]).flatten(1)
    with torch.no_grad():
        short = bx * bx + by * by <= ((f.tol_x1 + f.tol_y1) ** 2)[:, None]
    bx = torch.where(short, f.cos_r[:, None].expand_as(bx), bx)
    by = torch.where(short, -f.sin_r[:, None].expand_as(by), by)
    dx = torch.cat([torch.ones_like(f.cos_r)[:, None], f.cos_r[:, None], bx], 1)  # [N, 18]
    dy = torch.cat([torch.zeros_like(f.sin_r)[:, None], -f.sin_r[:, None], by], 1)
    # Projections of the 8 corners on each direction and on its normal, scaled by |d|: [N, 8, 18].
    along = xs[:, :, None] * dx[:, None, :] + ys[:, :, None] * dy[:, None, :]
    across = ys[:, :, None] * dx[:, None, :] - xs[:, :, None] * dy[:, None, :]
    extent_along = along.amax(1) - along.amin(1)
    extent_across = across.amax(1) - across.amin(1)
    area = (extent_along * extent_across / (dx * dx + dy * dy)).amin(1)
    return torch.where(valid, area, torch.zeros_like(area))

"""
Vectorized conversions between 4-point polygons, rotated boxes and horizontal boxes, and the
angle normalisations ("angle versions") used for training targets.

Box convention (fixed for the whole project)
--------------------------------------------
A rotated box is ``(cx, cy, w, h, angle)``: centre and side lengths in pixels, ``angle`` in
DEGREES, counter-clockwise positive as seen on screen, where the image x axis points right and the
y axis points DOWN (Detectron2's convention). In image coordinates the box's w-axis points along
``u = (cos a, -sin a)`` and its h-axis along ``v = (sin a, cos a)``; the four corners are
``(cx, cy) +- w/2 * u +- h/2 * v``. Examples:

- ``(50, 50, 20, 6, 0)``: horizontal, 20 px wide and 6 px tall; x in [40, 60], y in [47, 53].
- ``(50, 50, 20, 6, 90)``: the same box turned a quarter turn counter-clockwise on screen: the
  w-axis points straight up, ``u = (0, -1)``; the box covers x in [47, 53], y in [40, 60].
- ``(50, 50, 20, 6, 30)``: the long side rises to the right on screen (its right end is higher,
  i.e. has a smaller y, than its left end).

The same physical rectangle has many representations: ``(w, h, a)``, ``(w, h, a + 180)``,
``(h, w, a + 90)`` and ``(h, w, a - 90)`` all describe one rectangle.

Angle versions (``ANGLE_VERSIONS``)
-----------------------------------
``normalize_rbox_angles(boxes, version)`` picks one representation per rectangle. All three keep
the centre and the physical rectangle; they differ in which side is called ``w`` and the angle
range (ranges are half-open; every result satisfies them exactly, including the float rounding at
the ends):

``"le90"`` (long edge, 90):   ``w >= h`` and ``angle in [-90, 90)``.
    The angle is that of the long side.
    ``(0, 0, 6, 20, 0)`` (a tall box) -> ``(0, 0, 20, 6, -90)``;
    ``(0, 0, 20, 6, 100)`` -> ``(0, 0, 20, 6, -80)``;
    ``(0, 0, 20, 6, 90)`` -> ``(0, 0, 20, 6, -90)``;
    ``(0, 0, 20, 6, -190)`` -> ``(0, 0, 20, 6, -10)``.
``"le135"`` (long edge, 135): ``w >= h`` and ``angle in [-45, 135)``.
    ``(0, 0, 6, 20, 0)`` -> ``(0, 0, 20, 6, 90)``; ``(0, 0, 20, 6, -80)`` -> ``(0, 0, 20, 6, 100)``;
    ``(0, 0, 20, 6, -45)`` stays; ``(0, 0, 20, 6, 135)`` -> ``(0, 0, 20, 6, -45)``.
``"oc"`` (OpenCV):           ``angle in [-90, 0)``, no order between ``w`` and ``h``.
    This is OpenCV >= 4.5.1's ``cv2.minAreaRect`` convention (angle ``theta in (0, 90]``, clockwise
    on screen, the "width" side along ``(cos theta, sin theta)``) written in our counter-clockwise
    sign: ``angle = -theta``. ``w`` is the side whose direction, taken modulo 180 degrees, makes
    a clockwise angle in (0, 90] with the x axis. An axis-aligned box 20 wide and 6 tall is
    ``(cx, cy, 6, 20, -90)`` (cv2 >= 4.5.1 returns size (6, 20), angle 90);
    ``(0, 0, 20, 6, 30)`` -> ``(0, 0, 6, 20, -60)``; ``(0, 0, 20, 6, -30)`` stays.
    (OpenCV 5.x returns theta in [-90, 0) again, like OpenCV < 4.5.1: the same rectangles,
    described by the other side, e.g. size (6, 20), theta -80 where 4.5.1 gives (20, 6), 10;
    an axis-aligned box gets theta -90 with the same size as in 4.5.1. Our "oc" follows the
    4.5.1 definition whatever OpenCV is installed; the tests map cv2's output into it.)

A square (``w == h``) has two valid "le90"/"le135" representations 90 degrees apart; the
normalisations keep the one nearest to the input. ``canonical_rbox`` picks a unique one.

Polygon to rotated box
----------------------
``poly_to_rbox(polys)`` returns the minimum-area rectangle enclosing the 4 points of each polygon,
whatever their order: convex, self-intersecting ("bow tie"), with collinear or identical points.
One side of a minimum-area enclosing rectangle lies along an edge of the points' convex hull; every
hull edge of 4 points joins two of them, so the function measures the enclosing rectangle aligned
with each of the 6 point pairs and keeps the smallest (ties: the first pair in the order
(0,1), (0,2), (0,3), (1,2), (1,3), (2,3) whose area is within a relative 1e-9 (float64) or 1e-5
(float32) of the minimum, so the choice does not depend on rounding). Ties are common: every side
of an acute triangle, or two hull edges that see the same farthest point, give different minimal
rectangles of equal area; any of them is a correct answer, the rule makes the choice
deterministic. This is the only implementation: ``rotated_det.data`` converts label polygons
with it too.

``points_to_rbox`` does the same for sets of any number K of points (polygons clipped to an image
or a window, instance-segmentation outlines): up to 8 points it tries all K (K - 1) / 2 point
pairs, with the same tie rule. Above 8 points that K^3 work is too much, so it tries only hull
edges, found without building the hull (rotating calipers' candidates, K^2 work): seen from a hull
vertex, the other points lie in a cone of less than 180 degrees, whose counter-clockwise-most ray
is a hull edge, and every hull edge is that ray of one of its ends. So each point i with the point
j of its counter-clockwise-most ray is a candidate (an interior point adds a harmless one); the
tie rule picks the first candidate pair (i, j), i < j, in the order (0, 1), (0, 2), ... The
minimum is the same as over all pairs (to rounding); only when several different rectangles are
minimal (a regular polygon, points on a small integer grid) can the choice differ from trying all
pairs, which also looks at pairs inside the hull.
The choice of the pair (discrete, without gradients) is made by the compiled op
``rotated_det::min_area_rect_pair`` (``csrc/min_area_rect.h``: the same candidates, formulas and
tie rule, vectorised across sets; 8x faster than the torch formulation) where it has a kernel
(float32/float64, at most 64 points, CPU or CUDA), else by the torch formulation
``min_area_rect_pair_torch``, which ONNX export also uses (``StandardOpsMode``); the rectangle
is then computed from the pair's frame in torch, which autograd differentiates.
For a true rectangle it returns that rectangle to float precision. Collinear points give
``h == 0`` (a segment), identical points ``w == h == 0``. The result is normalised with
``version`` (default ``"le90"``: ``w >= h``, angle in [-90, 90)). Rows with NaN or infinite
coordinates give all-NaN rows (no error, no hang).

``rbox_to_poly(boxes)`` returns the corners in this order: ``(-w/2, -h/2), (+w/2, -h/2),
(+w/2, +h/2), (-w/2, +h/2)`` in the box's (u, v) frame; for angle 0 that is top-left, top-right,
bottom-right, bottom-left (clockwise on screen, DOTA's usual order).

All functions take a torch tensor (float32 or float64; integer input is converted to float32) or a
numpy array, with any number of leading dimensions, and return the same kind (numpy in, numpy out).
They use only tensor operations (no per-box Python loops, no branches on tensor values), so they
run on any device, trace with ``torch.jit.trace`` and export with ``torch.export`` (dynamic box
counts included). ``poly_to_rbox`` processes large inputs in blocks of 4096 polygons (faster on
CPU: the temporaries stay in cache and below torch's threading grain); under tracing, compiling
or exporting it records a single pass instead, valid for any count.
"""

import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import torch

__all__ = [
    "ANGLE_VERSIONS",
    "poly_to_rbox",
    "points_to_rbox",
    "rbox_to_poly",
    "rbox_to_hbox",
    "rbox_tensor_to_hbox",
    "hbox_to_rbox",
    "normalize_rbox_angles",
    "canonical_rbox",
    "rbox_corner_distance",
]

ANGLE_VERSIONS = ("le90", "le135", "oc")

# The 6 point pairs (i, j) whose directions are candidate sides of the minimum-area rectangle,
# each followed by the two other points (k, l).
_PAIRS = ((0, 1, 2, 3), (0, 2, 1, 3), (0, 3, 1, 2), (1, 2, 0, 3), (1, 3, 0, 2), (2, 3, 0, 1))
# Relative tolerance under which two candidate areas count as a tie (rounding noise of the dtype).
_TIE_TOL = {torch.float64: 1e-9, torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 1e-2}
# A point as its (x, y) coordinate tensors, each [N] (or [P, N]: one row per point pair).
_XY = Sequence[torch.Tensor]
# Polygons per block when poly_to_rbox splits a large input (temporaries stay in cache); sets of
# more than _ALL_PAIRS_MAX_K points work on [K, K, block] temporaries of about _CHUNK_KK elements.
_CHUNK = 4096
_CHUNK_KK = 32768
# Up to this many points all K (K - 1) / 2 point pairs are tried (K^3 work, fewer operations for
# small K); above, only hull-edge candidates (K^2 work).
_ALL_PAIRS_MAX_K = 8
# The compiled op takes sets of up to this many points (csrc/min_area_rect.h, kMaxPoints).
_COMPILED_MAX_K = 64


# A tensor or a numpy array: the conversions below return the kind they are given.
ArrayT = TypeVar("ArrayT", torch.Tensor, npt.NDArray[Any])


def _to_tensor(x: torch.Tensor | npt.NDArray[Any], last_dim: int, name: str) -> torch.Tensor:
    """``x`` as a float tensor (a numpy array shares its memory when it can). Checks the last
    dimension."""
    if isinstance(x, np.ndarray):
        # torch needs non-negative strides and (to avoid a warning) a writable array
        t = torch.from_numpy(np.require(x, requirements=["C", "W"]))
    elif isinstance(x, torch.Tensor):
        t = x
    else:
        raise TypeError(f"{name}: expected a torch.Tensor or numpy array, got {type(x).__name__}")
    if not torch.jit.is_tracing() and (t.dim() == 0 or t.shape[-1] != last_dim):
        raise ValueError(f"{name}: expected shape [..., {last_dim}], got {tuple(t.shape)}")
    if not t.is_floating_point():
        t = t.to(torch.float32)
    return t


def _back(t: torch.Tensor, like: ArrayT) -> ArrayT:
    """``t`` as the kind of ``like``: a numpy array when ``like`` is one, else ``t`` itself."""
    if isinstance(like, np.ndarray):
        return t.numpy()
    return t


def _wrap(angle: torch.Tensor, low: float, period: float) -> torch.Tensor:
    """
    Maps angles into [low, low + period). Angles already in range are returned bit-exact (so
    normalising twice changes nothing); the others are wrapped, with a guard for the remainder
    rounding up to ``period``.
    """
    high = low + period
    r = torch.remainder(angle - low, period) + low
    r = torch.where(r >= high, r - period, r)
    return torch.where((angle >= low) & (angle < high), angle, r)


def _check_version(version: str) -> None:
    if version not in ANGLE_VERSIONS:
        raise ValueError(f"angle version must be one of {ANGLE_VERSIONS}, got {version!r}")


def _normalize(boxes: torch.Tensor, version: str) -> torch.Tensor:
    cx, cy, w, h, a = boxes.unbind(-1)
    return torch.stack(_normalize_parts(cx, cy, w, h, a, version), dim=-1)


def _normalize_parts(
    cx: torch.Tensor,
    cy: torch.Tensor,
    w: torch.Tensor,
    h: torch.Tensor,
    a: torch.Tensor,
    version: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    if version == "oc":
        a = _wrap(a, -90.0, 180.0)
        swap = a >= 0
        # a in [0, 90) -> a - 90 in [-90, 0): describe the rectangle by its other side.
        a = torch.where(swap, a - 90.0, a)
    else:
        swap = w < h
        a = torch.where(swap, a + 90.0, a)
        a = _wrap(a, -90.0 if version == "le90" else -45.0, 180.0)
    w, h = torch.where(swap, h, w), torch.where(swap, w, h)
    return cx, cy, w, h, a


def normalize_rbox_angles(boxes: ArrayT, version: str = "le90") -> ArrayT:
    """
    Rewrite rotated boxes so that they meet the rules of an angle version (module docstring),
    keeping every physical rectangle.

    Args:
        boxes: [..., 5] (cx, cy, w, h, angle in degrees), tensor or numpy array.
        version: one of ``ANGLE_VERSIONS``: "le90", "le135" or "oc".

    Returns:
        [..., 5] new tensor/array of the same kind and dtype (the input is not modified).
    """
    _check_version(version)
    t = _to_tensor(boxes, 5, "normalize_rbox_angles")
    return _back(_normalize(t, version), boxes)


def canonical_rbox(boxes: ArrayT) -> ArrayT:
    """
    A unique representation of each physical rectangle, so that two rotated boxes describe the
    same rectangle iff their canonical forms are equal: "le90" (``w >= h``, angle in [-90, 90)),
    and for squares (``w == h`` exactly) angle in [-45, 45).

    The canonical form jumps where the angle crosses a range end, so compare boxes that went
    through float arithmetic with ``rbox_corner_distance`` instead of ``==`` on this.

    Args:
        boxes: [..., 5] tensor or numpy array.
    Returns:
        [..., 5] of the same kind.
    """
    t = _to_tensor(boxes, 5, "canonical_rbox")
    t = _normalize(t, "le90")
    cx, cy, w, h, a = t.unbind(-1)
    a = torch.where(w == h, _wrap(a, -45.0, 90.0), a)
    return _back(torch.stack([cx, cy, w, h, a], dim=-1), boxes)


def rbox_to_poly(boxes: ArrayT) -> ArrayT:
    """
    Corners of rotated boxes.

    Args:
        boxes: [..., 5] (cx, cy, w, h, angle in degrees), tensor or numpy array.
    Returns:
        [..., 8] (x1, y1, x2, y2, x3, y3, x4, y4): the corners at (-w/2, -h/2), (+w/2, -h/2),
        (+w/2, +h/2), (-w/2, +h/2) in the box frame (top-left, top-right, bottom-right,
        bottom-left when the angle is 0).
    """
    t = _to_tensor(boxes, 5, "rbox_to_poly")
    cx, cy, w, h, a = t.unbind(-1)
    rad = a * (math.pi / 180.0)
    c, s = torch.cos(rad), torch.sin(rad)
    # half-extent vectors: along u = (c, -s) and v = (s, c)
    ux, uy = 0.5 * w * c, -0.5 * w * s
    vx, vy = 0.5 * h * s, 0.5 * h * c
    poly = torch.stack(
        [
            cx - ux - vx,
            cy - uy - vy,
            cx + ux - vx,
            cy + uy - vy,
            cx + ux + vx,
            cy + uy + vy,
            cx - ux + vx,
            cy - uy + vy,
        ],
        dim=-1,
    )
    return _back(poly, boxes)


def rbox_to_hbox(boxes: ArrayT) -> ArrayT:
    """
    The smallest horizontal box enclosing each rotated box.

    Args:
        boxes: [..., 5] (cx, cy, w, h, angle in degrees), tensor or numpy array.
    Returns:
        [..., 4] (x0, y0, x1, y1) in pixels, same kind and dtype.
    """
    t = _to_tensor(boxes, 5, "rbox_to_hbox")
    return _back(rbox_tensor_to_hbox(t), boxes)


def rbox_tensor_to_hbox(boxes: torch.Tensor) -> torch.Tensor:
    """:func:`rbox_to_hbox` for a float tensor, without input conversion or checks, so that it
    compiles with ``torch.jit.script`` (``RotatedBoxes.inside_box`` calls it).

    Args:
        boxes: [..., 5] float tensor (cx, cy, w, h, angle in degrees).
    Returns:
        [..., 4] (x0, y0, x1, y1) in pixels, same dtype.
    """
    cx, cy, w, h = boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3]
    rad = boxes[..., 4] * (math.pi / 180.0)
    c, s = torch.cos(rad).abs(), torch.sin(rad).abs()
    half_w = 0.5 * (c * w + s * h)
    half_h = 0.5 * (s * w + c * h)
    return torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=-1)


def hbox_to_rbox(boxes: ArrayT) -> ArrayT:
    """
    Horizontal boxes as rotated boxes of angle 0 (the same rectangles): the inverse of
    :func:`rbox_to_hbox` for them (up to float rounding of the centre and sides).

    Args:
        boxes: [..., 4] (x0, y0, x1, y1) in pixels, tensor or numpy array.
    Returns:
        [..., 5] (cx, cy, w, h, 0), same kind and dtype. Not angle-normalised: a box taller than
        wide keeps ``h > w`` and angle 0 (``normalize_rbox_angles`` gives the "le90" form).
    """
    t = _to_tensor(boxes, 4, "hbox_to_rbox")
    x0, y0, x1, y1 = t.unbind(-1)
    out = torch.stack(
        [0.5 * (x0 + x1), 0.5 * (y0 + y1), x1 - x0, y1 - y0, torch.zeros_like(x0)], dim=-1
    )
    return _back(out, boxes)


def _reduce(
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], parts: Sequence[torch.Tensor]
) -> torch.Tensor:
    out = parts[0]
    for x in parts[1:]:
        out = fn(out, x)
    return out


def _pair_frame(pi: _XY, pj: _XY, *others: _XY) -> tuple[torch.Tensor, ...]:
    """
    The rectangle along the direction d = pj - pi enclosing pi, pj and ``others``, in pi's frame
    with unnormalised axes d and (-dy, dx): returns dx, dy, |d|^2 and the extents s_min, s_max
    (along d) and q_min, q_max (across), all scaled by |d|. Each argument is an (x, y) pair of
    [N] (or of [P, N]: one row per point pair); there are at least two other points.
    """
    dx, dy = pj[0] - pi[0], pj[1] - pi[1]
    nn = dx * dx
    nn.addcmul_(dy, dy)
    s_all: list[torch.Tensor] = []
    q_all: list[torch.Tensor] = []
    for px, py in others:
        rx, ry = px - pi[0], py - pi[1]
        s = rx * dx
        s.addcmul_(ry, dy)
        q = ry * dx
        q.addcmul_(rx, dy, value=-1)
        s_all.append(s)
        q_all.append(q)
    # pi projects to 0 on both axes, pj to (|d|^2, 0)
    s_max = torch.maximum(_reduce(torch.maximum, s_all), nn)
    s_min = _reduce(torch.minimum, s_all).clamp_(max=0)
    q_max = _reduce(torch.maximum, q_all).clamp_(min=0)
    q_min = _reduce(torch.minimum, q_all).clamp_(max=0)
    return dx, dy, nn, s_min, s_max, q_min, q_max


def _min_area_pair(
    flat: torch.Tensor, pairs: tuple[tuple[int, ...], ...], tol: float
) -> torch.Tensor:
    """
    [N] index (into ``pairs``) of the point pair whose direction gives the smallest enclosing
    rectangle of each [N, 2K] point set: the first pair whose area is within a relative ``tol``
    of the minimum. All pairs at once, as [P, N] rows (~20 elementwise ops for K=4).
    """
    rows = flat.T.contiguous()  # [2K, N]: x1, y1, ..., xK, yK
    xs, ys = rows[0::2].unbind(0), rows[1::2].unbind(0)
    # Per position q of (i, j, others...): [P, N] x and y of that point of each pair, so that
    # the pair frames are computed for all pairs at once (row stacks and plain subtractions, not
    # a 0/+-1 matrix product: BLAS threads cost more than they save).
    pts = [
        (torch.stack([xs[o[q]] for o in pairs]), torch.stack([ys[o[q]] for o in pairs]))
        for q in range(len(pairs[0]))
    ]
    _, _, nn, s_min, s_max, q_min, q_max = _pair_frame(*pts)
    s_ext = s_max.sub_(s_min)
    q_ext = q_max.sub_(q_min)
    # NaN (identical points: no direction; or NaN input) never wins
    area = s_ext.mul_(q_ext).div_(nn).nan_to_num_(nan=float("inf"))
    near_min = area <= area.amin(dim=0, keepdim=True) * (1.0 + tol)
    # index of the first near-minimal row (argmax over a short leading dim is slow on CPU)
    return (near_min.cumsum(dim=0) == 0).sum(dim=0)


def _point_pairs(k: int) -> tuple[tuple[int, ...], ...]:
    """The point pairs (i, j), i < j, of k points in the order (0, 1), (0, 2), ..., (k-2, k-1),
    each followed by the other points in increasing order."""
    if k == 4:
        return _PAIRS
    return tuple(
        (i, j, *[m for m in range(k) if m != i and m != j])
        for i in range(k)
        for j in range(i + 1, k)
    )


def _hull_pair(x: torch.Tensor, y: torch.Tensor, tol: float) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Point sets as [K, N] coordinates ``x``, ``y`` (K > 4, relative to their mean) -> two [N]
    long tensors ``i < j``: the candidate point pair whose direction gives the smallest enclosing
    rectangle, the first in the order (0, 1), (0, 2), ... whose area is within a relative ``tol``
    of the minimum.

    Candidates (rotating calipers' hull edges, without building the hull): each point i with the
    point j at the counter-clockwise-most ray of its view of the others. Seen from a hull vertex,
    the others lie in a cone of less than 180 degrees around the direction to their mean; its
    extreme rays are the two hull edges at that vertex, and every hull edge is the
    counter-clockwise-most ray of one of its two ends. Interior points add harmless candidates
    (any direction gives an enclosing rectangle). O(K^2) work per set, on [K, K, N] tensors whose
    last, contiguous dimension runs over the sets (so that every elementwise op is vectorised).
    """
    k = x.shape[0]
    # angle of p_j - p_i relative to r_i = -p_i (towards the mean), from dot and cross products
    nrm = x * x + y * y  # [K, N]
    dot = nrm[:, None] - (x[:, None] * x + y[:, None] * y)  # [K(i), K(j), N]: r_i . (p_j - p_i)
    crs = y[:, None] * x - x[:, None] * y  # r_i x (p_j - p_i)
    # a pseudo-angle increasing with atan2(crs, dot) on (-180, 180] degrees; NaN where p_j = p_i
    # or p_i is the mean (0 / 0, exactly: same products in the same order). The sign as a factor
    # +-1, not copysign (torch.export writes that as prims.signbit, which has no ONNX
    # translation; torch.where costs twice as much); crs == 0 (-0.0 too) gives 180 degrees.
    ang = (dot / (dot.abs() + crs.abs())).neg_().add_(1)  # 1 - dot / (|dot| + |crs|)
    ang.mul_((crs >= 0).to(ang.dtype).mul_(2).sub_(1))
    # (max(dim).indices: the first maximum, several times faster than argmax on CPU)
    j = ang.nan_to_num_(nan=-math.inf).max(dim=1).indices  # [K, N]
    i = torch.arange(k, device=x.device)[:, None].expand_as(j)
    dx, dy = x.gather(0, j) - x, y.gather(0, j) - y  # [K, N] candidate directions
    # extents of all points along each candidate direction d and across it, scaled by |d|
    s = x[:, None] * dx + y[:, None] * dy  # [K(point), K(candidate), N]
    q = y[:, None] * dx - x[:, None] * dy
    s_ext = s.amax(dim=0) - s.amin(dim=0)  # [K, N]
    q_ext = q.amax(dim=0) - q.amin(dim=0)
    area = (s_ext * q_ext / (dx * dx + dy * dy)).nan_to_num_(nan=math.inf)  # d = 0: never wins
    near_min = (area <= area.amin(dim=0) * (1.0 + tol)) & area.isfinite()
    key = torch.where(near_min, torch.minimum(i, j) * k + torch.maximum(i, j), k * k).amin(dim=0)
    key = torch.where(key == k * k, 1, key)  # no direction (all points equal, or NaN): (0, 1)
    return key // k, key % k


def _rect_from_frame(
    xi: torch.Tensor,
    yi: torch.Tensor,
    frame: tuple[torch.Tensor, ...],
    version: str,
) -> torch.Tensor:
    """[N, 5] rectangles in angle version ``version`` from :func:`_pair_frame`'s output for the
    chosen pairs, whose first point is (xi, yi)."""
    dx, dy, nn, s_min, s_max, q_min, q_max = frame
    ok = nn > 0  # False only when all points coincide (or NaN)
    # hypot rather than sqrt: sqrt's vectorised kernel spawns threads at 2048 elements, whose
    # barriers cost far more than they save on a busy CPU (ONNX has no hypot: StandardOpsMode
    # writes it as a square root for export)
    norm = torch.where(ok, torch.hypot(dx, dy), torch.ones_like(nn))
    ux = torch.where(ok, dx / norm, torch.ones_like(dx))
    uy = torch.where(ok, dy / norm, torch.zeros_like(dy))
    sc = (s_max + s_min) / (2 * norm)
    qc = (q_max + q_min) / (2 * norm)
    # the h-axis of our convention is v = (-uy, ux) for the w-axis u
    cx = xi + sc * ux - qc * uy
    cy = yi + sc * uy + qc * ux
    angle = torch.atan2(-uy, ux) * (180.0 / math.pi)
    w, h = (s_max - s_min) / norm, (q_max - q_min) / norm
    # Every point enters the extents, so a NaN/inf coordinate always makes cx, cy, w or h
    # non-finite; make the whole row NaN (cheaper than checking the inputs).
    nan_if_bad = torch.where(torch.isfinite(cx + cy + w + h), 0.0, float("nan"))
    parts = _normalize_parts(cx, cy, w, h, angle, version)
    return torch.stack([v + nan_if_bad for v in parts], dim=-1)


def min_area_rect_pair_torch(points: torch.Tensor, tol: float) -> torch.Tensor:
    """
    The torch formulation of the compiled op ``rotated_det::min_area_rect_pair`` (same candidates
    and tie rule: module docstring and ``csrc/min_area_rect.h``), for devices and dtypes the op
    lacks and for ONNX export (``StandardOpsMode`` calls it in the op's place).

    Args:
        points: [N, K, 2] point sets, K >= 4.
        tol: relative tolerance under which two candidate areas count as a tie.

    Returns:
        int64 [N, 2]: the pair (i, j), i < j, of points whose direction is a side of the set's
        minimum-area enclosing rectangle.
    """
    k = points.shape[-2]
    flat = points.reshape(-1, 2 * k)
    if k <= _ALL_PAIRS_MAX_K:
        pairs = _point_pairs(k)
        best = _min_area_pair(flat, pairs, tol)
        table = torch.tensor([p[:2] for p in pairs], dtype=torch.long, device=points.device)
        return table[best]
    rows = flat.T  # [2K, N]
    x, y = rows[0::2], rows[1::2]
    mx, my = x.mean(dim=0), y.mean(dim=0)
    i, j = _hull_pair((x - mx).contiguous(), (y - my).contiguous(), tol)
    return torch.stack([i, j], dim=1)


def _has_compiled_pair_op(points: torch.Tensor) -> bool:
    """Whether ``rotated_det::min_area_rect_pair`` takes ``points`` (float32 or float64, at most
    64 points, a kernel for their device)."""
    if points.dtype not in (torch.float32, torch.float64) or points.shape[-2] > _COMPILED_MAX_K:
        return False
    # (imported here: the ops library lives in rotated_det.layers, which imports this module;
    # without it, the torch formulation runs)
    try:
        from rotated_det.layers.ops_library import has_kernel
    except ImportError:
        return False
    return has_kernel("min_area_rect_pair", points.device)


def _side_pair(points: torch.Tensor) -> torch.Tensor:
    """[N, K, 2] point sets (K >= 4) -> int64 [N, 2] pair (i, j) giving the direction of a side
    of each minimum-area rectangle: the compiled op where it has a kernel, else its torch
    formulation."""
    tol = _TIE_TOL.get(points.dtype, 1e-5)
    if _has_compiled_pair_op(points):
        pair: torch.Tensor = torch.ops.rotated_det.min_area_rect_pair(points.contiguous(), tol)
        return pair
    return min_area_rect_pair_torch(points, tol)


def _min_area_rbox_block(flat: torch.Tensor, version: str) -> torch.Tensor:
    """[N, 2K] point sets (K >= 4) -> [N, 5] minimum-area rectangles in angle version
    ``version``: the pair of points giving the direction of a side is chosen without gradients (a
    discrete choice), then the rectangle is computed from the points (gradients flow through
    this)."""
    k = flat.shape[-1] // 2
    with torch.no_grad():
        pair = _side_pair(flat.view(-1, k, 2))
    rows = flat.T  # [2K, N]
    x, y = rows[0::2], rows[1::2]
    # the pair's frame, all K points at once: origin p_i, axes d = p_j - p_i and (-dy, dx)
    xi, yi = x.gather(0, pair[None, :, 0])[0], y.gather(0, pair[None, :, 0])[0]
    dx = x.gather(0, pair[None, :, 1])[0] - xi
    dy = y.gather(0, pair[None, :, 1])[0] - yi
    rx, ry = x - xi, y - yi  # [K, N]
    s = rx * dx + ry * dy
    q = ry * dx - rx * dy
    nn = dx * dx + dy * dy
    frame = (dx, dy, nn, s.amin(dim=0), s.amax(dim=0), q.amin(dim=0), q.amax(dim=0))
    return _rect_from_frame(xi, yi, frame, version)


def _building_graph() -> bool:
    """True under torch.jit.trace, torch.compile and torch.export: no shape-dependent branches."""
    exporting = getattr(torch.compiler, "is_exporting", lambda: False)()
    return torch.jit.is_tracing() or torch.compiler.is_compiling() or exporting


def _min_area_rbox(t: torch.Tensor, version: str) -> torch.Tensor:
    """[..., K, 2] float tensor (K >= 4) -> [..., 5] minimum-area rectangles."""
    lead, k = t.shape[:-2], t.shape[-2]
    flat = t.reshape(-1, 2 * k)
    if _building_graph():  # traced/compiled graphs take a single pass, valid for any count
        return _min_area_rbox_block(flat, version).reshape(*lead, 5)
    if k <= _ALL_PAIRS_MAX_K or _has_compiled_pair_op(t):
        chunk = _CHUNK
    else:  # the torch formulation's [K, K, chunk] temporaries
        chunk = max(16, _CHUNK_KK // (k * k))
    if flat.shape[0] > chunk:
        # cache-sized blocks: several times faster on CPU than one pass over huge temporaries
        # (a loop over blocks, not boxes)
        out = torch.cat([_min_area_rbox_block(block, version) for block in flat.split(chunk)])
    else:
        out = _min_area_rbox_block(flat, version)
    return out.reshape(*lead, 5)


def poly_to_rbox(polys: ArrayT, version: str = "le90") -> ArrayT:
    """
    Minimum-area rotated rectangle enclosing each 4-point polygon (see the module docstring).

    Args:
        polys: [..., 8] (x1, y1, ..., x4, y4) in pixels, tensor or numpy array. The points may
            come in any order; self-intersecting and degenerate (collinear, identical) point sets
            are fine.
        version: angle version of the result, one of ``ANGLE_VERSIONS``; default "le90"
            (``w >= h``, angle in [-90, 90)).

    Returns:
        [..., 5] (cx, cy, w, h, angle in degrees), same kind and dtype as ``polys``.
    """
    _check_version(version)
    t = _to_tensor(polys, 8, "poly_to_rbox")
    return _back(_min_area_rbox(t.unflatten(-1, (4, 2)), version), polys)


def points_to_rbox(points: ArrayT, version: str = "le90") -> ArrayT:
    """
    Minimum-area rotated rectangle enclosing each set of K points: :func:`poly_to_rbox` for any
    K >= 1 (e.g. polygons clipped to an image or a window, padded by repeating a vertex). Up to
    8 points the candidate sides are all point pairs (fewer than 4 points are padded by repeating
    the last; 4 points: :func:`poly_to_rbox`); above, hull edges found in O(K^2) per set (module
    docstring). The tie rule of :func:`poly_to_rbox` picks among them; repeated points change
    nothing.

    Args:
        points: [..., K, 2] (x, y) in pixels, tensor or numpy array.
        version: angle version of the result, one of ``ANGLE_VERSIONS``.

    Returns:
        [..., 5] (cx, cy, w, h, angle in degrees), same kind and dtype as ``points``.
    """
    _check_version(version)
    t = _to_tensor(points, 2, "points_to_rbox")
    if not torch.jit.is_tracing() and (t.dim() < 2 or t.shape[-2] == 0):
        raise ValueError(
            f"points_to_rbox: expected shape [..., K, 2] with K >= 1, got {tuple(t.shape)}"
        )
    if t.shape[-2] < 4:  # repeat the last point: the 4-point code needs two points besides a pair
        t = torch.cat([t, t[..., -1:, :].expand(*t.shape[:-2], 4 - t.shape[-2], 2)], dim=-2)
    return _back(_min_area_rbox(t, version), points)


def rbox_corner_distance(boxes1: ArrayT, boxes2: torch.Tensor | npt.NDArray[Any]) -> ArrayT:
    """
    How far apart two rotated boxes are as physical rectangles, whatever their representation:
    the largest distance from a corner of one box to the nearest corner of the other (the
    Hausdorff distance between the two corner sets). 0 iff both describe the same rectangle.

    Args:
        boxes1, boxes2: [..., 5], broadcastable, tensor or numpy array.
    Returns:
        [...] distances in pixels, same kind.
    """
    t1 = _to_tensor(boxes1, 5, "rbox_corner_distance")
    t2 = _to_tensor(boxes2, 5, "rbox_corner_distance")
    c1 = rbox_to_poly(t1).unflatten(-1, (4, 2))
    c2 = rbox_to_poly(t2).unflatten(-1, (4, 2))
    d = torch.linalg.vector_norm(c1[..., :, None, :] - c2[..., None, :, :], dim=-1)  # [..., 4, 4]
    out = torch.maximum(d.amin(dim=-1).amax(dim=-1), d.amin(dim=-2).amax(dim=-1))
    return _back(out, boxes1)

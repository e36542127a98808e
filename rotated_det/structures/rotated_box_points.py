"""
Points and rotated boxes: a point's offset from a box centre in the box's own frame, and whether
the point lies inside the box.

A rotated box ``(cx, cy, w, h, a)`` (pixels, ``a`` in degrees counter-clockwise on screen, image
y axis down) has its w-axis along ``u = (cos a, -sin a)`` and its h-axis along
``v = (sin a, cos a)`` in image coordinates (see ``rotated_box_conversions``). A point ``p`` has
box-frame offsets

    ou = (p - c) . u,    ov = (p - c) . v

and lies inside the box when ``|ou| <= w / 2`` and ``|ov| <= h / 2``: points ON the border count
as inside (closed rectangle). Worked example: the box ``(50, 50, 20, 6, 90)`` covers x in
[47, 53], y in [40, 60] (``u = (0, -1)``, ``v = (1, 0)``); the point ``(52, 41)`` is at
``(2, -9)`` from the centre, so ``ou = 9`` and ``ov = 2``: inside. ``(53, 60)`` is a corner
(``ou = -10``, ``ov = 3``): inside. ``(54, 50)`` has ``ov = 4 > 3``: outside.

Borders are exact for angles that are multiples of 90 degrees (axis-aligned boxes, including
the ``-90`` of a tall box in ``le90``): cosine and sine are computed after reducing the angle to
[-45, 45] degrees, so they are exactly 0 and +-1 there and the offsets carry no rounding from
the rotation. For other angles a point within rounding distance of a side may land on either
side of it. A box with a NaN value or a negative side contains no point (nor does a NaN point
lie in any box); a box with a zero side contains the points of the segment (or the centre
point) it reduces to.
"""

import math

import torch

__all__ = ["cos_sin_degrees", "point_offsets_in_box_frame", "points_in_rotated_boxes"]


def cos_sin_degrees(angle: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine and sine of ``angle`` (degrees, any shape), exact (0, +-1) at multiples of 90
    degrees, where ``torch.cos(torch.deg2rad(angle))`` leaves a rounding residue (6e-17 in float64,
    -4e-8 in float32 at 90 degrees). NaN or infinite angles give NaN.

    The angle is written as ``90 * k + r`` with ``r`` in [-45, 45]; the functions of ``r`` are
    computed and rotated by the quarter turns ``k`` (a permutation and sign change).
    """
    k = torch.round(angle / 90.0)
    rad = (angle - 90.0 * k) * (math.pi / 180.0)
    c0, s0 = torch.cos(rad), torch.sin(rad)
    q = torch.remainder(k, 4.0)  # 0, 1, 2 or 3 (NaN for NaN/inf angles, then c0, s0 are NaN)
    # cos(r + 90 q), sin(r + 90 q) for q = 0, 1, 2, 3: (c, s), (-s, c), (-c, -s), (s, -c)
    cos = torch.where(q == 0, c0, torch.where(q == 1, -s0, torch.where(q == 2, -c0, s0)))
    sin = torch.where(q == 0, s0, torch.where(q == 1, c0, torch.where(q == 2, -s0, -c0)))
    return cos, sin


def _check(points: torch.Tensor, boxes: torch.Tensor, aligned: bool, name: str) -> None:
    if points.dim() != 2 or points.shape[1] != 2:
        raise ValueError(f"{name}: points must have shape [P, 2], got {tuple(points.shape)}")
    if boxes.dim() != 2 or boxes.shape[1] != 5:
        raise ValueError(f"{name}: boxes must have shape [G, 5], got {tuple(boxes.shape)}")
    if aligned and points.shape[0] != boxes.shape[0]:
        raise ValueError(
            f"{name}: aligned=True needs as many points as boxes, got {points.shape[0]} and "
            f"{boxes.shape[0]}"
        )
    if points.device != boxes.device:
        raise ValueError(
            f"{name}: points and boxes must be on the same device, got {points.device} and "
            f"{boxes.device}"
        )


def point_offsets_in_box_frame(
    points: torch.Tensor, boxes: torch.Tensor, aligned: bool = False
) -> torch.Tensor:
    """Offset of each point from each box centre, in the box's (w, h) frame.

    Args:
        points: [P, 2] (x, y) in pixels.
        boxes: [G, 5] (cx, cy, w, h, angle in degrees); floating point.
        aligned: if True, pair ``points[i]`` with ``boxes[i]`` only (P == G).

    Returns:
        [P, G, 2] (or [P, 2] when ``aligned``) ``(ou, ov)`` in pixels: the offset ``p - c``
        projected on the box's w-axis ``u = (cos a, -sin a)`` and h-axis ``v = (sin a, cos a)``,
        in the promoted dtype of the inputs. For ``a = 0``, ``ou`` grows to the right and ``ov``
        downwards (``ou = x - cx``, ``ov = y - cy``); for ``a = 90``, ``ou = cy - y`` (up) and
        ``ov = x - cx``.

    Raises:
        ValueError: on wrong shapes, or inputs on different devices.
    """
    _check(points, boxes, aligned, "point_offsets_in_box_frame")
    dtype = torch.promote_types(points.dtype, boxes.dtype)
    if not dtype.is_floating_point:
        dtype = torch.float32
    points, boxes = points.to(dtype), boxes.to(dtype)
    if not aligned:
        points = points[:, None, :]  # [P, 1, 2] against [G, 5]
    cos, sin = cos_sin_degrees(boxes[..., 4])
    dx = points[..., 0] - boxes[..., 0]
    dy = points[..., 1] - boxes[..., 1]
    return torch.stack([dx * cos - dy * sin, dx * sin + dy * cos], dim=-1)


def points_in_rotated_boxes(
    points: torch.Tensor, boxes: torch.Tensor, aligned: bool = False
) -> torch.Tensor:
    """Whether each point lies inside each rotated box, border included.

    Args:
        points: [P, 2] (x, y) in pixels.
        boxes: [G, 5] (cx, cy, w, h, angle in degrees).
        aligned: if True, test ``points[i]`` against ``boxes[i]`` only (P == G).

    Returns:
        [P, G] bool (or [P] when ``aligned``): ``|ou| <= w / 2`` and ``|ov| <= h / 2`` with the
        box-frame offsets of :func:`point_offsets_in_box_frame`. Points on a side or a corner
        are inside (exactly so for angles that are multiples of 90 degrees; see the module
        docstring). Boxes with a NaN value or a negative side contain nothing.

    Raises:
        ValueError: on wrong shapes, or inputs on different devices.
    """
    offsets = point_offsets_in_box_frame(points, boxes, aligned).abs()
    half = boxes[:, 2:4].to(offsets.dtype) / 2
    return (offsets <= half).all(dim=-1)

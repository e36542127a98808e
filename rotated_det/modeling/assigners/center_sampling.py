"""Rotated FCOS's target assignment: points inside rotated boxes, by FPN level and object size.

Box convention: ``(cx, cy, w, h, angle)``, pixels, angle in degrees counter-clockwise on screen
(image y axis down). The box's w-axis is ``u = (cos a, -sin a)`` and its h-axis
``v = (sin a, cos a)``; a point ``p`` has box-frame offsets ``ou = (p - c) . u`` and
``ov = (p - c) . v`` (``rotated_det.structures.point_offsets_in_box_frame``) and distances to
the four sides

    left = w / 2 + ou,   top = h / 2 + ov,   right = w / 2 - ou,   bottom = h / 2 - ov

"left" is the side at ``-w/2`` along u and "top" the side at ``-h/2`` along v: for angle 0 they
are the image's left and top sides. Worked example: the gt ``(100, 100, 40, 20, 90)`` (turned a
quarter turn counter-clockwise: its w-axis points up, ``u = (0, -1)``, ``v = (1, 0)``; it covers
x in [90, 110], y in [80, 120]). The point ``(104, 92)`` is at ``(4, -8)`` from the centre, so
``ou = 8`` (up) and ``ov = 4`` (right), and

    left = 28 (to the screen's bottom side, y = 120),  top = 14 (to its left side, x = 90),
    right = 12 (to its top side, y = 80),              bottom = 6 (to its right side, x = 110).

The regression targets themselves come from ``DistanceAnglePointCoder.encode`` (the box written
in the coder's angle version first); the assignment itself does not depend on the representation
(``(w, h, a)`` and ``(h, w, a +- 90)`` assign the same points).

MMRotate's rotated FCOS head computes the same with angles in radians, clockwise positive: their
angle is ``-radians(a)``.
"""

import math
from collections.abc import Sequence

import torch

from rotated_det.structures import cos_sin_degrees

from ._common import check_gt_boxes, run_chunks, window_runs

__all__ = [
    "FCOS_REGRESS_RANGES",
    "RotatedCenterSamplingAssigner",
    "per_point_strides_and_ranges",
]

# The candidate windows (enclosing horizontal boxes) are widened by this much (relative, and
# pixels) so that rounding never drops a point the exact test accepts.
_REL_SLACK = 1e-6
_ABS_SLACK = 1e-3
# MMRotate's (and FCOS's) object-size range of each of the 5 levels (strides 8 to 128): a point of
# level l may regress a box whose largest side distance lies in the range (pixels, ends included).
FCOS_REGRESS_RANGES = (
    (-1.0, 64.0),
    (64.0, 128.0),
    (128.0, 256.0),
    (256.0, 512.0),
    (512.0, math.inf),
)


def per_point_strides_and_ranges(
    num_points_per_level: Sequence[int],
    strides: Sequence[float],
    regress_ranges: Sequence[tuple[float, float]] = FCOS_REGRESS_RANGES,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each level's stride and regress range repeated for its points (levels concatenated).

    Args:
        num_points_per_level: number of points of each level, e.g. ``[128 * 128, 64 * 64, ...]``.
        strides: stride of each level in pixels.
        regress_ranges: ``(low, high)`` of each level in pixels.

    Returns:
        strides ``[P]`` and regress ranges ``[P, 2]`` (``P = sum(num_points_per_level)``).
    """
    n = len(num_points_per_level)
    if len(strides) != n or len(regress_ranges) != n:
        raise ValueError(
            f"per_point_strides_and_ranges: {n} levels of points but {len(strides)} strides and "
            f"{len(regress_ranges)} regress ranges"
        )
    counts = torch.tensor(list(num_points_per_level), device=device)
    point_strides = torch.tensor(list(strides), dtype=dtype, device=device)
    ranges = torch.tensor([list(r) for r in regress_ranges], dtype=dtype, device=device)
    return point_strides.repeat_interleave(counts), ranges.repeat_interleave(counts, dim=0)


class RotatedCenterSamplingAssigner:
    """Assigns points of all FPN levels to rotated ground-truth boxes, as Rotated FCOS does.

    A point is a candidate for a gt when all of these hold:

    1. it lies strictly inside the rotated gt box (``|ou| < w/2`` and ``|ov| < h/2``; a point on
       the border would get a zero distance target and a zero centerness, as in MMRotate);
    2. with ``center_sampling``: ``|ou| < r * s`` and ``|ov| < r * s`` for the point's stride
       ``s`` and ``r = center_sample_radius``: a square of side ``2 r s`` around the gt centre,
       aligned with the box (measured in the box frame), cut by the box itself;
    3. the largest of its four side distances, ``max(w/2 + |ou|, h/2 + |ov|)``, lies in its
       level's regress range ``[low, high]`` (both ends included).

    A point that is a candidate for several gts gets the one of smallest area ``w * h`` (among
    equal areas, the lowest index). Defaults follow MMRotate's DOTA configs
    (``center_sampling=True, center_sample_radius=1.5``; its head's own default is no center
    sampling).

    The work is proportional to the number of points in the gts' enclosing horizontal boxes (found
    as runs of a sorted order of the points), not to ``P * G``; the (point, gt) pairs are
    processed in chunks of at most ``max_pairs_per_chunk`` (plus one run's worth).

    Args:
        center_sampling: apply condition 2.
        center_sample_radius: ``r`` of condition 2, in strides.
        max_pairs_per_chunk: bounds the temporaries (about 100 bytes per pair).
    """

    def __init__(
        self,
        center_sampling: bool = True,
        center_sample_radius: float = 1.5,
        max_pairs_per_chunk: int = 2**21,
    ) -> None:
        if center_sample_radius <= 0:
            raise ValueError(f"center_sample_radius must be > 0, got {center_sample_radius}")
        if max_pairs_per_chunk < 1:
            raise ValueError(f"max_pairs_per_chunk must be >= 1, got {max_pairs_per_chunk}")
        self.center_sampling = center_sampling
        self.center_sample_radius = float(center_sample_radius)
        self.max_pairs_per_chunk = int(max_pairs_per_chunk)

    def __call__(
        self,
        points: torch.Tensor,
        strides: torch.Tensor,
        regress_ranges: torch.Tensor,
        gt_boxes: torch.Tensor,
    ) -> torch.Tensor:
        """
        Args:
            points: [P, 2] (x, y) in pixels, all levels concatenated.
            strides: [P] stride of each point's level, pixels.
            regress_ranges: [P, 2] ``(low, high)`` of each point's level, pixels (``high`` may be
                ``inf``); see :func:`per_point_strides_and_ranges`.
            gt_boxes: [G, 5] (cx, cy, w, h, angle in degrees), finite.

        Returns:
            assigned_gt: [P] int64, the index of each point's gt, -1 for background.

        Raises:
            ValueError: on wrong shapes, or a non-finite point or gt box (naming its index).
        """
        num_points = points.shape[0]
        if points.dim() != 2 or points.shape[1] != 2:
            raise ValueError(f"points must have shape [P, 2], got {tuple(points.shape)}")
        if strides.shape != (num_points,):
            raise ValueError(f"strides must have shape [{num_points}], got {tuple(strides.shape)}")
        if regress_ranges.shape != (num_points, 2):
            raise ValueError(
                f"regress_ranges must have shape [{num_points}, 2], got "
                f"{tuple(regress_ranges.shape)}"
            )
        check_gt_boxes(gt_boxes)
        if num_points and not bool(torch.isfinite(points).all()):
            i = int((~torch.isfinite(points).all(dim=1)).nonzero()[0, 0])
            raise ValueError(f"points[{i}] = {points[i].tolist()} is not finite")
        num_gt = gt_boxes.shape[0]
        assigned = torch.full((num_points,), -1, dtype=torch.long, device=points.device)
        if num_gt == 0 or num_points == 0:
            return assigned

        dtype = torch.promote_types(points.dtype, gt_boxes.dtype)
        points, gt = points.to(dtype), gt_boxes.to(dtype)
        cos, sin = cos_sin_degrees(gt[:, 4])
        half_w, half_h = gt[:, 2] / 2, gt[:, 3] / 2
        # half extents of the enclosing horizontal box
        ext_x = cos.abs() * half_w + sin.abs() * half_h
        ext_y = sin.abs() * half_w + cos.abs() * half_h
        # gts ranked by (area, index): the smallest rank among a point's candidates wins
        by_area = torch.argsort(gt[:, 2] * gt[:, 3], stable=True)
        rank = torch.empty_like(by_area)
        rank[by_area] = torch.arange(num_gt, device=by_area.device)
        per_gt = torch.stack([gt[:, 0], gt[:, 1], cos, sin, half_w, half_h], dim=1)

        # candidate pairs: the points in each gt's enclosing horizontal box (made a little larger
        # so that rounding never leaves out a point that the exact test below accepts)
        ext = torch.stack([ext_x, ext_y], dim=1) * (1 + _REL_SLACK) + _ABS_SLACK
        order, run_start, run_len, run_gt = window_runs(points, gt[:, :2] - ext, gt[:, :2] + ext)

        best_rank = torch.full((num_points,), num_gt, dtype=torch.long, device=points.device)
        radius = self.center_sample_radius * strides.to(dtype)
        for run, pos in run_chunks(run_len, self.max_pairs_per_chunk):
            # (index_select: faster than advanced indexing on the CPU)
            pt = order.index_select(0, run_start.index_select(0, run) + pos)
            gt_idx = run_gt.index_select(0, run)
            cx, cy, c, s, hw, hh = per_gt.index_select(0, gt_idx).unbind(1)
            px, py = points.index_select(0, pt).unbind(1)
            dx, dy = px - cx, py - cy
            ou = (dx * c - dy * s).abs()
            ov = (dx * s + dy * c).abs()
            ok = (ou < hw) & (ov < hh)
            if self.center_sampling:
                r = radius.index_select(0, pt)
                ok &= (ou < r) & (ov < r)
            max_dist = torch.maximum(hw + ou, hh + ov)
            low, high = regress_ranges.index_select(0, pt).to(dtype).unbind(1)
            ok &= (max_dist >= low) & (max_dist <= high)
            best_rank.scatter_reduce_(0, pt[ok], rank.index_select(0, gt_idx[ok]), reduce="amin")

        found = best_rank < num_gt
        return torch.where(found, by_area[best_rank.clamp(max=num_gt - 1)], assigned)

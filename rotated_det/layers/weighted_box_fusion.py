"""Weighted box fusion of rotated boxes: overlapping detections of one class are averaged into one
box instead of all but the best being dropped (as NMS does).

Clusters. Greedy class-wise rotated NMS at ``iou_threshold`` picks the cluster leaders (the boxes
NMS keeps); every other box joins the same-class leader it overlaps most (rotated IoU). Each box
NMS suppresses overlaps its suppressor by more than the threshold, so the clusters are NMS's
suppression groups, with a box that overlaps two leaders going to the closer one.

Fusion, with weights = scores. A rectangle has four names: ``(w, h, a)``, ``(w, h, a + 180)``
and ``(h, w, a +- 90)``. Each member is first renamed so that its w side is within 45 degrees of
its leader's (swapping w and h and turning the angle by 90 where needed); centres, widths and
heights are then score-weighted means, and the angle is the direction of the weighted mean of the
doubled-angle vectors ``(cos 2a, sin 2a)``, halved, which is blind to the 180-degree period.

Worked example: boxes ``(50, 50, 40, 10, 89)`` and ``(50, 50, 40, 10, -89)``, equal scores, are
the same rectangle turned by +-1 degree about the vertical. A plain mean of the angles gives 0
(a horizontal box); the doubled angles 178 and -178 degrees average to the vector (-1, 0), of
direction 180, halved: 90, i.e. -90 in ``[-90, 90)``: the fused box is ``(50, 50, 40, 10, -90)``.
A member written ``(50, 50, 10, 40, -1)`` (the first box again, renamed) is swapped back to
``(40, 10, 89)`` before averaging.

Score. The fused score is ``sum(scores) / max(n, num_views)`` for a cluster of ``n`` boxes:
the mean score when every view (e.g. every test-time augmentation) found the object once, and
lower, proportionally, when only some views found it.
"""

import torch

from .nms import batched_nms_rotated
from .rotated_boxes import box_iou_rotated

__all__ = ["weighted_box_fusion_rotated"]

# (box, leader) pairs whose IoU is computed at once: bounds the memory of a large input.
_PAIRS_PER_CHUNK = 1 << 20


def _wrap_half_turn(angle: torch.Tensor) -> torch.Tensor:
    """Angles (degrees) mapped into ``[-90, 90)`` (the 180-degree period of a rectangle)."""
    return torch.remainder(angle + 90.0, 180.0) - 90.0


def _assign_to_leaders(
    boxes: torch.Tensor, idxs: torch.Tensor, leaders: torch.Tensor
) -> torch.Tensor:
    """Index into ``leaders`` of the same-class leader each box overlaps most (the
    higher-scoring leader on a tie), ``[N]`` int64; leaders are assigned to themselves.

    Only the boxes NMS suppressed are placed, and only against candidate leaders: those of the
    box's class whose x centre is near enough for the bounding circles to meet (binary search
    in the leaders sorted by (class, x)), and whose circles do meet. A suppressed box overlaps
    its suppressor, so it always has a candidate.
    """
    n, k = boxes.shape[0], leaders.shape[0]
    device = boxes.device
    out = torch.full((n,), k, dtype=torch.int64, device=device)
    out[leaders] = torch.arange(k, device=device)
    queries = torch.nonzero(out == k).flatten()  # suppressed boxes: finite, same-class overlap
    if queries.numel() == 0:
        return out
    b = boxes.to(torch.float64)
    finite = torch.isfinite(b).all(dim=1)  # non-finite boxes are leaders of their own
    radius = torch.where(finite, 0.5 * torch.hypot(b[:, 2], b[:, 3]), torch.zeros_like(b[:, 0]))
    x = torch.where(finite, b[:, 0], torch.zeros_like(b[:, 0]))
    reach = radius + radius[leaders].max()
    # one key line: class c occupies [c * stride, c * stride + x range], with gaps wider than
    # any reach, so a search window never crosses into another class
    x = x - x.min()
    stride = float(x.max()) + 2.0 * float(reach.max()) + 1.0
    key = idxs.to(torch.float64) * stride + x
    lead_key = torch.where(finite[leaders], key[leaders], torch.full_like(key[leaders], torch.inf))
    lead_key, order = torch.sort(lead_key)
    lo = torch.searchsorted(lead_key, key[queries] - reach[queries], side="left")
    hi = torch.searchsorted(lead_key, key[queries] + reach[queries], side="right")
    counts = hi - lo
    ends = torch.cumsum(counts, 0)
    start, m = 0, queries.numel()
    while start < m:
        # the queries whose candidates fit in one chunk (at least one query)
        first = int(ends[start - 1]) if start else 0
        end = int(torch.searchsorted(ends, first + _PAIRS_PER_CHUNK, side="right"))
        end = min(m, max(end, start + 1))
        c = counts[start:end]
        row = torch.repeat_interleave(torch.arange(end - start, device=device), c)
        offset = torch.arange(row.numel(), device=device) - (torch.cumsum(c, 0) - c)[row]
        lead = order[lo[start:end][row] + offset]  # position in `leaders` (by decreasing score)
        box, other = queries[start:end][row], leaders[lead]
        # bounding circles must meet (cheaper than the IoU of the pairs that are far apart)
        gap = torch.hypot(b[box, 0] - b[other, 0], b[box, 1] - b[other, 1])
        near = gap < radius[box] + radius[other]
        row, lead, box, other = row[near], lead[near], box[near], other[near]
        iou = box_iou_rotated(b[box], b[other], aligned=True)
        best = torch.full((end - start,), -1.0, dtype=iou.dtype, device=device)
        best.scatter_reduce_(0, row, iou, reduce="amax")
        tie = torch.where(iou == best[row], lead, torch.full_like(lead, k))
        pick = torch.full((end - start,), k, dtype=torch.int64, device=device)
        pick.scatter_reduce_(0, row, tie, reduce="amin")
        out[queries[start:end]] = pick
        start = end
    if bool((out >= k).any()):  # cannot happen: NMS suppressed it, so it overlaps a leader
        raise RuntimeError("weighted_box_fusion_rotated: a suppressed box overlaps no leader")
    return out


def weighted_box_fusion_rotated(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    idxs: torch.Tensor,
    iou_threshold: float,
    num_views: int = 1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fuse overlapping rotated boxes of each category (see the module docstring).

    Args:
        boxes: ``[N, 5]`` float boxes ``(cx, cy, w, h, angle)``, pixels and degrees.
        scores: ``[N]`` float scores (>= 0; they are the fusion weights).
        idxs: ``[N]`` integer category of each box; boxes of different categories never fuse.
        iou_threshold: rotated IoU in ``[0, 1]`` above which a box joins a cluster (as NMS's).
        num_views: how many independent predictions (views, models) the boxes come from; a
            cluster's score is ``sum(scores) / max(cluster size, num_views)``.

    Returns:
        ``(boxes [K, 5], scores [K], idxs [K])``: one fused box per cluster, by decreasing fused
        score; angles in ``[-90, 90)``; boxes and scores in the input dtype.

    Raises:
        ValueError: on bad shapes, dtypes, devices or threshold (as :func:`batched_nms_rotated`),
            or ``num_views < 1``.
    """
    if num_views < 1:
        raise ValueError(f"num_views must be >= 1, got {num_views}")
    leaders = batched_nms_rotated(boxes, scores, idxs, iou_threshold)
    k = leaders.shape[0]
    if k == 0:
        return boxes[:0], scores[:0], idxs[:0]
    cluster = _assign_to_leaders(boxes, idxs, leaders)

    b = boxes.to(torch.float64)
    weight = scores.to(torch.float64)
    lead_angle = b[leaders, 4][cluster]
    # rename each member so that its w side is within 45 degrees of its leader's w side
    delta = _wrap_half_turn(b[:, 4] - lead_angle)
    swap = delta.abs() > 45.0
    delta = torch.where(swap, delta - torch.copysign(torch.full_like(delta, 90.0), delta), delta)
    w = torch.where(swap, b[:, 3], b[:, 2])
    h = torch.where(swap, b[:, 2], b[:, 3])
    doubled = torch.deg2rad(2.0 * (lead_angle + delta))
    per_box = torch.stack(
        [b[:, 0], b[:, 1], w, h, torch.cos(doubled), torch.sin(doubled), torch.ones_like(w)], 1
    )
    sums = torch.zeros(k, per_box.shape[1], dtype=torch.float64, device=boxes.device)
    sums.index_add_(0, cluster, per_box * weight[:, None])
    total = torch.zeros(k, dtype=torch.float64, device=boxes.device)
    total.index_add_(0, cluster, weight)
    count = torch.zeros(k, dtype=torch.float64, device=boxes.device)
    count.index_add_(0, cluster, torch.ones_like(weight))
    # a cluster whose scores are all 0 is averaged uniformly
    uniform = total <= 0
    if bool(uniform.any()):
        plain = torch.zeros_like(sums).index_add_(0, cluster, per_box)
        sums = torch.where(uniform[:, None], plain, sums)
    denom = torch.where(uniform, count, total)[:, None]
    mean = sums / denom
    angle = torch.rad2deg(torch.atan2(mean[:, 5], mean[:, 4])) / 2.0
    fused = torch.stack([mean[:, 0], mean[:, 1], mean[:, 2], mean[:, 3], _wrap_half_turn(angle)], 1)
    fused_scores = total / torch.clamp(count, min=float(num_views))
    order = torch.argsort(fused_scores, descending=True, stable=True)
    return (
        fused[order].to(boxes.dtype),
        fused_scores[order].to(scores.dtype),
        idxs[leaders][order],
    )

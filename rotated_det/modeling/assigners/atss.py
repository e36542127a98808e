"""ATSS (adaptive training sample selection, Zhang et al., CVPR 2020) for rotated boxes.

For each gt:

1. on each FPN level, the ``topk`` anchors whose centres are closest to the gt centre (Euclidean
   distance in pixels; all of a level's anchors when it has fewer) are the gt's candidates;
   among equidistant anchors the lower index comes first (MMRotate's ``torch.topk`` leaves that
   choice unspecified; it matters on grids, e.g. for a gt centred on a cell corner);
2. the IoU threshold is ``mean + std`` of the candidates' rotated IoUs with the gt (``std`` with
   Bessel's correction, as ``torch.std``; 0 when there is a single candidate);
3. candidates with IoU >= threshold whose centre lies inside the rotated gt box (border
   included: ``rotated_det.structures.points_in_rotated_boxes``) are positive for that gt.

An anchor positive for several gts goes to the one of highest IoU (among equal IoUs, the lowest
gt index). Anchors that no gt selects are background.

Worked example (a test in ``tests/modeling/test_assigners.py``): ``topk=3``, one level of four
10 x 10 anchors centred at x = 0, 10, 20, 30 (y = 0, angle 0) and the gt ``(9, 0, 20, 10, 0)``
(x in [-1, 19], y in [-5, 5]). The three closest centres are 10, 0 and 20 (distances 1, 9, 11);
their overlaps with the gt are 10, 6 and 4 px wide (times 10 px), so their IoUs are
100/200 = 1/2, 60/240 = 1/4 and 40/260 = 2/13; mean 0.3013, std 0.1787, threshold 0.4800. Only
the anchor at 10 reaches it, and its centre is inside the gt: it is positive, with IoU 0.5.

MMRotate (``ATSSObbAssigner``, configs ``rotated_atss_obb_*``, the le90 70.64 / le135 72.29
models) measures rotated IoUs between its anchors (angle 0) and the rotated gts, and tests the
anchor centres against the rotated gt polygon: the default here. Its ``rotated_atss_hbb_*``
config instead assigns against each gt's enclosing horizontal box (``assign_by_circumhbbox``):
IoUs and the inside test then use that box. Both are offered (``assign_by_circumhbbox``).
"""

import math
from collections.abc import Sequence

import torch

from rotated_det.layers import box_iou_rotated
from rotated_det.structures import points_in_rotated_boxes, rbox_to_hbox

from ._common import check_gt_boxes, run_chunks, window_runs

__all__ = ["RotatedATSSAssigner"]


class RotatedATSSAssigner:
    """ATSS on rotated IoU.

    Args:
        topk: candidates per level and gt (9 in the paper and MMRotate).
        assign_by_circumhbbox: assign against each gt's enclosing horizontal box instead of the
            gt itself (MMRotate's ``rotated_atss_hbb`` configs); the returned IoUs are then
            those with that box.
        max_pairs_per_chunk: bounds the temporaries of the exhaustive nearest-anchor search
            (below): at most this many (gt, anchor) distances at once (plus one gt's worth),
            about 24 bytes each.

    Neither the centre distances nor the rotated IoUs are computed for all ``G x A`` pairs: each
    gt looks for its nearest anchors in a window around its centre (exact; gts whose window
    holds too few anchors, e.g. centred far outside the image, search all of the level's
    anchors), and the IoU is measured for the ``G x K`` candidate pairs only (``K`` = ``topk``
    per level).
    """

    def __init__(
        self, topk: int = 9, assign_by_circumhbbox: bool = False, max_pairs_per_chunk: int = 2**22
    ) -> None:
        if topk < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        if max_pairs_per_chunk < 1:
            raise ValueError(f"max_pairs_per_chunk must be >= 1, got {max_pairs_per_chunk}")
        self.topk = int(topk)
        self.assign_by_circumhbbox = assign_by_circumhbbox
        self.max_pairs_per_chunk = int(max_pairs_per_chunk)

    def __call__(
        self, anchors: torch.Tensor, num_anchors_per_level: Sequence[int], gt_boxes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            anchors: [A, 5] (cx, cy, w, h, angle in degrees), pixels, all levels concatenated.
            num_anchors_per_level: number of anchors of each level, summing to ``A``; a level
                may have fewer than ``topk`` anchors (or none).
            gt_boxes: [G, 5] rotated gt boxes, finite, sides >= 0.

        Returns:
            assigned_gt: [A] int64, the index of each anchor's gt, -1 for background.
            max_iou: [A] the IoU of each anchor with its assigned gt (with its enclosing
                horizontal box when ``assign_by_circumhbbox``), 0 for background anchors
                (MMRotate leaves -1e8 there); dtype of the IoU op's result.

        Raises:
            ValueError: on wrong shapes, level counts that do not sum to ``A``, or a non-finite
                anchor or gt box (naming its index).
        """
        if anchors.dim() != 2 or anchors.shape[1] != 5:
            raise ValueError(f"anchors must have shape [A, 5], got {tuple(anchors.shape)}")
        counts = [int(n) for n in num_anchors_per_level]
        if sum(counts) != anchors.shape[0] or min(counts, default=0) < 0:
            raise ValueError(
                f"num_anchors_per_level {counts} must be >= 0 and sum to the number of anchors "
                f"{anchors.shape[0]}"
            )
        check_gt_boxes(gt_boxes)
        finite = torch.isfinite(anchors).all(dim=1)
        if anchors.shape[0] and not bool(finite.all()):
            i = int((~finite).nonzero()[0, 0])
            raise ValueError(f"anchors[{i}] = {anchors[i].tolist()} is not finite")
        num_anchors, num_gt = anchors.shape[0], gt_boxes.shape[0]
        device = anchors.device
        assigned = torch.full((num_anchors,), -1, dtype=torch.long, device=device)
        iou_dtype = torch.promote_types(anchors.dtype, gt_boxes.dtype)
        if num_gt == 0 or num_anchors == 0:
            return assigned, torch.zeros(num_anchors, dtype=iou_dtype, device=device)

        gts = gt_boxes
        if self.assign_by_circumhbbox:
            x0, y0, x1, y1 = rbox_to_hbox(gt_boxes).unbind(1)
            gts = torch.stack(
                [gt_boxes[:, 0], gt_boxes[:, 1], x1 - x0, y1 - y0, torch.zeros_like(x0)], dim=1
            )

        candidates = self._candidates(anchors[:, :2], counts, gts[:, :2])  # [G, K]
        k = candidates.shape[1]
        flat = candidates.reshape(-1)
        gt_of_pair = torch.arange(num_gt, device=device).repeat_interleave(k)
        ious = box_iou_rotated(anchors[flat], gts[gt_of_pair], aligned=True).view(num_gt, k)
        wide = ious.double()  # exact mean of equal values: no lost positive through rounding
        std = wide.std(dim=1) if k > 1 else torch.zeros_like(wide[:, 0])
        threshold = wide.mean(dim=1) + std
        inside = points_in_rotated_boxes(anchors[flat, :2], gts[gt_of_pair], aligned=True)
        positive = (wide >= threshold[:, None]).reshape(-1) & inside

        anchor_idx, gt_idx, pos_iou = (
            flat[positive],
            gt_of_pair[positive],
            ious.reshape(-1)[positive],
        )
        best = torch.full((num_anchors,), -1.0, dtype=ious.dtype, device=device)
        best.scatter_reduce_(0, anchor_idx, pos_iou, reduce="amax")
        top = pos_iou == best[anchor_idx]
        winner = torch.full((num_anchors,), num_gt, dtype=torch.long, device=device)
        winner.scatter_reduce_(0, anchor_idx[top], gt_idx[top], reduce="amin")
        assigned = torch.where(winner < num_gt, winner, assigned)
        return assigned, best.clamp(min=0)

    def _candidates(
        self, centres: torch.Tensor, counts: list[int], gt_centres: torch.Tensor
    ) -> torch.Tensor:
        """[G, K] indices of the anchors nearest to each gt centre: ``min(topk, n)`` per level
        of ``n`` anchors, levels in order."""
        dtype = torch.promote_types(centres.dtype, gt_centres.dtype)
        centres, gt_centres = centres.to(dtype), gt_centres.to(dtype)
        per_level = []
        start = 0
        for n in counts:
            if n > 0:
                k = min(self.topk, n)
                per_level.append(self._nearest(centres[start : start + n], gt_centres, k) + start)
            start += n
        return torch.cat(per_level, dim=1)

    def _nearest(self, points: torch.Tensor, queries: torch.Tensor, k: int) -> torch.Tensor:
        """[Q, k] indices of the ``k`` points [N, 2] nearest to each query [Q, 2] (k <= N),
        nearest first; among equidistant points the lower index first.

        Each query searches a square window of half-side ``r``, twice the radius that holds ``k``
        points on average (from the points' density over their bounding box). When the k-th
        nearest point found is within ``r``, no point outside the window (farther than ``r``)
        can be nearer: the answer is exact. Queries without that (few points near them) are
        answered from all points.
        """
        num_points, num_queries = points.shape[0], queries.shape[0]
        span = points.max(dim=0).values - points.min(dim=0).values
        r = 2 * torch.sqrt(k * span.prod() / (math.pi * num_points))
        order, run_start, run_len, run_query = window_runs(points, queries - r, queries + r)
        pairs = list(run_chunks(run_len, 2**62))
        run = torch.cat([p[0] for p in pairs]) if pairs else run_len[:0]
        pos = torch.cat([p[1] for p in pairs]) if pairs else run_len[:0]
        idx = order[run_start[run] + pos]
        query = run_query[run]
        d2 = _squared_distances(points[idx], queries[query])
        # order the pairs by (query, distance, point index): three stable sorts, last key first
        perm = torch.argsort(idx, stable=True)
        perm = perm[torch.argsort(d2[perm], stable=True)]
        perm = perm[torch.argsort(query[perm], stable=True)]
        idx, query, d2 = idx[perm], query[perm], d2[perm]
        found = torch.bincount(query, minlength=num_queries)
        rank = torch.arange(idx.shape[0], device=idx.device) - (found.cumsum(0) - found)[query]
        out = torch.full((num_queries, k), -1, dtype=torch.long, device=points.device)
        take = rank < k
        out[query[take], rank[take]] = idx[take]
        kth = torch.full((num_queries,), math.inf, dtype=d2.dtype, device=d2.device)
        last = rank == k - 1
        kth[query[last]] = d2[last]
        unsure = (kth > r * r).nonzero()[:, 0]
        rows = max(1, self.max_pairs_per_chunk // num_points)
        for q0 in range(0, unsure.shape[0], rows):
            q = unsure[q0 : q0 + rows]
            d2_all = _squared_distances(points[None, :, :], queries[q][:, None, :])  # [rows, N]
            out[q] = torch.argsort(d2_all, dim=1, stable=True)[:, :k]
        return out


def _squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``|a - b|^2`` over the last dimension (x, y), broadcast; one formula for every path so
    that equal distances compare equal."""
    dx = a[..., 0] - b[..., 0]
    dy = a[..., 1] - b[..., 1]
    return dx * dx + dy * dy

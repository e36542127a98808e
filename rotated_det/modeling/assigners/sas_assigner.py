"""SASM's shape-adaptive selection (Hou et al., "Shape-Adaptive Selection and Measurement for
Oriented Object Detection", AAAI 2022; MMRotate's ``SASAssigner``): ATSS's statistics on convex
hull IoU, with the threshold lowered for elongated objects.

For each object: on each level the ``topk`` point sets whose centroid (mean of the points) is
nearest to the object's centre are candidates; their hull IoUs with the object have mean m and
standard deviation s (unbiased); candidates of IoU >= (m + s) * exp(-r / 4), r = long side /
short side, whose centroid lies inside the object are positive; a point set positive for several
objects learns the one of highest IoU.

Worked example: candidates of IoU 0.2, 0.4, 0.6 (m = 0.4, s = 0.2): a square (r = 1) keeps
IoU >= 0.6 * exp(-0.25) = 0.467, i.e. 0.6 only; a 1:4 ship keeps IoU >= 0.6 * exp(-1) = 0.221:
0.4 and 0.6.

MMRotate takes one r for all objects of an image (their mean); here each object has its own, as
the paper describes.
"""

import torch

from rotated_det.layers import convex_overlaps

from ..point_sets import points_in_rboxes
from ._common import check_gt_boxes

__all__ = ["SASAssigner"]


class SASAssigner:
    """Shape-adaptive selection (module docstring).

    Args:
        topk: candidates per level and object (9 in MMRotate's SASM config).
    """

    def __init__(self, topk: int = 9) -> None:
        if topk < 1:
            raise ValueError(f"SASAssigner: topk must be >= 1, got {topk}")
        self.topk = int(topk)

    @torch.no_grad()
    def __call__(
        self,
        point_sets: torch.Tensor,
        num_points_per_level: list[int],
        gt_boxes: torch.Tensor,
    ) -> torch.Tensor:
        """
        Args:
            point_sets: ``[P, K, 2]`` the locations' initial point sets (x, y), pixels, all
                levels in order.
            num_points_per_level: locations of each level (they add up to P).
            gt_boxes: ``[G, 5]`` the image's objects (cx, cy, w, h, angle in degrees).

        Returns:
            ``[P]`` int64: the object each point set learns, -1 background.
        """
        check_gt_boxes(gt_boxes)
        if sum(num_points_per_level) != point_sets.shape[0]:
            raise ValueError(
                f"SASAssigner: num_points_per_level {list(num_points_per_level)} must add up to "
                f"the {point_sets.shape[0]} point sets"
            )
        num_sets, num_gt = point_sets.shape[0], gt_boxes.shape[0]
        device = point_sets.device
        assigned = torch.full((num_sets,), -1, dtype=torch.int64, device=device)
        if num_gt == 0 or num_sets == 0:
            return assigned
        point_sets, gt_boxes = point_sets.float(), gt_boxes.float()
        centroids = point_sets.mean(dim=1)  # [P, 2]
        dist = torch.cdist(centroids, gt_boxes[:, :2])  # [P, G]
        candidates = []
        start = 0
        for count in num_points_per_level:
            if count > 0:
                k = min(self.topk, count)
                idx = dist[start : start + count].topk(k, dim=0, largest=False).indices
                candidates.append(idx + start)
            start += count
        cand = torch.cat(candidates)  # [C, G]
        overlaps = convex_overlaps(point_sets, gt_boxes)  # [P, G]
        gt_range = torch.arange(num_gt, device=device)
        cand_iou = overlaps[cand, gt_range[None]]  # [C, G]
        threshold = cand_iou.mean(dim=0) + cand_iou.std(dim=0)
        sides = gt_boxes[:, 2:4].clamp(min=1e-6)
        ratio = sides.max(dim=1).values / sides.min(dim=1).values
        threshold = threshold * torch.exp(-ratio / 4)
        inside = points_in_rboxes(centroids[cand], gt_boxes[None].expand(cand.shape[0], -1, -1))
        positive = (cand_iou >= threshold[None]) & inside  # [C, G]
        score = torch.full((num_sets, num_gt), -1.0, device=device)
        gt_cols = gt_range[None].expand_as(cand)
        score[cand[positive], gt_cols[positive]] = cand_iou[positive]
        best, best_gt = score.max(dim=1)
        taken = best >= 0
        assigned[taken] = best_gt[taken]
        return assigned

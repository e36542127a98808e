"""The refine-stage candidates of a point-set detector's batch, as its second assignment step
(Oriented RepPoints' adaptive points assessment, CFA's convex-hull feature adaptation) sees them,
and the per-object, per-level ranking both use."""

from dataclasses import dataclass

import torch

__all__ = ["PointSetCandidates", "rank_within_groups"]


@dataclass
class PointSetCandidates:
    """F candidate point sets (positives of the refine assigner), all images of a batch.

    Attributes:
        image: ``[F]`` int64 image index of each candidate.
        gt_index: ``[F]`` int64 index of its object in its image's ground truth.
        level: ``[F]`` int64 FPN level of its location.
        gt_boxes: ``[F, 5]`` its object (cx, cy, w, h, angle in degrees).
        init_points, refine_points: ``[F, K, 2]`` its initial and refined points (x, y),
            pixels, detached.
        cls_cost: ``[F]`` its classification loss (focal loss summed over classes).
        image_gt_boxes: per image, all its objects ``[G_i, 5]``.
        point_features: ``[F, K, C]`` the FPN features at the refined points (when the
            selection asks for them, ``needs_point_features``), else None.
    """

    image: torch.Tensor
    gt_index: torch.Tensor
    level: torch.Tensor
    gt_boxes: torch.Tensor
    init_points: torch.Tensor
    refine_points: torch.Tensor
    cls_cost: torch.Tensor
    image_gt_boxes: list[torch.Tensor]
    point_features: torch.Tensor | None = None

    def object_ids(self) -> torch.Tensor:
        """``[F]`` int64 id of each candidate's object, unique across the batch."""
        sizes = torch.tensor(
            [0] + [b.shape[0] for b in self.image_gt_boxes[:-1]], device=self.image.device
        )
        return torch.cumsum(sizes, 0)[self.image] + self.gt_index


def rank_within_groups(groups: torch.Tensor, cost: torch.Tensor) -> torch.Tensor:
    """``[F]`` int64 rank (0 = lowest cost) of each element among those of its group (int64
    ``[F]``); ties keep the input order."""
    order = torch.argsort(cost, stable=True)
    order = order[torch.argsort(groups[order], stable=True)]
    sorted_groups = groups[order]
    position = torch.arange(groups.shape[0], device=groups.device)
    is_start = torch.ones_like(sorted_groups, dtype=torch.bool)
    is_start[1:] = sorted_groups[1:] != sorted_groups[:-1]
    segment_start = torch.cummax(torch.where(is_start, position, 0), dim=0).values
    rank = torch.empty_like(position)
    rank[order] = position - segment_start
    return rank

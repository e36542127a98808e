"""Oriented RepPoints' adaptive points assessment and assignment (APAA; Li et al., "Oriented
RepPoints for Aerial Object Detection", CVPR 2022): the refine assigner's candidates of each
object are scored by a quality cost and only the best of them stay positive.

Quality cost of a candidate point set (lower is better), with its classification loss
``Q_cls`` and, for the initial (i) and refined (r) points:

- localisation ``Q_loc``: the convex GIoU loss against the object;
- orientation ``Q_ori``: ``ori_weight x 0.05 x`` the symmetric Chamfer distance (pixels, mean of
  the nearest-neighbour distances both ways, halved) between points along the edges of the
  points' minimum-area rectangle and along the object's edges (10 per edge);
- point-wise correlation ``Q_poc``: ``poc_weight x`` the largest cosine distance between the
  feature at one refined point and the mean feature of the set.

``Q = Q_cls + init_weight (Q_loc,i + Q_ori,i) + (1 - init_weight) (Q_loc,r + Q_ori,r) + Q_poc``.

Selection: per object, on each level the ``candidates_per_level`` candidates of lowest Q; of
these, the ``ceil(top_ratio x n)`` lowest stay positive, the others become background.

Worked example (one object, one level, top_ratio 0.4): costs 0.9, 0.2, 0.5, 0.7, 0.3 (5
candidates, candidates_per_level 6): ceil(2.0) = 2 stay, those of costs 0.2 and 0.3.
"""

import math

import torch

from rotated_det.structures import points_to_rbox

from ..losses.convex_giou_loss import convex_giou_loss
from ..point_sets import rbox_edge_samples
from .point_set_candidates import PointSetCandidates, rank_within_groups

__all__ = ["AdaptivePointsAssignment", "chamfer_distance"]

CHAMFER_SCALE = 0.05  # MMRotate's distance_weight of its Chamfer distance
EDGE_SAMPLES = 10


def chamfer_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[N]`` symmetric Chamfer distance of point sets ``a`` ``[N, M, 2]`` and ``b``
    ``[N, M', 2]``: (mean over a of the distance to the nearest point of b + the same from b) / 2,
    in the points' unit."""
    d = torch.cdist(a, b)  # [N, M, M']
    return (d.min(dim=2).values.mean(dim=1) + d.min(dim=1).values.mean(dim=1)) / 2


class AdaptivePointsAssignment:
    """APAA (module docstring).

    Args:
        top_ratio: fraction of each object's selected candidates that stay positive (0.4).
        init_weight: weight of the initial points' quality against the refined ones' (0.2).
        ori_weight: weight of the orientation quality (0.3).
        poc_weight: weight of the point-wise correlation quality (0.1).
        candidates_per_level: candidates per object and level considered (6 in MMRotate).
    """

    needs_point_features = True

    def __init__(
        self,
        top_ratio: float = 0.4,
        init_weight: float = 0.2,
        ori_weight: float = 0.3,
        poc_weight: float = 0.1,
        candidates_per_level: int = 6,
    ) -> None:
        if not 0.0 < top_ratio <= 1.0:
            raise ValueError(
                f"AdaptivePointsAssignment: top_ratio must be in (0, 1], got {top_ratio}"
            )
        if not 0.0 <= init_weight <= 1.0:
            raise ValueError(
                f"AdaptivePointsAssignment: init_weight must be in [0, 1], got {init_weight}"
            )
        if candidates_per_level < 1:
            raise ValueError(
                "AdaptivePointsAssignment: candidates_per_level must be >= 1, got "
                f"{candidates_per_level}"
            )
        self.top_ratio = float(top_ratio)
        self.init_weight = float(init_weight)
        self.ori_weight = float(ori_weight)
        self.poc_weight = float(poc_weight)
        self.candidates_per_level = int(candidates_per_level)

    def quality_cost(self, c: PointSetCandidates) -> torch.Tensor:
        """``[F]`` the quality cost Q of each candidate (module docstring)."""
        gt_edges = rbox_edge_samples(c.gt_boxes, EDGE_SAMPLES)

        def stage_cost(points: torch.Tensor) -> torch.Tensor:
            loc = convex_giou_loss(points, c.gt_boxes)
            edges = rbox_edge_samples(points_to_rbox(points), EDGE_SAMPLES)
            ori = self.ori_weight * CHAMFER_SCALE * chamfer_distance(gt_edges, edges)
            return loc + ori

        cost = (
            c.cls_cost
            + self.init_weight * stage_cost(c.init_points)
            + (1 - self.init_weight) * stage_cost(c.refine_points)
        )
        if c.point_features is not None and self.poc_weight > 0:
            feats = c.point_features
            mean = feats.mean(dim=1, keepdim=True)
            cosine = torch.nn.functional.cosine_similarity(feats, mean.expand_as(feats), dim=2)
            cost = cost + self.poc_weight * (1 - cosine).max(dim=1).values
        return cost

    @torch.no_grad()
    def __call__(self, candidates: PointSetCandidates) -> torch.Tensor:
        """``[F]`` weight of each candidate: 1 stays positive, 0 becomes background."""
        num = candidates.image.shape[0]
        if num == 0:
            return candidates.cls_cost.new_zeros(0)
        cost = self.quality_cost(candidates)
        return self.select(cost, candidates.object_ids(), candidates.level)

    def select(
        self, cost: torch.Tensor, objects: torch.Tensor, level: torch.Tensor
    ) -> torch.Tensor:
        """``[F]`` 0/1 weights from the costs ``[F]``, object ids ``[F]`` and levels ``[F]``
        (the selection of the module docstring)."""
        num_levels = int(level.max()) + 1
        per_level = rank_within_groups(objects * num_levels + level, cost)
        considered = per_level < self.candidates_per_level
        rank = rank_within_groups(objects, torch.where(considered, cost, math.inf))
        count = torch.bincount(objects, weights=considered.float())[objects]
        keep = considered & (rank < torch.ceil(count * self.top_ratio))
        return keep.to(cost.dtype)

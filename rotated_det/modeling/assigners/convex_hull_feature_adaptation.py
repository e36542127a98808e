"""CFA's convex-hull feature adaptation (Guo et al., "Beyond Bounding-Box: Convex-hull Feature
Adaptation for Oriented and Densely Packed Object Detection", CVPR 2021): the refine assigner's
candidates of each object are split into positives and background by their losses, and the
positives are re-weighted against feature aliasing between neighbouring objects.

Per object:

1. cost of a candidate: its classification loss + the convex GIoU loss of its initial points;
   on each level the ``candidates_per_level`` of lowest cost are kept, then sorted by cost
   c_1 <= ... <= c_n;
2. split (n >= 2): with the costs' mean m and variance s^2 (unbiased), the density
   ``g_i = exp(-(c_i - m)^2 / s^2) / s``, its tail sums ``T_i = sum_{j >= i} g_j`` normalised to
   [0, 1] (``T'``), the candidates 1..j* stay positive, j* the argmax of ``T'_i c_i`` (the cost
   where the tail of the distribution still weighs much: the "convex-hull set splitting");
3. weights of the positives: ``anti_factor x a_i x T'_i`` rescaled to sum to their number, with
   the anti-aliasing coefficient ``a_i = IoU_i(object) / sum over the image's objects of
   IoU_i`` (hull IoU of the initial points): a hull that also overlaps other objects weighs less.

One candidate (n = 1) stays positive with weight 1; equal costs (s = 0) keep all with weight 1.
"""

import torch

from rotated_det.layers import convex_overlaps

from ..losses.convex_giou_loss import convex_giou_loss
from .point_set_candidates import PointSetCandidates, rank_within_groups

__all__ = ["ConvexHullFeatureAdaptation", "cfa_split"]


def cfa_split(costs: torch.Tensor, aliasing: torch.Tensor, anti_factor: float) -> torch.Tensor:
    """Steps 2-3 of the module docstring for one object.

    Args:
        costs: ``[n]`` costs sorted ascending.
        aliasing: ``[n]`` anti-aliasing coefficients a_i in [0, 1], same order.
        anti_factor: CFA's feature anti-aliasing coefficient (0.75).

    Returns:
        ``[n]`` weights: > 0 for the positives (a prefix), 0 for the rest.
    """
    n = costs.shape[0]
    weights = torch.zeros_like(costs)
    var = costs.var() if n >= 2 else costs.new_zeros(())
    if n < 2 or not bool(var > 1e-12):
        weights[:] = 1.0
        return weights
    density = torch.exp(-((costs - costs.mean()) ** 2) / var) / var.sqrt()
    tail = density.flip(0).cumsum(0).flip(0)
    tail = (tail - tail.min()) / (tail.max() - tail.min()).clamp(min=1e-12)
    split = int(torch.argmax(tail * costs))
    kept = anti_factor * aliasing[: split + 1] * tail[: split + 1] + 1e-6
    weights[: split + 1] = kept / kept.sum() * (split + 1)
    return weights


class ConvexHullFeatureAdaptation:
    """CFA's second assignment step (module docstring).

    Args:
        anti_factor: feature anti-aliasing coefficient (0.75 in MMRotate's CFA config).
        candidates_per_level: candidates per object and level considered (``topk``, 6).
    """

    needs_point_features = False

    def __init__(self, anti_factor: float = 0.75, candidates_per_level: int = 6) -> None:
        if anti_factor <= 0:
            raise ValueError(
                f"ConvexHullFeatureAdaptation: anti_factor must be > 0, got {anti_factor}"
            )
        if candidates_per_level < 1:
            raise ValueError(
                "ConvexHullFeatureAdaptation: candidates_per_level must be >= 1, got "
                f"{candidates_per_level}"
            )
        self.anti_factor = float(anti_factor)
        self.candidates_per_level = int(candidates_per_level)

    @torch.no_grad()
    def __call__(self, candidates: PointSetCandidates) -> torch.Tensor:
        """``[F]`` weight of each candidate: > 0 positive with that weight, 0 background."""
        c = candidates
        num = c.image.shape[0]
        weights = c.cls_cost.new_zeros(num)
        if num == 0:
            return weights
        cost = c.cls_cost + convex_giou_loss(c.init_points, c.gt_boxes)
        aliasing = torch.empty_like(cost)
        for i, boxes in enumerate(c.image_gt_boxes):
            in_image = (c.image == i).nonzero()[:, 0]
            if in_image.numel() == 0:
                continue
            overlaps = convex_overlaps(c.init_points[in_image], boxes)  # [F_i, G_i]
            own = overlaps.gather(1, c.gt_index[in_image, None])[:, 0]
            aliasing[in_image] = own / (overlaps.sum(dim=1) + 1e-6)
        objects = c.object_ids()
        num_levels = int(c.level.max()) + 1
        considered = rank_within_groups(objects * num_levels + c.level, cost)
        considered = considered < self.candidates_per_level
        for obj in torch.unique(objects[considered]).tolist():
            members = (considered & (objects == obj)).nonzero()[:, 0]
            order = torch.argsort(cost[members], stable=True)
            members = members[order]
            weights[members] = cfa_split(cost[members], aliasing[members], self.anti_factor)
        return weights

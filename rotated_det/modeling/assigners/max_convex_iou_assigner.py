"""The refine-stage assigner of rotated RepPoints (MMRotate's ``MaxConvexIoUAssigner``): each
location's initial point set is matched by the IoU of its convex hull with the objects, as
anchors are matched by box IoU (Detectron2's :class:`~rotated_det.modeling.Matcher`).

Worked example (thresholds 0.3 / 0.4): a point set whose hull overlaps object 0 at IoU 0.5 and
object 1 at 0.2 learns object 0; one at best IoU 0.35 is ignored; one at 0.1 is background;
with ``allow_low_quality_matches`` the point set(s) of highest IoU with an object learn it even
below 0.4 (an object that overlaps no hull at all gets none).
"""

import torch

from rotated_det.layers import convex_overlaps

from ..matcher import Matcher
from ._common import check_gt_boxes

__all__ = ["MaxConvexIoUAssigner", "IGNORED"]

IGNORED = -2  # assignment of a location left out of the classification loss


class MaxConvexIoUAssigner:
    """Max convex-hull IoU assignment (module docstring).

    Args:
        pos_iou_thr: hull IoU from which a point set is foreground (0.4 in rotated RepPoints,
            0.1 in Oriented RepPoints and CFA, whose later selection prunes the candidates).
        neg_iou_thr: hull IoU below which it is background (0.3; 0.1); in between: ignored.
        allow_low_quality_matches: the best point set(s) of each object are foreground even
            below ``pos_iou_thr`` (MMRotate's ``min_pos_iou=0``).
    """

    def __init__(
        self,
        pos_iou_thr: float = 0.4,
        neg_iou_thr: float = 0.3,
        allow_low_quality_matches: bool = True,
    ) -> None:
        if not 0.0 <= neg_iou_thr <= pos_iou_thr <= 1.0:
            raise ValueError(
                "MaxConvexIoUAssigner needs 0 <= neg_iou_thr <= pos_iou_thr <= 1, got "
                f"neg_iou_thr={neg_iou_thr}, pos_iou_thr={pos_iou_thr}"
            )
        self.pos_iou_thr = float(pos_iou_thr)
        self.neg_iou_thr = float(neg_iou_thr)
        self.matcher = Matcher(
            [self.neg_iou_thr, self.pos_iou_thr],
            [0, -1, 1],
            allow_low_quality_matches=allow_low_quality_matches,
        )

    @torch.no_grad()
    def __call__(
        self,
        point_sets: torch.Tensor,
        num_points_per_level: list[int],
        gt_boxes: torch.Tensor,
    ) -> torch.Tensor:
        """
        Args:
            point_sets: ``[P, K, 2]`` the locations' initial point sets (x, y), pixels.
            num_points_per_level: locations of each level (unused; the signature of every
                refine assigner).
            gt_boxes: ``[G, 5]`` the image's objects (cx, cy, w, h, angle in degrees).

        Returns:
            ``[P]`` int64: the object each point set learns, -1 background, ``IGNORED`` (-2).
        """
        check_gt_boxes(gt_boxes)
        num_sets = point_sets.shape[0]
        if gt_boxes.shape[0] == 0 or num_sets == 0:
            return torch.full((num_sets,), -1, dtype=torch.int64, device=point_sets.device)
        overlaps = convex_overlaps(point_sets.float(), gt_boxes.float())  # [P, G]
        matches, labels = self.matcher(overlaps.t())
        assigned = torch.where(labels == 1, matches, torch.full_like(matches, -1))
        return torch.where(labels == -1, torch.full_like(matches, IGNORED), assigned)

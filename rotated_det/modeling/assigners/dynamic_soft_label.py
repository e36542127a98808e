"""Dynamic soft-label assignment (RTMDet, Lyu et al. 2022; MMDetection's
``DynamicSoftLabelAssigner``) on rotated IoU.

The assignment looks at the predictions themselves. For each image, the candidate points are those
inside at least one gt box (rotated test, border included). For each candidate point ``p`` and
gt ``g`` (of class ``c_g``) with ``IoU = IoU(predicted box of p, g)`` (rotated):

    cost[p, g] = cls_cost + iou_weight * -ln(IoU + 1e-7) + 10 ** (d / stride_p - soft_center_radius)

- ``cls_cost``: the soft-label classification cost, binary cross-entropy of the point's logits
  against the soft target ``IoU * onehot(c_g)``, each class's term scaled by
  ``|target - sigmoid(logit)| ** 2`` and summed over the K classes;
- ``d``: distance (pixels) from the point to the gt centre, so the centre prior grows tenfold
  per stride of distance beyond ``soft_center_radius`` strides.

Dynamic k: gt ``g`` takes the ``k_g`` candidates of lowest cost, ``k_g = max(1,
floor(sum of the topk largest IoUs of g over the candidates))``. A point taken by several gts
keeps the one of lowest cost (over all gts). A positive point's soft label is its IoU with its gt.

Every candidate point is scored against every gt, including gts it lies outside of (their
centre-prior cost is what keeps them apart), as in MMDetection. Ties in cost or IoU are broken
by the lower point index (MMDetection's ``torch.topk`` leaves them unspecified).

Worked example (``tests/modeling/test_dynamic_soft_label_assigner.py``): two candidate points
whose predicted boxes have IoU 0.5 and 0.25 with the only gt and equal class costs, the first
nearer the centre: dynamic k = floor(0.75) -> 1, the first point is positive with soft label 0.5.
"""

import torch
from torch.nn import functional as F

from rotated_det.layers import box_iou_rotated
from rotated_det.structures import points_in_rotated_boxes

from ._common import check_gt_boxes

__all__ = ["DynamicSoftLabelAssigner"]

_IOU_EPS = 1e-7


class DynamicSoftLabelAssigner:
    """Dynamic soft-label assigner (module docstring).

    Args:
        topk: IoUs summed for each gt's dynamic k (13 in RTMDet).
        iou_weight: weight of the ``-ln IoU`` cost (3.0).
        soft_center_radius: distance (in strides) at which the centre-prior cost is 1 (3.0).
    """

    def __init__(
        self, topk: int = 13, iou_weight: float = 3.0, soft_center_radius: float = 3.0
    ) -> None:
        if topk < 1:
            raise ValueError(f"DynamicSoftLabelAssigner: topk must be >= 1, got {topk}")
        if iou_weight < 0:
            raise ValueError(f"DynamicSoftLabelAssigner: iou_weight must be >= 0, got {iou_weight}")
        self.topk = int(topk)
        self.iou_weight = float(iou_weight)
        self.soft_center_radius = float(soft_center_radius)

    @torch.no_grad()
    def __call__(
        self,
        points: torch.Tensor,
        strides: torch.Tensor,
        pred_logits: torch.Tensor,
        pred_boxes: torch.Tensor,
        gt_boxes: torch.Tensor,
        gt_classes: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            points: ``[P, 2]`` prior points (x, y), pixels, all levels concatenated.
            strides: ``[P]`` stride of each point's level, pixels.
            pred_logits: ``[P, K]`` class logits predicted at each point.
            pred_boxes: ``[P, 5]`` boxes predicted at each point (cx, cy, w, h, angle in
                degrees).
            gt_boxes: ``[G, 5]`` gt boxes, finite, sides >= 0.
            gt_classes: ``[G]`` int64 classes in [0, K).

        Returns:
            assigned_gt: ``[P]`` int64 index of each point's gt, -1 for background.
            assigned_iou: ``[P]`` IoU of each positive point's predicted box with its gt (its
                soft label), 0 for background; float32 (float64 for float64 inputs).

        Raises:
            ValueError: on wrong shapes, a class out of range or a non-finite gt box.
        """
        num_points = points.shape[0]
        if points.dim() != 2 or points.shape[1] != 2:
            raise ValueError(f"points must have shape [P, 2], got {tuple(points.shape)}")
        if strides.shape != (num_points,):
            raise ValueError(f"strides must have shape [{num_points}], got {tuple(strides.shape)}")
        if pred_boxes.shape != (num_points, 5):
            raise ValueError(
                f"pred_boxes must have shape [{num_points}, 5], got {tuple(pred_boxes.shape)}"
            )
        if pred_logits.dim() != 2 or pred_logits.shape[0] != num_points:
            raise ValueError(
                f"pred_logits must have shape [{num_points}, K], got {tuple(pred_logits.shape)}"
            )
        check_gt_boxes(gt_boxes)
        num_gt, num_classes = gt_boxes.shape[0], pred_logits.shape[1]
        if gt_classes.shape != (num_gt,):
            raise ValueError(
                f"gt_classes must have shape [{num_gt}], got {tuple(gt_classes.shape)}"
            )
        if num_gt and (int(gt_classes.min()) < 0 or int(gt_classes.max()) >= num_classes):
            raise ValueError(
                f"gt_classes must lie in [0, {num_classes}) (pred_logits' K), got "
                f"{gt_classes.tolist()}"
            )
        dtype = torch.promote_types(pred_boxes.dtype, torch.float32)
        assigned = torch.full((num_points,), -1, dtype=torch.long, device=points.device)
        assigned_iou = torch.zeros(num_points, dtype=dtype, device=points.device)
        if num_gt == 0 or num_points == 0:
            return assigned, assigned_iou
        gt = gt_boxes.to(dtype)
        candidate = points_in_rotated_boxes(points.to(dtype), gt).any(dim=1)  # [P]
        idx = candidate.nonzero()[:, 0]
        if idx.numel() == 0:
            return assigned, assigned_iou
        cost, ious = self.cost_matrix(
            points[idx].to(dtype),
            strides[idx].to(dtype),
            pred_logits[idx].to(dtype),
            pred_boxes[idx].to(dtype),
            gt,
            gt_classes,
        )
        matched_gt, matched = self.dynamic_k_matching(cost, ious)  # [V], [V] bool
        pos = idx[matched]
        assigned[pos] = matched_gt[matched]
        assigned_iou[pos] = ious[matched, matched_gt[matched]]
        return assigned, assigned_iou

    def cost_matrix(
        self,
        points: torch.Tensor,
        strides: torch.Tensor,
        pred_logits: torch.Tensor,
        pred_boxes: torch.Tensor,
        gt_boxes: torch.Tensor,
        gt_classes: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The cost ``[V, G]`` (module docstring) and rotated IoUs ``[V, G]`` of V candidate
        points (``points [V, 2]``, ``strides [V]``, ``pred_logits [V, K]``, ``pred_boxes
        [V, 5]``) against G gts (``gt_boxes [G, 5]``, ``gt_classes [G]``).

        The classification cost is computed without a ``[V, G, K]`` tensor: a class other than
        the gt's has the target 0 whatever the gt, so those terms are one sum per point, from
        which the gt class's own term is swapped for its soft-label term.
        """
        ious = box_iou_rotated(pred_boxes, gt_boxes).to(pred_boxes.dtype)  # [V, G]
        probs = pred_logits.sigmoid()
        background = F.binary_cross_entropy_with_logits(
            pred_logits, torch.zeros_like(pred_logits), reduction="none"
        ) * probs.pow(2)  # [V, K]: the cost of each class with target 0
        logit_g = pred_logits[:, gt_classes]  # [V, G]
        prob_g = probs[:, gt_classes]
        soft = F.binary_cross_entropy_with_logits(logit_g, ious, reduction="none") * (
            ious - prob_g
        ).abs().pow(2)
        cls_cost = background.sum(dim=1, keepdim=True) - background[:, gt_classes] + soft
        iou_cost = -torch.log(ious + _IOU_EPS) * self.iou_weight
        distance = torch.cdist(points, gt_boxes[:, :2]) / strides[:, None]
        center_prior = torch.pow(10.0, distance - self.soft_center_radius)
        return cls_cost + iou_cost + center_prior, ious

    def dynamic_k_matching(
        self, cost: torch.Tensor, ious: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each gt's ``k_g`` cheapest points (module docstring), conflicts resolved by the
        lowest cost.

        Args:
            cost, ious: ``[V, G]``.

        Returns:
            ``[V]`` int64 gt of each point (meaningful where matched) and ``[V]`` bool matched.
        """
        num_points, num_gt = cost.shape
        k = min(self.topk, num_points)
        # per gt along rows: contiguous, where sorting down the columns of [V, G] is slow
        cost_t, ious_t = cost.t().contiguous(), ious.t().contiguous()
        dynamic_k = ious_t.topk(k, dim=1).values.sum(dim=1).int().clamp(min=1)  # [G], <= k
        # each gt's k cheapest points (k >= its dynamic k), with every tie of the k-th cost
        kth = cost_t.topk(k, dim=1, largest=False).values[:, -1]
        gt_idx, point_idx = (cost_t <= kth[:, None]).nonzero(as_tuple=True)  # by gt, then point
        order = torch.argsort(cost_t[gt_idx, point_idx], stable=True)
        order = order[torch.argsort(gt_idx[order], stable=True)]  # by gt, cost, point index
        gt_idx, point_idx = gt_idx[order], point_idx[order]
        counts = torch.bincount(gt_idx, minlength=num_gt)
        rank = (
            torch.arange(gt_idx.shape[0], device=cost.device) - (counts.cumsum(0) - counts)[gt_idx]
        )
        keep = rank < dynamic_k[gt_idx]
        chosen = torch.zeros_like(cost, dtype=torch.bool)
        chosen[point_idx[keep], gt_idx[keep]] = True
        matched = chosen.any(dim=1)
        cheapest_all = cost.argmin(dim=1)  # among all gts (MMDetection's conflict rule)
        only = chosen.int().argmax(dim=1)  # the first chosen gt
        several = chosen.sum(dim=1) > 1
        return torch.where(several, cheapest_all, only), matched

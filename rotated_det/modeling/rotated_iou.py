"""IoU of few ground-truth boxes against many anchors, skipping pairs that cannot overlap."""

import torch

from rotated_det.layers import box_iou_rotated, pairwise_iou_rotated

__all__ = ["pairwise_iou_rotated_sparse"]


def pairwise_iou_rotated_sparse(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Same result as ``pairwise_iou_rotated(boxes1, boxes2)``: ``[N, M]`` IoU.

    Two rotated boxes can only intersect if their circumscribed circles do, i.e. if the distance
    of their centers is below the sum of their half-diagonals. Only those pairs go to the exact
    polygon-clipping op; with a handful of objects against ~10^5 anchors that is a small fraction.

    Args:
        boxes1: ``[N, 5]`` (typically the ground truth); boxes2: ``[M, 5]`` (anchors).
    """
    n, m = boxes1.shape[0], boxes2.shape[0]
    if n == 0 or m == 0:
        return boxes1.new_zeros((n, m))
    if n * m < 4096:
        return pairwise_iou_rotated(boxes1, boxes2)
    r1 = 0.5 * torch.hypot(boxes1[:, 2], boxes1[:, 3])
    r2 = 0.5 * torch.hypot(boxes2[:, 2], boxes2[:, 3])
    dist2 = torch.cdist(boxes1[:, :2], boxes2[:, :2]).square_()
    reach = (r1[:, None] + r2[None, :]).square_()
    i, j = torch.nonzero(dist2 < reach, as_tuple=True)
    out = boxes1.new_zeros((n, m))
    if i.numel() > 0:
        out[i, j] = box_iou_rotated(boxes1[i], boxes2[j], aligned=True)
    return out

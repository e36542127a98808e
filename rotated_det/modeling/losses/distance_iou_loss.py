"""IoU losses between boxes given as distances from a shared point to their four sides.

Both boxes of a pair are axis-aligned in the same frame (for rotated FCOS: the target box's
frame) and contain the shared point, so their intersection is
``(min(l) + min(r)) * (min(t) + min(b))`` and the smallest box enclosing both is
``(max(l) + max(r)) * (max(t) + max(b))``. Used by FCOS-style heads that learn the angle
separately (MMRotate's ``use_hbbox_loss``).
"""

import torch

__all__ = ["distance_iou_loss"]


def distance_iou_loss(
    pred: torch.Tensor, target: torch.Tensor, mode: str = "log", eps: float = 1e-6
) -> torch.Tensor:
    """Per-pair IoU loss of distance boxes.

    Args:
        pred, target: ``[F, 4]`` distances (left, top, right, bottom), pixels, >= 0.
        mode: "linear" (1 - IoU), "log" (-log IoU) or "giou" (1 - GIoU).
        eps: added to areas so that empty boxes give finite losses.

    Returns:
        ``[F]`` losses. Example: pred ``(1, 1, 1, 1)`` and target ``(1, 1, 3, 1)`` (a 2 x 2 box
        inside a 4 x 2 one): IoU = 4 / 8, linear loss 0.5, log loss ln 2.
    """
    if mode not in ("linear", "log", "giou"):
        raise ValueError(f"distance_iou_loss: mode must be 'linear', 'log' or 'giou', got {mode!r}")
    pred_area = (pred[:, 0] + pred[:, 2]) * (pred[:, 1] + pred[:, 3])
    target_area = (target[:, 0] + target[:, 2]) * (target[:, 1] + target[:, 3])
    low = torch.minimum(pred, target)
    inter = (low[:, 0] + low[:, 2]) * (low[:, 1] + low[:, 3])
    union = pred_area + target_area - inter + eps
    iou = (inter + eps) / union
    if mode == "linear":
        return 1 - iou
    if mode == "log":
        return -torch.log(iou.clamp(min=eps))
    high = torch.maximum(pred, target)
    enclosing = (high[:, 0] + high[:, 2]) * (high[:, 1] + high[:, 3]) + eps
    return 1 - iou + (enclosing - union) / enclosing

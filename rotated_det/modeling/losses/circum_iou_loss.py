"""The weakly supervised box loss of H2RBox-v2 ("CircumIoU"): the IoU of a target box with the
box that encloses the prediction, aligned with the target.

With horizontal labels the target of an object is its horizontal box (or, in a view turned by
``r``, that box turned by ``r``): it says where the object's enclosing box is, not how the object
is oriented. The loss therefore compares the target with the smallest rectangle that encloses
the predicted rotated box and is aligned with the TARGET's axes: for a prediction
``(cx, cy, w, h, a)`` and a target of angle ``t`` (degrees), with ``d = a - t``, that rectangle
has sides ``|cos d| w + |sin d| h`` (along the target's w-axis) and ``|sin d| w + |cos d| h``,
and the prediction's centre. Both rectangles are then axis-aligned in the target's frame and
their IoU is a product of interval overlaps. For a target of angle 0 this is the IoU of the
prediction's enclosing horizontal box with the target, the paper's loss.

Worked example: prediction ``(10, 10, 4, 2, 90)``, target ``(10, 10, 2, 4, 0)``: the
prediction turned a quarter turn is 2 wide and 4 tall, exactly the target: IoU 1. Prediction
``(0, 0, 2, 2, 45)`` against target ``(0, 0, 2, 2, 0)``: enclosing square of side
``2 * sqrt(2)``, IoU ``4 / 8 = 0.5``.

Box convention: ``(cx, cy, w, h, angle)``, pixels, angle in degrees counter-clockwise on screen.
"""

import torch

from rotated_det.structures import cos_sin_degrees, point_offsets_in_box_frame

__all__ = ["circum_iou", "circum_iou_loss"]


def circum_iou(
    pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-6
) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU ``[F]`` of each target ``[F, 5]`` with the target-aligned box enclosing its
    prediction ``[F, 5]`` (module docstring), and the area ``[F]`` of the smallest target-aligned
    box enclosing both over the union (``enclosing / union``, for GIoU). Differentiable in the
    prediction's centre, sides and angle."""
    if pred.shape != target.shape or pred.dim() != 2 or pred.shape[1] != 5:
        raise ValueError(
            f"circum_iou: pred and target must both be [F, 5], got {tuple(pred.shape)} and "
            f"{tuple(target.shape)}"
        )
    offset = point_offsets_in_box_frame(pred[:, :2], target, aligned=True)  # [F, 2]
    cos, sin = cos_sin_degrees(pred[:, 4] - target[:, 4])
    cos, sin = cos.abs(), sin.abs()
    half_pred = 0.5 * torch.stack(
        [cos * pred[:, 2] + sin * pred[:, 3], sin * pred[:, 2] + cos * pred[:, 3]], dim=1
    )
    half_target = 0.5 * target[:, 2:4]
    low = torch.maximum(offset - half_pred, -half_target)
    high = torch.minimum(offset + half_pred, half_target)
    inter = (high - low).clamp(min=0).prod(dim=1)
    pred_area = (2 * half_pred).prod(dim=1)
    target_area = target[:, 2] * target[:, 3]
    union = pred_area + target_area - inter + eps
    iou = (inter + eps) / union
    outer = torch.maximum(offset + half_pred, half_target) - torch.minimum(
        offset - half_pred, -half_target
    )
    enclosing = outer.prod(dim=1) + eps
    return iou, (enclosing - union) / enclosing


def circum_iou_loss(
    pred: torch.Tensor, target: torch.Tensor, mode: str = "log", eps: float = 1e-6
) -> torch.Tensor:
    """Per-pair loss ``[F]`` of :func:`circum_iou`: "linear" (1 - IoU), "log" (-log IoU, the
    IoU loss of MMRotate's H2RBox-v2 configs) or "giou" (1 - GIoU, the smallest enclosing box
    aligned with the target).

    Args:
        pred: ``[F, 5]`` predicted rotated boxes (the caller detaches the angle when the angle
            must not learn from this loss, as H2RBox-v2 does).
        target: ``[F, 5]`` target boxes.
    """
    if mode not in ("linear", "log", "giou"):
        raise ValueError(f"circum_iou_loss: mode must be 'linear', 'log' or 'giou', got {mode!r}")
    iou, enclosing_gap = circum_iou(pred, target, eps)
    if mode == "linear":
        return 1 - iou
    if mode == "log":
        return -torch.log(iou.clamp(min=eps))
    return 1 - iou + enclosing_gap

"""Box regression loss selectable by name, shared by the RPN, RoI and dense heads."""

import torch

from .gaussian_loss import gwd_loss, kld_loss
from .kfiou_loss import kfiou_loss
from .rotated_iou_loss import rotated_iou_loss
from .smooth_l1_loss import smooth_l1_loss

__all__ = ["BOX_REG_LOSS_TYPES", "box_regression_loss"]

BOX_REG_LOSS_TYPES = ("smooth_l1", "l1", "kld", "gwd", "iou", "log_iou", "giou", "kfiou")
# Names of the rotated-IoU losses -> rotated_iou_loss mode.
_IOU_MODES = {"iou": "linear", "log_iou": "log", "giou": "giou"}


def check_box_reg_loss_type(loss_type: str, owner: str) -> str:
    """Raise a ValueError naming ``owner`` unless ``loss_type`` is one of BOX_REG_LOSS_TYPES."""
    if loss_type not in BOX_REG_LOSS_TYPES:
        raise ValueError(
            f"{owner}: box_reg_loss_type must be one of {BOX_REG_LOSS_TYPES}, got {loss_type!r}"
        )
    return loss_type


def box_regression_loss(
    loss_type: str,
    box2box_transform,
    pred_deltas: torch.Tensor,
    src_boxes: torch.Tensor,
    gt_boxes: torch.Tensor,
    smooth_l1_beta: float = 0.0,
) -> torch.Tensor:
    """Summed regression loss over foreground pairs.

    Args:
        loss_type: "smooth_l1" / "l1" on encoded deltas, or, on decoded rotated boxes (these
            need a coder that decodes to rotated boxes): "kld" / "gwd" (Gaussian distances),
            "iou" (``1 - IoU``), "log_iou" (``-ln IoU``), "giou" (generalised IoU with the
            minimum enclosing rotated rectangle) or "kfiou" (KFIoU ``1 - KFIoU`` plus its
            smooth-L1 centre term on the coder's ``(dx, dy)`` deltas, as in the paper).
        box2box_transform: the coder that encodes ``gt_boxes`` against ``src_boxes``.
        pred_deltas: ``[F, D]`` predicted deltas of the foreground sources.
        src_boxes: ``[F, box_dim]`` anchors / proposals.
        gt_boxes: ``[F, 5]`` matched ground-truth boxes.
        smooth_l1_beta: beta of the smooth L1 loss ("l1" ignores it).

    Returns:
        a scalar: the sum over the F pairs (0 with a graph when F == 0).
    """
    if pred_deltas.numel() == 0:
        return pred_deltas.sum() * 0.0
    if loss_type in ("smooth_l1", "l1"):
        target = box2box_transform.get_deltas(src_boxes, gt_boxes)
        beta = 0.0 if loss_type == "l1" else smooth_l1_beta
        return smooth_l1_loss(pred_deltas, target, beta, reduction="sum")
    pred_boxes = box2box_transform.apply_deltas(pred_deltas, src_boxes)
    if pred_boxes.shape[1] != 5:
        raise ValueError(f"{loss_type} loss needs rotated boxes, got {pred_boxes.shape[1]}-d boxes")
    if loss_type == "kld":
        return kld_loss(pred_boxes, gt_boxes).sum()
    if loss_type == "gwd":
        return gwd_loss(pred_boxes, gt_boxes).sum()
    if loss_type in _IOU_MODES:
        return rotated_iou_loss(pred_boxes, gt_boxes, mode=_IOU_MODES[loss_type]).sum()
    if loss_type == "kfiou":
        target_deltas = box2box_transform.get_deltas(src_boxes, gt_boxes)
        offsets = pred_deltas[:, :2] - target_deltas[:, :2].to(pred_deltas.dtype)
        return kfiou_loss(pred_boxes, gt_boxes, center_offsets=offsets).sum()
    raise ValueError(f"box_reg_loss_type must be one of {BOX_REG_LOSS_TYPES}, got {loss_type!r}")

"""Box regression loss selectable by name, shared by the RPN, RoI and dense heads."""

import torch

from .gaussian_loss import gwd_loss, kld_loss
from .smooth_l1_loss import smooth_l1_loss

__all__ = ["BOX_REG_LOSS_TYPES", "box_regression_loss"]

BOX_REG_LOSS_TYPES = ("smooth_l1", "l1", "kld", "gwd")


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
        loss_type: "smooth_l1" / "l1" on encoded deltas, or "kld" / "gwd" on decoded rotated
            boxes (these need a rotated coder).
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
    raise ValueError(f"box_reg_loss_type must be one of {BOX_REG_LOSS_TYPES}, got {loss_type!r}")

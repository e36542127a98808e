"""IoU losses for rotated boxes (linear, log and GIoU), on the differentiable rotated IoU.

- ``"linear"``: ``1 - IoU`` (Yu et al. 2016 use the log form; the linear form is MMRotate's
  ``RotatedIoULoss(linear=True)``).
- ``"log"``: ``-ln(max(IoU, eps))``.
- ``"giou"``: ``1 - IoU + (C - U) / C`` (Rezatofighi et al. 2019) with ``U`` the area of the union
  and ``C`` the area of the minimum-area rotated rectangle enclosing both boxes
  (``rotated_det.layers.diff_enclosing_area_rotated``). Unlike the two others it has a gradient
  for boxes that do not overlap: it pulls them together.

Worked example (``tests/modeling/test_rotated_iou_losses.py``): two axis-aligned 2 x 2 squares
centred at (0, 0) and (1, 1) overlap in a 1 x 1 square: IoU = 1 / 7, U = 7, the smallest
enclosing rectangle is the 3 x 3 square (turned 45 degrees it would be 3 sqrt 2 x 2 sqrt 2 = 12),
so linear = 6 / 7, log = ln 7 and giou = 6 / 7 + (9 - 7) / 9 = 68 / 63.
"""

import torch

from rotated_det.layers import diff_enclosing_area_rotated, diff_iou_rotated

__all__ = ["ROTATED_IOU_LOSS_MODES", "rotated_iou_loss"]

ROTATED_IOU_LOSS_MODES = ("linear", "log", "giou")


def rotated_iou_loss(
    pred: torch.Tensor, target: torch.Tensor, mode: str = "linear", eps: float = 1e-6
) -> torch.Tensor:
    """Per-box IoU loss of rotated boxes.

    Args:
        pred: ``[N, 5]`` predicted boxes ``(cx, cy, w, h, angle)``: pixels, degrees.
        target: ``[N, 5]`` their target boxes.
        mode: "linear" (``1 - IoU``), "log" (``-ln IoU``) or "giou" (see the module docstring).
        eps: lower bound of the IoU inside the log, and of the enclosing area in "giou".

    Returns:
        ``[N]`` losses (float32, or float64 for float64 boxes): 0 for identical boxes. A pair
        with a non-finite value gets a NaN loss, so that a diverging prediction is not hidden
        (the IoU op itself reads such pairs as IoU 0).

    Raises:
        ValueError: on an unknown ``mode`` or malformed boxes.
    """
    if mode not in ROTATED_IOU_LOSS_MODES:
        raise ValueError(f"mode must be one of {ROTATED_IOU_LOSS_MODES}, got {mode!r}")
    iou = diff_iou_rotated(pred, target)
    if mode == "linear":
        loss = 1.0 - iou
    elif mode == "log":
        loss = -torch.log(iou.clamp(min=eps))
    else:
        p, t = pred.to(iou.dtype), target.to(iou.dtype)
        # IoU = I / (A - I) with A = area_p + area_t, so the union A - I is A / (1 + IoU).
        union = (p[:, 2] * p[:, 3] + t[:, 2] * t[:, 3]) / (1.0 + iou)
        enclosing = diff_enclosing_area_rotated(pred, target)
        loss = 1.0 - iou + (enclosing - union) / enclosing.clamp(min=eps)
    finite = torch.isfinite(pred).all(1) & torch.isfinite(target).all(1)
    return torch.where(finite, loss, torch.full_like(loss, float("nan")))

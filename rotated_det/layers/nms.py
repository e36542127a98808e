"""Non-maximum suppression of rotated boxes (compiled ops ``rotated_det::nms_rotated`` and
``rotated_det::batched_nms_rotated``)."""

import math

import torch

from .ops_library import load_library
from .rotated_boxes import _check_boxes

__all__ = ["nms_rotated", "batched_nms_rotated"]

load_library()


def _check_nms_args(boxes, scores, iou_threshold) -> None:
    _check_boxes(boxes, "boxes")
    if not isinstance(scores, torch.Tensor) or scores.dim() != 1:
        raise ValueError(
            f"scores must be a 1-D tensor [N], got {getattr(scores, 'shape', type(scores))}"
        )
    if scores.shape[0] != boxes.shape[0]:
        raise ValueError(
            f"scores must have shape [N] with N = {boxes.shape[0]} (number of boxes), "
            f"got {tuple(scores.shape)}"
        )
    if scores.dtype != boxes.dtype:
        raise ValueError(f"scores must have the dtype of boxes ({boxes.dtype}), got {scores.dtype}")
    if scores.device != boxes.device:
        raise ValueError(
            f"scores must be on the device of boxes ({boxes.device}), got {scores.device}"
        )
    thr = float(iou_threshold)
    if math.isnan(thr) or not 0.0 <= thr <= 1.0:
        raise ValueError(f"iou_threshold must be a number in [0, 1], got {iou_threshold}")


def nms_rotated(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression of rotated boxes.

    Boxes are visited by decreasing score; each box that is not yet suppressed is kept and
    suppresses every later box whose IoU with it (as :func:`box_iou_rotated` computes it, in the
    input dtype) is strictly greater than ``iou_threshold``.

    Args:
        boxes: [N, 5] float32/float64 boxes (cx, cy, w, h, angle): pixels, angle in degrees.
        scores: [N] scores, same dtype and device.
        iou_threshold: in [0, 1].

    Returns:
        int64 tensor [K] of the indices of the kept boxes, by decreasing score (ties: lower index
        first). Boxes with NaN/inf values or a side <= 0 have IoU 0 with everything: they are kept
        (when their score allows) and never suppress nor get suppressed. NaN scores rank last.

    Raises:
        ValueError: on wrong shapes, dtypes, devices or a threshold outside [0, 1].
    """
    _check_nms_args(boxes, scores, iou_threshold)
    return torch.ops.rotated_det.nms_rotated(boxes, scores, float(iou_threshold))


def batched_nms_rotated(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """Non-maximum suppression done independently per category.

    Same as running :func:`nms_rotated` on each group of boxes sharing an ``idxs`` value and
    merging the kept indices by decreasing score. The compiled kernel does exactly that in one
    call (the CPU kernel splits by category itself, the CUDA kernel masks cross-category pairs);
    no coordinate offsets are used, so the result is exactly the per-category one.

    Args:
        boxes: [N, 5] float32/float64 boxes (cx, cy, w, h, angle_deg).
        scores: [N] scores, same dtype and device.
        idxs: [N] integer category of each box.
        iou_threshold: in [0, 1].

    Returns:
        int64 tensor [K] of kept indices by decreasing score (see :func:`nms_rotated` for ties
        and NaN/inf handling).
    """
    _check_nms_args(boxes, scores, iou_threshold)
    if not isinstance(idxs, torch.Tensor) or idxs.dim() != 1 or idxs.shape[0] != boxes.shape[0]:
        raise ValueError(
            f"idxs must be a 1-D tensor [N] with N = {boxes.shape[0]}, "
            f"got {getattr(idxs, 'shape', type(idxs))}"
        )
    if idxs.dtype.is_floating_point or idxs.dtype.is_complex or idxs.dtype == torch.bool:
        raise ValueError(f"idxs must be an integer tensor, got {idxs.dtype}")
    if idxs.device != boxes.device:
        raise ValueError(f"idxs must be on the device of boxes ({boxes.device}), got {idxs.device}")
    return torch.ops.rotated_det.batched_nms_rotated(boxes, scores, idxs, float(iou_threshold))

"""Non-maximum suppression of rotated boxes (compiled ops ``rotated_det::nms_rotated`` and
``rotated_det::batched_nms_rotated``)."""

import math

import torch

from ._op_args import check_boxes, dtype_str, geometry_dtype, is_float_dtype, shape_str
from .ops_library import load_library

__all__ = ["nms_rotated", "batched_nms_rotated"]

load_library()


def _check_nms_args(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> None:
    check_boxes(boxes, "boxes")
    if not torch.jit.is_scripting():
        if not isinstance(scores, torch.Tensor):
            raise ValueError(f"scores must be a 1-D tensor [N], got {type(scores)}")
    if scores.dim() != 1:
        raise ValueError(f"scores must be a 1-D tensor [N], got {shape_str(scores)}")
    if scores.shape[0] != boxes.shape[0]:
        raise ValueError(
            f"scores must have shape [N] with N = {boxes.shape[0]} (number of boxes), "
            f"got {shape_str(scores)}"
        )
    if not is_float_dtype(scores.dtype):
        raise ValueError(
            f"scores must be float16, bfloat16, float32 or float64, got {dtype_str(scores.dtype)}"
        )
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
    suppresses every later box whose IoU with it (as :func:`box_iou_rotated` computes it) is
    strictly greater than ``iou_threshold``.

    Boxes and scores may have different dtypes (float16, bfloat16, float32, float64, e.g.
    float32 boxes and bfloat16 scores under autocast): both are widened, exactly, to float64
    when either is float64 and to float32 otherwise, and IoUs and scores are compared in that
    dtype. So the result equals the float32 one on the same (rounded) values.

    Args:
        boxes: [N, 5] boxes (cx, cy, w, h, angle): pixels, angle in degrees.
        scores: [N] scores, same device.
        iou_threshold: in [0, 1].

    Returns:
        int64 tensor [K] of the indices of the kept boxes, by decreasing score (ties: lower index
        first). Boxes with NaN/inf values or a side <= 0 have IoU 0 with everything: they are kept
        (when their score allows) and never suppress nor get suppressed. NaN scores rank last.

    Raises:
        ValueError: on wrong shapes, dtypes, devices or a threshold outside [0, 1].
    """
    _check_nms_args(boxes, scores, iou_threshold)
    dtype = geometry_dtype(boxes.dtype, scores.dtype)
    keep: torch.Tensor = torch.ops.rotated_det.nms_rotated(
        boxes.to(dtype), scores.to(dtype), float(iou_threshold)
    )
    return keep


def batched_nms_rotated(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """Non-maximum suppression done independently per category.

    Same as running :func:`nms_rotated` on each group of boxes sharing an ``idxs`` value and
    merging the kept indices by decreasing score. The compiled kernel does exactly that in one
    call (the CPU kernel splits by category itself, the CUDA kernel masks cross-category pairs);
    no coordinate offsets are used, so the result is exactly the per-category one.

    Args:
        boxes: [N, 5] boxes (cx, cy, w, h, angle_deg); dtypes as in :func:`nms_rotated`.
        scores: [N] scores, same device.
        idxs: [N] integer category of each box.
        iou_threshold: in [0, 1].

    Returns:
        int64 tensor [K] of kept indices by decreasing score (see :func:`nms_rotated` for ties,
        dtypes and NaN/inf handling).
    """
    _check_nms_args(boxes, scores, iou_threshold)
    if not torch.jit.is_scripting():
        if not isinstance(idxs, torch.Tensor):
            raise ValueError(
                f"idxs must be a 1-D tensor [N] with N = {boxes.shape[0]}, got {type(idxs)}"
            )
    if idxs.dim() != 1 or idxs.shape[0] != boxes.shape[0]:
        raise ValueError(
            f"idxs must be a 1-D tensor [N] with N = {boxes.shape[0]}, got {shape_str(idxs)}"
        )
    if idxs.is_floating_point() or idxs.is_complex() or idxs.dtype == torch.bool:
        raise ValueError(f"idxs must be an integer tensor, got {dtype_str(idxs.dtype)}")
    if idxs.device != boxes.device:
        raise ValueError(f"idxs must be on the device of boxes ({boxes.device}), got {idxs.device}")
    dtype = geometry_dtype(boxes.dtype, scores.dtype)
    keep: torch.Tensor = torch.ops.rotated_det.batched_nms_rotated(
        boxes.to(dtype), scores.to(dtype), idxs, float(iou_threshold)
    )
    return keep

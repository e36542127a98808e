"""IoU of rotated boxes, computed by the compiled ``rotated_det::box_iou_rotated`` op."""

import torch

from ._op_args import check_boxes, geometry_dtype
from .ops_library import load_library

__all__ = ["pairwise_iou_rotated", "box_iou_rotated"]

load_library()


def box_iou_rotated(
    boxes1: torch.Tensor, boxes2: torch.Tensor, mode: str = "iou", aligned: bool = False
) -> torch.Tensor:
    """Overlap of rotated boxes.

    Args:
        boxes1: [N, 5] boxes (cx, cy, w, h, angle): pixels, angle in degrees, counter-clockwise
            positive on screen; float16, bfloat16, float32 or float64.
        boxes2: [M, 5] boxes on the same device, any of those dtypes (M == N when ``aligned``).
        mode: ``"iou"`` (intersection over union) or ``"iof"`` (intersection over the area of
            the box from ``boxes1``).
        aligned: if True, compare ``boxes1[i]`` with ``boxes2[i]`` only.

    Returns:
        [N, M] tensor (or [N] when ``aligned``) in ``torch.promote_types`` of the two input
        dtypes, values in [0, 1]. float16/bfloat16 boxes are widened (exactly) to float32, or
        to float64 when the other input is float64, and the kernel computes the geometry in
        float64: the result is exact up to the rounding of the input values and of the output
        dtype.
        Boxes with a NaN or infinite value, or a side <= 0, have IoU (and IoF) 0 with everything,
        themselves included.

    Raises:
        ValueError: on wrong shapes, dtypes, devices or mode.
    """
    check_boxes(boxes1, "boxes1")
    check_boxes(boxes2, "boxes2")
    if boxes1.device != boxes2.device:
        raise ValueError(
            f"boxes1 and boxes2 must be on the same device, got {boxes1.device} and {boxes2.device}"
        )
    if mode != "iou" and mode != "iof":
        raise ValueError(f"mode must be 'iou' or 'iof', got '{mode}'")
    if aligned and boxes1.shape[0] != boxes2.shape[0]:
        raise ValueError(
            "aligned=True needs as many boxes in boxes1 as in boxes2, got "
            f"{boxes1.shape[0]} and {boxes2.shape[0]}"
        )
    out_dtype = torch.promote_types(boxes1.dtype, boxes2.dtype)
    dtype = geometry_dtype(boxes1.dtype, boxes2.dtype)
    iou: torch.Tensor = torch.ops.rotated_det.box_iou_rotated(
        boxes1.to(dtype), boxes2.to(dtype), 0 if mode == "iou" else 1, aligned
    )
    return iou.to(out_dtype)


def pairwise_iou_rotated(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """IoU of every box in ``boxes1`` [N, 5] with every box in ``boxes2`` [M, 5] -> [N, M].

    Same as ``box_iou_rotated(boxes1, boxes2)``; see there for units, dtypes and special values.
    """
    return box_iou_rotated(boxes1, boxes2)

"""IoU of rotated boxes, computed by the compiled ``rotated_det::box_iou_rotated`` op."""

import torch

from .ops_library import load_library

__all__ = ["pairwise_iou_rotated", "box_iou_rotated"]

load_library()

_MODES = {"iou": 0, "iof": 1}


def _check_boxes(boxes, name: str) -> None:
    if not isinstance(boxes, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape [N, 5], got {type(boxes)}")
    if boxes.dim() != 2 or boxes.shape[1] != 5:
        raise ValueError(
            f"{name} must have shape [N, 5] (cx, cy, w, h, angle_deg), got {tuple(boxes.shape)}"
        )
    if boxes.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"{name} must be float32 or float64, got {boxes.dtype}")


def box_iou_rotated(
    boxes1: torch.Tensor, boxes2: torch.Tensor, mode: str = "iou", aligned: bool = False
) -> torch.Tensor:
    """Overlap of rotated boxes.

    Args:
        boxes1: [N, 5] float32/float64 boxes (cx, cy, w, h, angle): pixels, angle in degrees,
            counter-clockwise positive on screen.
        boxes2: [M, 5] boxes of the same dtype and device (M == N when ``aligned``).
        mode: ``"iou"`` (intersection over union) or ``"iof"`` (intersection over the area of
            the box from ``boxes1``).
        aligned: if True, compare ``boxes1[i]`` with ``boxes2[i]`` only.

    Returns:
        [N, M] tensor (or [N] when ``aligned``) in the input dtype, values in [0, 1]. The geometry
        is exact up to the rounding of the input dtype (computed in float64 on CPU and CUDA).
        Boxes with a NaN or infinite value, or a side <= 0, have IoU (and IoF) 0 with everything,
        themselves included.

    Raises:
        ValueError: on wrong shapes, dtypes, devices or mode.
    """
    _check_boxes(boxes1, "boxes1")
    _check_boxes(boxes2, "boxes2")
    if boxes1.dtype != boxes2.dtype:
        raise ValueError(
            f"boxes1 and boxes2 must have the same dtype, got {boxes1.dtype} and {boxes2.dtype}"
        )
    if boxes1.device != boxes2.device:
        raise ValueError(
            f"boxes1 and boxes2 must be on the same device, got {boxes1.device} and {boxes2.device}"
        )
    if mode not in _MODES:
        raise ValueError(f"mode must be 'iou' or 'iof', got {mode!r}")
    if aligned and boxes1.shape[0] != boxes2.shape[0]:
        raise ValueError(
            "aligned=True needs as many boxes in boxes1 as in boxes2, got "
            f"{boxes1.shape[0]} and {boxes2.shape[0]}"
        )
    return torch.ops.rotated_det.box_iou_rotated(boxes1, boxes2, _MODES[mode], bool(aligned))


def pairwise_iou_rotated(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """IoU of every box in ``boxes1`` [N, 5] with every box in ``boxes2`` [M, 5] -> [N, M].

    Same as ``box_iou_rotated(boxes1, boxes2)``; see there for units and special values.
    """
    return box_iou_rotated(boxes1, boxes2)

"""Compiled rotated-geometry ops and small nn layers."""

from .nms import batched_nms_rotated, nms_rotated
from .roi_align_rotated import ROIAlignRotated, roi_align_rotated
from .rotated_boxes import box_iou_rotated, pairwise_iou_rotated

__all__ = [
    "ROIAlignRotated",
    "batched_nms_rotated",
    "box_iou_rotated",
    "nms_rotated",
    "pairwise_iou_rotated",
    "roi_align_rotated",
]
from .wrappers import *  # noqa: E402, F401, F403, I001  (MODEL: Conv2d, cat, ShapeSpec, FrozenBatchNorm2d, get_norm, ...)

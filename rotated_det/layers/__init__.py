"""Compiled rotated-geometry ops and small nn layers."""

from .rotated_boxes import box_iou_rotated, pairwise_iou_rotated

__all__ = [
    "box_iou_rotated",
    "pairwise_iou_rotated",
]

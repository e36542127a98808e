"""Compiled rotated-geometry ops (loaded from rotated_det/_C.so on import) and small nn layers."""

from .active_rotating_filter import ORConv2d
from .align_conv import AlignConv, align_conv_offsets
from .batch_norm import FrozenBatchNorm2d, get_norm
from .channels_last import set_weight_memory_format, to_channels_last
from .conv_bn_fusion import fuse_conv_bn
from .convex_iou import convex_giou, convex_iou, convex_overlaps
from .convex_points_in_polygons import points_in_polygons
from .diff_iou_rotated import diff_enclosing_area_rotated, diff_iou_rotated
from .nms import batched_nms_rotated, nms_rotated
from .orientation_pooling import RotationInvariantPooling
from .ri_roi_align_rotated import RiRoIAlignRotated, ri_roi_align_rotated
from .roi_align_rotated import ROIAlignRotated, roi_align_rotated
from .rotated_boxes import box_iou_rotated, pairwise_iou_rotated
from .rotated_feature_align import rotated_feature_align
from .shape_spec import ShapeSpec
from .weighted_box_fusion import weighted_box_fusion_rotated
from .wrappers import Conv2d, cat, nonzero_tuple, shapes_to_tensor

__all__ = [
    "AlignConv",
    "ORConv2d",
    "RotationInvariantPooling",
    "align_conv_offsets",
    "convex_giou",
    "convex_iou",
    "convex_overlaps",
    "points_in_polygons",
    "ROIAlignRotated",
    "RiRoIAlignRotated",
    "batched_nms_rotated",
    "box_iou_rotated",
    "diff_enclosing_area_rotated",
    "diff_iou_rotated",
    "nms_rotated",
    "pairwise_iou_rotated",
    "ri_roi_align_rotated",
    "roi_align_rotated",
    "rotated_feature_align",
    "weighted_box_fusion_rotated",
    "Conv2d",
    "FrozenBatchNorm2d",
    "fuse_conv_bn",
    "set_weight_memory_format",
    "to_channels_last",
    "ShapeSpec",
    "cat",
    "get_norm",
    "nonzero_tuple",
    "shapes_to_tensor",
]

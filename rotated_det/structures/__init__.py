"""Box, instance and image-batch structures (Detectron2's names and semantics)."""

from .boxes import (
    Boxes,
    BoxMode,
    matched_pairwise_iou,
    pairwise_intersection,
    pairwise_ioa,
    pairwise_iou,
    pairwise_point_box_distance,
)
from .image_list import ImageList
from .instances import Instances
from .rotated_box_conversions import (
    ANGLE_VERSIONS,
    canonical_rbox,
    hbox_to_rbox,
    normalize_rbox_angles,
    points_to_rbox,
    poly_to_rbox,
    rbox_corner_distance,
    rbox_to_hbox,
    rbox_to_poly,
)
from .rotated_box_points import (
    cos_sin_degrees,
    point_offsets_in_box_frame,
    points_in_rotated_boxes,
)
from .rotated_boxes import RotatedBoxes
from .rotated_boxes import pairwise_iou as pairwise_iou_rotated

__all__ = [
    "ANGLE_VERSIONS",
    "BoxMode",
    "Boxes",
    "ImageList",
    "Instances",
    "RotatedBoxes",
    "canonical_rbox",
    "cos_sin_degrees",
    "hbox_to_rbox",
    "matched_pairwise_iou",
    "normalize_rbox_angles",
    "pairwise_intersection",
    "pairwise_ioa",
    "pairwise_iou",
    "pairwise_iou_rotated",
    "pairwise_point_box_distance",
    "point_offsets_in_box_frame",
    "points_in_rotated_boxes",
    "points_to_rbox",
    "poly_to_rbox",
    "rbox_corner_distance",
    "rbox_to_hbox",
    "rbox_to_poly",
]

"""Target assigners of dense detectors: which prior (point or anchor) learns which gt box."""

from .adaptive_points_assignment import AdaptivePointsAssignment
from .atss import RotatedATSSAssigner
from .center_sampling import (
    FCOS_REGRESS_RANGES,
    RotatedCenterSamplingAssigner,
    per_point_strides_and_ranges,
)
from .convex_assigner import ConvexAssigner
from .convex_hull_feature_adaptation import ConvexHullFeatureAdaptation
from .dynamic_soft_label import DynamicSoftLabelAssigner
from .max_convex_iou_assigner import MaxConvexIoUAssigner
from .sas_assigner import SASAssigner
from .shape_adaptive_measurement import ShapeAdaptiveMeasurement

__all__ = [
    "FCOS_REGRESS_RANGES",
    "AdaptivePointsAssignment",
    "ConvexAssigner",
    "ConvexHullFeatureAdaptation",
    "MaxConvexIoUAssigner",
    "SASAssigner",
    "ShapeAdaptiveMeasurement",
    "DynamicSoftLabelAssigner",
    "RotatedATSSAssigner",
    "RotatedCenterSamplingAssigner",
    "per_point_strides_and_ranges",
]

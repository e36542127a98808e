"""Target assigners of dense detectors: which prior (point or anchor) learns which gt box."""

from .atss import RotatedATSSAssigner
from .center_sampling import (
    FCOS_REGRESS_RANGES,
    RotatedCenterSamplingAssigner,
    per_point_strides_and_ranges,
)
from .dynamic_soft_label import DynamicSoftLabelAssigner

__all__ = [
    "FCOS_REGRESS_RANGES",
    "DynamicSoftLabelAssigner",
    "RotatedATSSAssigner",
    "RotatedCenterSamplingAssigner",
    "per_point_strides_and_ranges",
]

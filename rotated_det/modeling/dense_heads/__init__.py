"""Heads of the dense (one-stage) detectors."""

from .fcos_head import RotatedFCOSHead
from .feature_refine import FeatureRefineModule
from .reppoints_head import RepPointsHead
from .retinanet_head import RotatedRetinaNetHead
from .rtmdet_head import RotatedRTMDetHead
from .s2anet_head import S2ANetHead

__all__ = [
    "FeatureRefineModule",
    "RepPointsHead",
    "RotatedFCOSHead",
    "RotatedRetinaNetHead",
    "RotatedRTMDetHead",
    "S2ANetHead",
]

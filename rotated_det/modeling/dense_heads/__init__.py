"""Heads of the dense (one-stage) detectors."""

from .fcos_head import RotatedFCOSHead
from .retinanet_head import RotatedRetinaNetHead
from .s2anet_head import S2ANetHead

__all__ = ["RotatedFCOSHead", "RotatedRetinaNetHead", "S2ANetHead"]

"""Heads of the dense (one-stage) detectors."""

from .fcos_head import RotatedFCOSHead
from .retinanet_head import RotatedRetinaNetHead

__all__ = ["RotatedFCOSHead", "RotatedRetinaNetHead"]

"""Checkpointing: DetectionCheckpointer (atomic saves, resume, safe loading, conversion of
ImageNet ResNet weights, load reports)."""

from .detection_checkpoint import DetectionCheckpointer, IncompatibleCheckpointError
from .load_report import LoadReport
from .safe_load import UnsafeCheckpointError, load_checkpoint_file

__all__ = [
    "DetectionCheckpointer",
    "IncompatibleCheckpointError",
    "LoadReport",
    "UnsafeCheckpointError",
    "load_checkpoint_file",
]

"""Checkpointing: DetectionCheckpointer (atomic saves, resume, load reports)."""

from .detection_checkpoint import DetectionCheckpointer, IncompatibleCheckpointError

__all__ = ["DetectionCheckpointer", "IncompatibleCheckpointError"]

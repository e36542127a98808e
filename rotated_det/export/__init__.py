"""Export of detectors for deployment: tracing adapter, TorchScript (tracing), torch.export,
ONNX on standard operators (the numpy post-processor: ``rotated_det.export.onnx_postprocess``)."""

from .detection_matching import match_detections
from .onnx_export import OnnxExport, export_onnx
from .standard_ops import PreNMSDetector, StandardOpsMode
from .torch_export import (
    TorchExport,
    dynamic_min_size,
    export_torch_export,
    rotated_det_ops_in_exported_program,
)
from .torchscript import (
    FixedInputSize,
    TorchScriptExport,
    export_torchscript_tracing,
    rotated_det_ops_in_torchscript,
)
from .tracing_adapter import TracingAdapter, outputs_to_instances
from .verification import ResolutionCheck, check_resolution, compare_detections, other_resolution

__all__ = [
    "FixedInputSize",
    "OnnxExport",
    "PreNMSDetector",
    "ResolutionCheck",
    "StandardOpsMode",
    "TorchExport",
    "TorchScriptExport",
    "TracingAdapter",
    "check_resolution",
    "compare_detections",
    "dynamic_min_size",
    "export_onnx",
    "export_torch_export",
    "export_torchscript_tracing",
    "match_detections",
    "other_resolution",
    "outputs_to_instances",
    "rotated_det_ops_in_exported_program",
    "rotated_det_ops_in_torchscript",
]

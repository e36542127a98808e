"""ONNX export of detectors that runs in stock ONNX Runtime, OpenVINO (and other ONNX runtimes)
with no library of rotated_det loaded.

Method: :class:`PreNMSDetector` (the detector on standard operators, returning its candidates
before the final NMS) is exported with ``torch.export`` (non-strict, dynamic height and width
as in :func:`rotated_det.export.export_torch_export`), then translated by the
``torch.onnx`` dynamo exporter (``torch.onnx.export(program, dynamo=True)``, onnxscript's
torchlib) at opset :data:`DEFAULT_OPSET`. The file holds only operators of the default ONNX
domain; the export fails otherwise.

The ONNX model:

- input ``image``: float32 ``[3, H, W]``, the detector's channel order, 0-255; H and W dynamic in
  ``[min_size, max_size]`` (see :func:`rotated_det.export.dynamic_min_size`);
- outputs ``boxes`` float32 ``[M, 5]`` (cx, cy, w, h, angle in degrees counter-clockwise, input
  pixels), ``scores`` float32 ``[M]``, ``classes`` int64 ``[M]``: the candidates of the final
  class-wise rotated NMS, which :func:`rotated_det.export.onnx_postprocess.postprocess`
  finishes with the IoU threshold and detection limit stored in the file's metadata.

Two-stage detectors keep their proposal NMS in the graph as ONNX ``NonMaxSuppression`` on the
proposals' axis-aligned bounding boxes (``proposal_nms="horizontal"``), or select the best
proposals without NMS (``"topk"``); see :mod:`rotated_det.export.standard_ops`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from torch import nn

from .roi_align_rotated_grid import DEFAULT_MAX_ADAPTIVE_SAMPLES
from .standard_ops import FinalNMS, PreNMSDetector
from .torch_export import (
    _export_dynamic,
    _export_fixed_size,
    dynamic_min_size,
    rotated_det_ops_in_exported_program,
)

__all__ = ["DEFAULT_OPSET", "OnnxExport", "export_onnx", "onnx_metadata"]

logger = logging.getLogger(__name__)

# torch 2.13's torchlib is written at opset 18 (GridSample is in ONNX since opset 16,
# NonMaxSuppression since 10).
DEFAULT_OPSET = 18

INPUT_NAMES = ["image"]
OUTPUT_NAMES = ["boxes", "scores", "classes"]


@dataclass
class OnnxExport:
    """Result of :func:`export_onnx`.

    Attributes:
        path: the written ``.onnx`` file.
        opset: ONNX opset of the default domain.
        dynamic_resolution: height and width are dynamic (else fixed to the sample's).
        size_range: ``(min_size, max_size)`` of the dynamic sides (None if static).
        final_nms: the NMS the post-processor must apply (threshold, limit).
        proposal_nms: "horizontal" or "topk" for two-stage detectors, None for one-stage ones.
        input_format: channel order of the input ("BGR" or "RGB").
        metadata: the ``metadata_props`` written into the file.
        message: why dynamic export failed ("" when it did not).
        operators: sorted ONNX operator types in the graph.
    """

    path: str
    opset: int
    dynamic_resolution: bool
    size_range: tuple[int, int] | None
    final_nms: FinalNMS
    proposal_nms: str | None
    input_format: str
    metadata: dict[str, str] = field(default_factory=dict)
    message: str = ""
    operators: list[str] = field(default_factory=list)


def onnx_metadata(
    final_nms: FinalNMS, input_format: str, proposal_nms: str | None
) -> dict[str, str]:
    """The ``metadata_props`` of an exported file (read by the post-processor and runners)."""
    return {
        "rotated_det.final_nms_iou_threshold": repr(final_nms.iou_threshold),
        "rotated_det.max_detections": str(final_nms.max_detections),
        "rotated_det.input_format": input_format,
        "rotated_det.proposal_nms": proposal_nms or "",
        "rotated_det.outputs": (
            "boxes [M,5] (cx, cy, w, h, angle deg CCW, input pixels), scores [M], classes [M] "
            "before the final class-wise rotated NMS (rotated_det/export/onnx_postprocess.py)"
        ),
    }


def _operators(model) -> list[tuple[str, str]]:
    """(domain, op_type) pairs of an onnx_ir model's graph, its subgraphs and functions."""
    found: set[tuple[str, str]] = set()

    def visit(graph) -> None:
        for node in graph:
            found.add((node.domain, node.op_type))
            for attr in node.attributes.values():
                sub = attr.value
                if hasattr(sub, "__iter__") and hasattr(sub, "inputs") and hasattr(sub, "outputs"):
                    visit(sub)

    visit(model.graph)
    for fn in model.functions.values():
        visit(fn)
    return sorted(found)


def export_onnx(
    model: nn.Module,
    sample_image: torch.Tensor,
    path: str,
    *,
    proposal_nms: str = "horizontal",
    opset: int = DEFAULT_OPSET,
    dynamic: bool = True,
    min_size: int | None = None,
    max_size: int = 4096,
    max_adaptive_samples: int = DEFAULT_MAX_ADAPTIVE_SAMPLES,
    optimize: bool = True,
) -> OnnxExport:
    """Export ``model`` to ``path`` (ONNX, standard operators only, before the final NMS).

    Args:
        model: a detector following the model I/O convention (left untouched).
        sample_image: float32 ``[3, H, W]`` in the model's channel order, 0-255.
        proposal_nms: for two-stage detectors, "horizontal" (ONNX NonMaxSuppression on the
            proposals' bounding boxes) or "topk" (no proposal NMS); ignored for one-stage ones.
        opset: ONNX opset of the default domain.
        dynamic: export with dynamic height and width (falls back to the sample's size).
        min_size, max_size: range of the dynamic sides; ``min_size`` defaults to
            :func:`dynamic_min_size`.
        max_adaptive_samples: sample slots per bin side for RoIAlign with adaptive sampling.
        optimize: run onnxscript's graph optimizer (constant folding, rewrites; about a third of
            the export time). Runtimes optimise the graph again when they load it.

    Raises:
        ValueError: bad arguments, or ``proposal_nms="rotated"`` (not expressible in ONNX).
        RuntimeError: the model cannot be exported, or its graph holds a non-standard operator.
    """
    if sample_image.dim() != 3:
        raise ValueError(f"sample_image must be [C, H, W], got {tuple(sample_image.shape)}")
    if proposal_nms == "rotated":
        raise ValueError(
            "proposal_nms='rotated' runs the compiled rotated NMS, which has no ONNX operator: "
            "use 'horizontal' (NonMaxSuppression on bounding boxes) or 'topk'"
        )
    pre = PreNMSDetector(model, proposal_nms, max_adaptive_samples).eval()
    if min_size is None:
        min_size = dynamic_min_size(model)
    program, message = _export_dynamic(pre, sample_image, dynamic, min_size, max_size)
    is_dynamic = program is not None
    if program is None:
        what = f"{type(model).__name__} on standard operators"
        program = _export_fixed_size(pre, sample_image, what)
    left = rotated_det_ops_in_exported_program(program)
    if left:
        raise RuntimeError(f"compiled ops {left} are still in the exported graph")
    try:
        onnx_program = torch.onnx.export(
            program,
            dynamo=True,
            opset_version=opset,
            input_names=INPUT_NAMES,
            output_names=OUTPUT_NAMES,
            optimize=optimize,
        )
    except Exception as e:
        raise RuntimeError(
            f"torch.onnx could not translate {type(model).__name__}: {type(e).__name__}: {e}"
        ) from e
    assert onnx_program is not None
    operators = _operators(onnx_program.model)
    foreign = sorted(f"{d}::{t}" for d, t in operators if d not in ("", "ai.onnx"))
    if foreign:
        raise RuntimeError(
            f"the ONNX graph of {type(model).__name__} uses non-standard operators {foreign}: "
            "stock runtimes would need a custom-op library"
        )
    two_stage = pre.two_stage
    metadata = onnx_metadata(pre.final_nms, pre.input_format, proposal_nms if two_stage else None)
    for key, value in metadata.items():
        onnx_program.model.metadata_props[key] = value
    onnx_program.save(path, external_data=False)
    return OnnxExport(
        path=path,
        opset=opset,
        dynamic_resolution=is_dynamic,
        size_range=(min_size, max_size) if is_dynamic else None,
        final_nms=pre.final_nms,
        proposal_nms=proposal_nms if two_stage else None,
        input_format=pre.input_format,
        metadata=metadata,
        message=message,
        operators=sorted({t for _, t in operators}),
    )

"""TorchScript export of detectors by tracing.

:func:`export_torchscript_tracing` traces :class:`TracingAdapter` (image -> boxes, scores,
classes), checks that the graph calls the compiled ``rotated_det`` ops, and tries the trace at a
second resolution against the eager model:

- if it matches, the trace is returned as is and works at any input size;
- if it does not (a detector that turns image sizes into Python numbers bakes the traced size
  into the graph and silently returns wrong boxes at other sizes), the trace is wrapped in a small
  scripted module that rejects any other size with a message naming the traced size, instead of
  returning wrong detections.

The saved ``.ts`` file loads with ``torch.jit.load`` in Python (after
``torch.ops.load_library(<rotated_det/_C.so>)``) and with ``torch::jit::load`` in C++ (linking the
same library), without rotated_det installed.

TorchScript is deprecated as of torch 2.13; :mod:`rotated_det.export.torch_export` is the path that
stays supported.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .tracing_adapter import _inference_copy
from .verification import ResolutionCheck, check_resolution, other_resolution

__all__ = [
    "FixedInputSize",
    "TorchScriptExport",
    "export_torchscript_tracing",
    "rotated_det_ops_in_torchscript",
]

logger = logging.getLogger(__name__)


class FixedInputSize(nn.Module):
    """Runs a traced detector only on inputs of the size it was traced at.

    Scripted around the trace, so the check also runs in C++; the error names the expected and
    the given sizes.
    """

    def __init__(self, traced: torch.jit.ScriptModule, channels: int, height: int, width: int):
        super().__init__()
        self.traced = traced
        self.channels = channels
        self.height = height
        self.width = width

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if (
            image.dim() != 3
            or image.size(0) != self.channels
            or image.size(1) != self.height
            or image.size(2) != self.width
        ):
            raise RuntimeError(
                f"this model was traced at input size [{self.channels}, {self.height}, "
                f"{self.width}] (C, H, W) and only runs at that size: its graph holds the traced "
                f"size as constants. Resize the image to H={self.height} W={self.width} (and "
                f"scale the boxes back), or export again at your resolution. Got {image.shape}."
            )
        return self.traced(image)


@dataclass
class TorchScriptExport:
    """Result of :func:`export_torchscript_tracing`.

    Attributes:
        module: the ScriptModule to save (the trace, or the trace wrapped in FixedInputSize).
        traced_size: (height, width) of the sample image.
        dynamic_resolution: the trace matched the eager model at every checked resolution.
        resolution_checks: one per checked resolution.
        ops: names of the ``rotated_det::`` ops in the graph.
    """

    module: torch.jit.ScriptModule
    traced_size: tuple[int, int]
    dynamic_resolution: bool
    resolution_checks: list[ResolutionCheck] = field(default_factory=list)
    ops: list[str] = field(default_factory=list)


def rotated_det_ops_in_torchscript(module: torch.jit.ScriptModule) -> list[str]:
    """Sorted names of the ``rotated_det::*`` ops called anywhere in a ScriptModule's graph."""
    # graphs, and blocks of nodes (if/loop bodies): both list their nodes with .nodes()
    graphs: list[Any] = (
        [module.inlined_graph] if hasattr(module, "inlined_graph") else [module.graph]
    )
    found = set()
    while graphs:
        g = graphs.pop()
        for node in g.nodes():
            if node.kind().startswith("rotated_det::"):
                found.add(node.kind())
            graphs.extend(node.blocks())
    return sorted(found)


def export_torchscript_tracing(
    model: nn.Module,
    sample_image: torch.Tensor,
    check_images: list[torch.Tensor] | None = None,
    require_rotated_ops: bool = True,
) -> TorchScriptExport:
    """Trace ``model`` (eval mode) on ``sample_image`` (float32 [C, H, W], model channel order).

    Args:
        check_images: images at other resolutions to verify the trace on; default one image
            resized from the sample to :func:`other_resolution`.
        require_rotated_ops: raise if the graph calls no ``rotated_det::`` op (every detector of
            this repository does: NMS at least).
    """
    if sample_image.dim() != 3:
        raise ValueError(f"sample_image must be [C, H, W], got {tuple(sample_image.shape)}")
    model.eval()
    adapter = _inference_copy(model)
    c, h, w = (int(v) for v in sample_image.shape)
    with torch.no_grad(), warnings.catch_warnings():
        # Tracer warnings (python values in the graph) are what the resolution check measures.
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        traced = torch.jit.trace(adapter, (sample_image,), check_trace=False)
    ops = rotated_det_ops_in_torchscript(traced)
    if require_rotated_ops and not ops:
        raise RuntimeError(
            "the traced graph calls no torch.ops.rotated_det op: the model's rotated ops were "
            "not traced (are they called through torch.ops.rotated_det?)"
        )
    with torch.no_grad():
        same = check_resolution(traced, model, sample_image)
    if not same.ok:
        raise RuntimeError(f"the trace does not reproduce the model at the traced size: {same}")
    if check_images is None:
        oh, ow = other_resolution(h, w)
        check_images = [
            torch.nn.functional.interpolate(
                sample_image[None], size=(oh, ow), mode="bilinear", align_corners=False
            )[0]
        ]
    checks = [check_resolution(traced, model, img) for img in check_images]
    dynamic = all(ch.ok for ch in checks)
    module: torch.jit.ScriptModule = traced
    if not dynamic:
        for ch in checks:
            logger.warning(
                "The trace at %dx%d does not reproduce the model at %dx%d (%s); the exported "
                "model is restricted to %dx%d inputs.",
                h, w, ch.size[0], ch.size[1], ch.message, h, w,
            )  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=DeprecationWarning)
            module = torch.jit.script(FixedInputSize(traced, c, h, w))
    return TorchScriptExport(module, (h, w), dynamic, checks, ops)

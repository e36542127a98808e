"""``torch.export`` (ExportedProgram, ``.pt2``) of detectors: the export path that stays supported
after TorchScript.

The program is exported from :class:`TracingAdapter` with the image's height and width declared
dynamic (``torch.export.Dim``), so one program serves every resolution in
``[min_size, max_size]``. ``min_size`` defaults to one more than the backbone's largest feature
stride: torch.export specialises dimensions of size 1, so every feature map must be at least 2
pixels high and wide (129 for a P3-P7 RetinaNet, 65 for a P2-P6 FPN). The program rejects sizes
outside the range with torch.export's guard error ("Guard failed: image.size()[1] >= 129").
When a model cannot be exported with dynamic sizes it is exported for the sample's size, and the
program rejects other sizes the same way. The compiled ops carry fake (meta) implementations
(``rotated_det.layers.ops_library``), which torch.export uses to propagate shapes, including the
data-dependent number of boxes NMS keeps.

Load in a fresh process with ``torch.ops.load_library(<rotated_det/_C.so>)`` and
``torch.export.load(path).module()``.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field

import torch
from torch import nn

from rotated_det.layers import set_weight_memory_format

from .tracing_adapter import _inference_copy
from .verification import ResolutionCheck, check_resolution, other_resolution

__all__ = [
    "TorchExport",
    "dynamic_min_size",
    "export_torch_export",
    "rotated_det_ops_in_exported_program",
]

logger = logging.getLogger(__name__)


@dataclass
class TorchExport:
    """Result of :func:`export_torch_export`.

    Attributes:
        program: the ExportedProgram (save with ``torch.export.save``).
        dynamic_resolution: height and width are dynamic dimensions of the program.
        ops: names of the ``rotated_det`` ops in the graph.
        message: why dynamic export failed ("" when it did not).
        size_range: ``(min_size, max_size)`` of the dynamic height and width (None if static).
        resolution_checks: the dynamic program's detections against the eager model's at other
            resolutions (a failed check makes the export fall back to the sample's size).
    """

    program: torch.export.ExportedProgram
    dynamic_resolution: bool
    ops: list[str]
    message: str = ""
    size_range: tuple[int, int] | None = None
    resolution_checks: list[ResolutionCheck] = field(default_factory=list)


def dynamic_min_size(model: nn.Module, default: int = 64) -> int:
    """Smallest height/width a dynamic export of ``model`` can accept: one more than the
    largest stride of ``model.backbone.output_shape()`` (so that the coarsest feature map is at
    least 2 x 2; torch.export specialises dimensions of size 1), or ``default`` for a model
    without such a backbone."""
    backbone = getattr(model, "backbone", None)
    output_shape = getattr(backbone, "output_shape", None)
    if not callable(output_shape):
        return default
    strides = [s.stride for s in output_shape().values() if getattr(s, "stride", None)]
    return max(strides) + 1 if strides else default


def _explain(error: Exception) -> str:
    """The gist of a torch.export failure: its first line and the user code that caused it."""
    text = str(error)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    gist = f"{type(error).__name__}: {lines[0].strip() if lines else ''}"
    marker = "The following call raised this error:"
    if marker in text:
        tail = [ln.strip() for ln in text.split(marker, 1)[1].splitlines() if ln.strip()]
        gist += " -- raised at " + " ".join(tail[:2])
    else:
        for ln in lines:
            if "Caused by:" in ln:
                gist += " -- " + ln.strip()
                break
    return (
        gist + ". Data-dependent Python control flow (if on a tensor value, len() of a "
        "data-dependent size) must be written with torch._check / guard_or_false to be exported."
    )


def rotated_det_ops_in_exported_program(program: torch.export.ExportedProgram) -> list[str]:
    """Sorted names (``rotated_det::op``) of the compiled ops an ExportedProgram calls."""
    found = set()
    for module in program.graph_module.modules():
        if not isinstance(module, torch.fx.GraphModule):
            continue
        for node in module.graph.nodes:
            if node.op != "call_function":
                continue
            name = getattr(node.target, "name", None)
            name = name() if callable(name) else str(node.target)
            if name.startswith("rotated_det::"):
                found.add(name.split(".")[0])
    return sorted(found)


def _with_contiguous_weights(module: nn.Module) -> nn.Module:
    """``module``, or a copy of it with contiguous 4-d weights if some are channels-last (as
    DefaultPredictor stores them on a CPU): with channels-last weights torch.export guards the
    feature maps' strides on the image width (``1 % (256 * ((31 + W) // 32)) != 0``), and the
    dynamic-size export of e.g. Rotated RetinaNet, R3Det and SASM failed."""
    tensors = [*module.parameters(), *module.buffers()]
    if all(t.dim() != 4 or t.is_contiguous() for t in tensors):
        return module
    module = copy.deepcopy(module)
    set_weight_memory_format(module, torch.contiguous_format)
    return module


def _export_program(
    module: nn.Module, sample: torch.Tensor, dims: dict | None
) -> torch.export.ExportedProgram:
    """``torch.export`` (non-strict, no grad) of ``module`` (with contiguous weights) on one
    image [C, H, W]; ``dims``: the dynamic shapes of its input ``image``, None for the sample's
    size."""
    module = _with_contiguous_weights(module)
    with torch.no_grad():
        return torch.export.export(module, (sample,), dynamic_shapes=dims, strict=False)


def _export_fixed_size(
    module: nn.Module, sample: torch.Tensor, what: str
) -> torch.export.ExportedProgram:
    """``torch.export`` of ``module`` for the size of ``sample`` [C, H, W].

    Raises:
        RuntimeError: the export failed; the message names ``what`` and the cause.
    """
    try:
        return _export_program(module, sample, None)
    except Exception as e:
        raise RuntimeError(f"torch.export could not export {what}: {_explain(e)}") from e


def _export_dynamic(
    module: nn.Module, sample: torch.Tensor, dynamic: bool, min_size: int, max_size: int
) -> tuple[torch.export.ExportedProgram | None, str]:
    """Export ``module`` with dynamic height and width in ``[min_size, max_size]`` pixels.

    Returns:
        ``(program, "")``, or ``(None, why)`` (logged as a warning) when the sample [C, H, W]
        lies outside the range or the export fails; ``(None, "")`` when ``dynamic`` is False.
        The caller then exports for the sample's size.
    """
    if not dynamic:
        return None, ""
    h, w = (int(v) for v in sample.shape[1:])
    if not (min_size <= h <= max_size and min_size <= w <= max_size):
        message = (
            f"the sample image is {h} x {w} but dynamic sizes must lie in [{min_size}, "
            f"{max_size}] (min_size: every feature map of the backbone at least 2 x 2)"
        )
        logger.warning("%s; exporting for the sample's size only.", message)
        return None, message
    dims = {
        "image": {
            1: torch.export.Dim("height", min=min_size, max=max_size),
            2: torch.export.Dim("width", min=min_size, max=max_size),
        }
    }
    try:
        return _export_program(module, sample, dims), ""
    except Exception as e:  # noqa: BLE001 - any export failure falls back to static sizes
        message = _explain(e)
        logger.warning(
            "torch.export with dynamic height/width failed (%s); exporting for the sample's "
            "size %s only.",
            message,
            (h, w),
        )
        return None, message


def export_torch_export(
    model: nn.Module,
    sample_image: torch.Tensor,
    dynamic: bool = True,
    min_size: int | None = None,
    max_size: int = 4096,
    require_rotated_ops: bool = True,
    check_images: list[torch.Tensor] | None = None,
) -> TorchExport:
    """Export ``model`` (eval mode) with ``torch.export`` on ``sample_image`` ([C, H, W] float32).

    Args:
        dynamic: try dynamic height/width first (falls back to the sample's size).
        min_size, max_size: range of the dynamic height and width; ``min_size`` defaults to
            :func:`dynamic_min_size`. The sample must lie in the range.
        require_rotated_ops: raise if the program calls no ``rotated_det`` op.
        check_images: for a dynamic program, images at other resolutions to compare with the
            eager model (``resolution_checks``); default one image resized from the sample to
            :func:`other_resolution` (within the range). Pass ``[]`` to skip.
    """
    if sample_image.dim() != 3:
        raise ValueError(f"sample_image must be [C, H, W], got {tuple(sample_image.shape)}")
    model.eval()
    adapter = _inference_copy(model)
    if min_size is None:
        min_size = dynamic_min_size(model)
    h, w = (int(v) for v in sample_image.shape[1:])
    program, message = _export_dynamic(adapter, sample_image, dynamic, min_size, max_size)
    checks: list[ResolutionCheck] = []
    if program is not None:
        if check_images is None:
            oh, ow = (max(min_size, v) for v in other_resolution(h, w))
            check_images = [
                torch.nn.functional.interpolate(
                    sample_image[None], size=(oh, ow), mode="bilinear", align_corners=False
                )[0]
            ]
        module = program.module()
        checks = [check_resolution(module, model, img) for img in check_images]
        failed = [ch for ch in checks if not ch.ok]
        if failed:  # wrong detections at another size: a fixed-size program refuses instead
            message = "; ".join(f"at {c.size[0]}x{c.size[1]}: {c.message}" for c in failed)
            logger.warning(
                "The dynamic program does not reproduce the model (%s); exporting for the "
                "sample's size %s only.",
                message,
                (h, w),
            )
            program = None
    is_dynamic = program is not None
    if program is None:
        program = _export_fixed_size(adapter, sample_image, type(model).__name__)
    ops = rotated_det_ops_in_exported_program(program)
    if require_rotated_ops and not ops:
        raise RuntimeError("the exported program calls no torch.ops.rotated_det op")
    size_range = (min_size, max_size) if is_dynamic else None
    return TorchExport(program, is_dynamic, ops, message, size_range, checks)

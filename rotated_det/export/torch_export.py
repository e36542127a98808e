"""``torch.export`` (ExportedProgram, ``.pt2``) of detectors: the export path that stays supported
after TorchScript.

The program is exported from :class:`TracingAdapter` with the image's height and width declared
dynamic (``torch.export.Dim``), so one program serves every resolution in
``[min_size, max_size]``; when the model cannot be exported with dynamic sizes it is exported for
the sample's size, and the program itself rejects other sizes with torch.export's guard error
("Expected input at *args[0].shape[1] to be equal to H, but got ..."). The compiled ops carry
fake (meta) implementations (``rotated_det.layers.ops_library``), which torch.export uses to
propagate shapes, including the data-dependent number of boxes NMS keeps.

Load in a fresh process with ``torch.ops.load_library(<rotated_det/_C.so>)`` and
``torch.export.load(path).module()``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.fx.experimental.symbolic_shapes import guard_or_false

from rotated_det.structures import Instances, RotatedBoxes

from .tracing_adapter import _inference_copy

__all__ = ["TorchExport", "export_torch_export", "rotated_det_ops_in_exported_program"]

logger = logging.getLogger(__name__)


@dataclass
class TorchExport:
    """Result of :func:`export_torch_export`.

    Attributes:
        program: the ExportedProgram (save with ``torch.export.save``).
        dynamic_resolution: height and width are dynamic dimensions of the program.
        ops: names of the ``rotated_det`` ops in the graph.
        message: why dynamic export failed ("" when it did not).
    """

    program: torch.export.ExportedProgram
    dynamic_resolution: bool
    ops: list[str]
    message: str = ""


def _rows(value) -> int | torch.SymInt:
    """Row count without ``len()`` (which must return a Python int and so cannot carry a
    data-dependent size)."""
    if isinstance(value, torch.Tensor):
        return value.shape[0]
    tensor = getattr(value, "tensor", None)
    if isinstance(tensor, torch.Tensor):
        return tensor.shape[0]
    return len(value)


@contextlib.contextmanager
def _export_friendly_structures() -> Iterator[None]:
    """Makes ``RotatedBoxes`` and ``Instances`` traceable with data-dependent numbers of rows.

    Detectors end with NMS, whose output size is data-dependent (an "unbacked" symbol ``u0`` for
    torch.export), and wrap the result in ``RotatedBoxes`` and ``Instances``. Two checks there
    cannot be traced: ``RotatedBoxes.__init__``'s ``if tensor.numel() == 0`` (undecidable for
    ``u0``) and ``Instances.set``'s ``len(value)`` (``len`` must return a concrete int). During
    export they are replaced by equivalents: the emptiness test by ``guard_or_false`` (an
    ``[N, 5]`` tensor needs no reshape whatever N is), the length check by ``torch._check`` (a
    runtime assertion in the exported program instead of a Python-time comparison). Both methods
    are restored on exit. (The lasting fix belongs in rotated_det.structures.)
    """
    original_init = RotatedBoxes.__init__
    original_set = Instances.set

    def rotated_boxes_init(self, tensor):
        if isinstance(tensor, torch.Tensor) and tensor.dim() == 2 and tensor.shape[-1] == 5:
            if not guard_or_false(tensor.numel() == 0):
                self.tensor = tensor.to(torch.float32)
                return
        original_init(self, tensor)

    def instances_set(self, name, value):
        fields = self.get_fields()
        if fields:
            n, m = _rows(value), _rows(next(iter(fields.values())))
            torch._check(n == m, lambda: f"Instances: field '{name}' has {n} rows, the others {m}")
        fields[name] = value

    RotatedBoxes.__init__ = rotated_boxes_init
    Instances.set = instances_set
    try:
        yield
    finally:
        RotatedBoxes.__init__ = original_init
        Instances.set = original_set


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


def export_torch_export(
    model: nn.Module,
    sample_image: torch.Tensor,
    dynamic: bool = True,
    min_size: int = 64,
    max_size: int = 4096,
    require_rotated_ops: bool = True,
) -> TorchExport:
    """Export ``model`` (eval mode) with ``torch.export`` on ``sample_image`` ([C, H, W] float32).

    Args:
        dynamic: try dynamic height/width first (falls back to the sample's size).
        min_size, max_size: range of the dynamic height and width.
        require_rotated_ops: raise if the program calls no ``rotated_det`` op.
    """
    if sample_image.dim() != 3:
        raise ValueError(f"sample_image must be [C, H, W], got {tuple(sample_image.shape)}")
    model.eval()
    adapter = _inference_copy(model)
    program, message = None, ""
    if dynamic:
        dims = {
            "image": {
                1: torch.export.Dim("height", min=min_size, max=max_size),
                2: torch.export.Dim("width", min=min_size, max=max_size),
            }
        }
        try:
            with torch.no_grad(), _export_friendly_structures():
                program = torch.export.export(
                    adapter, (sample_image,), dynamic_shapes=dims, strict=False
                )
        except Exception as e:  # noqa: BLE001 - any export failure falls back to static sizes
            message = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e) else ''}"
            logger.warning(
                "torch.export with dynamic height/width failed (%s); exporting for the sample's "
                "size %s only.",
                message,
                tuple(sample_image.shape[1:]),
            )
    is_dynamic = program is not None
    if program is None:
        try:
            with torch.no_grad(), _export_friendly_structures():
                program = torch.export.export(adapter, (sample_image,), strict=False)
        except Exception as e:
            raise RuntimeError(
                f"torch.export could not export {type(model).__name__}: {_explain(e)}"
            ) from e
    ops = rotated_det_ops_in_exported_program(program)
    if require_rotated_ops and not ops:
        raise RuntimeError("the exported program calls no torch.ops.rotated_det op")
    return TorchExport(program, is_dynamic, ops, message)

"""AOTInductor packages (``.pt2``) of detectors: compiled ahead of time, loadable from C++.

The detector is exported with :func:`rotated_det.export.export_torch_export` (dynamic height and
width when the model allows it, else the sample's size) and compiled by
``torch._inductor.aoti_compile_and_package`` into one ``.pt2`` archive that holds a shared
library (the graph as generated C++ kernels, the weights embedded) and the metadata below.

The rotated_det ops are not compiled into the package: Inductor leaves custom ops as *extern
kernels* that the package calls through the dispatcher by name (its proxy executor reads them
from the archive's ``*.wrapper.json``). The process that loads the package must therefore have
registered ``torch.ops.rotated_det`` first: in Python with
``torch.ops.load_library(<rotated_det/_C.so>)`` (:func:`load_aoti_package` does it), in C++ by
linking or ``dlopen``-ing the library (tools/deploy/torchscript_rotated_det.cpp).

The package's metadata (``AOTIModelPackageLoader::get_metadata()`` in C++,
``torch._inductor.aoti_load_package(p).get_metadata()`` in Python) holds:

- ``rotated_det.ops``: comma-separated ``rotated_det::op`` names the graph calls;
- ``rotated_det.dynamic_resolution``: ``"1"`` or ``"0"``;
- ``rotated_det.size_range``: ``"min,max"`` pixels a side accepted when dynamic, else ``""``;
- ``rotated_det.traced_size``: ``"H,W"`` of the sample image.

Workaround (torch 2.13): Inductor lowers a reshape between shapes with a data-dependent
("unbacked") dimension, such as ``[u0, 75] -> [15 * u0, 5]`` after boolean-mask indexing, with
wrong index arithmetic when the two shapes do not line up dimension by dimension: its indexer
merges new dimensions past the old one and then records ``u0 == 1``, so later reads drop the
``15 * row`` term (Rotated Faster R-CNN's per-class box gather returned one box per class).
Reshaping through the flat shape (``[u0, 75] -> [-1] -> [15 * u0, 5]``) is lowered correctly,
so :func:`flatten_unbacked_reshapes` rewrites such reshapes of the program before compiling.

Numerics: Inductor generates its own kernels (fused element-wise code, its own convolution
weight layouts and summation orders), so a package's outputs are not bit-identical to the eager
model's. On the small random-weight detectors of the tests (ResNet-18, boxes up to 2000 pixels)
scores differed by up to 1.3e-3 and box corners by up to 1e-4 relative, in the same order;
:func:`compare_aoti_detections` accepts differences up to ``AOTI_SCORE_ATOL`` and
``AOTI_BOX_RTOL`` (about four times those), in any order.

The compiled program does not check the size of its input (Inductor's checks run only with
``AOTI_RUNTIME_CHECK_INPUTS=1``): :class:`AOTIDetector` (and the C++ runner) check it against the
metadata.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rotated_det.layers.ops_library import library_path

from .torch_export import TorchExport, export_torch_export

__all__ = [
    "AOTI_BOX_RTOL",
    "AOTI_SCORE_ATOL",
    "AOTIDetector",
    "AOTIExport",
    "compare_aoti_detections",
    "export_aoti",
    "flatten_unbacked_reshapes",
    "load_aoti_package",
    "package_metadata",
]

logger = logging.getLogger(__name__)

# Tolerances of a package against the eager model (see "Numerics" above): box corners within
# AOTI_BOX_RTOL * max(1, |coordinate|) pixels, scores within AOTI_SCORE_ATOL.
AOTI_BOX_RTOL = 5e-3
AOTI_SCORE_ATOL = 5e-3


def compare_aoti_detections(
    actual: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    expected: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> str | None:
    """None if a package's ``(boxes [N, 5], scores [N], classes [N])`` agree one to one with the
    eager model's within ``AOTI_BOX_RTOL`` / ``AOTI_SCORE_ATOL`` (any order, same classes), else
    what differs."""
    from .detection_matching import match_detections

    def numpy(dets):
        return tuple(t.detach().cpu().numpy() for t in dets)

    return match_detections(
        numpy(actual), numpy(expected), box_rtol=AOTI_BOX_RTOL, score_atol=AOTI_SCORE_ATOL
    )


@dataclass
class AOTIExport:
    """Result of :func:`export_aoti`.

    Attributes:
        package_path: the written ``.pt2`` package.
        exported: the torch.export result the package was compiled from.
        metadata: the ``rotated_det.*`` entries written into the package's metadata.
        compile_seconds: wall time of ``aoti_compile_and_package``.
    """

    package_path: str
    exported: TorchExport
    metadata: dict[str, str]
    compile_seconds: float

    @property
    def dynamic_resolution(self) -> bool:
        return self.exported.dynamic_resolution

    @property
    def ops(self) -> list[str]:
        return self.exported.ops

    @property
    def size_range(self) -> tuple[int, int] | None:
        return self.exported.size_range


def package_metadata(exported: TorchExport, sample_image: torch.Tensor) -> dict[str, str]:
    """The ``rotated_det.*`` metadata entries (strings) of a package compiled from ``exported``,
    exported on ``sample_image`` [C, H, W]."""
    lo_hi = exported.size_range
    return {
        "rotated_det.ops": ",".join(exported.ops),
        "rotated_det.dynamic_resolution": "1" if exported.dynamic_resolution else "0",
        "rotated_det.size_range": f"{lo_hi[0]},{lo_hi[1]}" if lo_hi else "",
        "rotated_det.traced_size": f"{int(sample_image.shape[1])},{int(sample_image.shape[2])}",
    }


_RESHAPES = (
    torch.ops.aten.view.default,
    torch.ops.aten.reshape.default,
    torch.ops.aten._unsafe_view.default,
)


def flatten_unbacked_reshapes(program: torch.export.ExportedProgram) -> int:
    """Rewrite, in place, each reshape of ``program`` between shapes of two or more dimensions
    with a data-dependent size as a reshape to one dimension and a reshape to the target shape
    (same values; works around the Inductor indexing error described in the module docstring).

    Returns:
        The number of reshapes rewritten.
    """
    from torch.fx.experimental.symbolic_shapes import free_unbacked_symbols

    rewritten = 0
    for module in program.graph_module.modules():
        if not isinstance(module, torch.fx.GraphModule):
            continue
        graph = module.graph
        for node in list(graph.nodes):
            if node.op != "call_function" or node.target not in _RESHAPES:
                continue
            source, out = node.args[0].meta.get("val"), node.meta.get("val")
            if source is None or out is None or source.dim() < 2 or out.dim() < 2:
                continue
            if not (free_unbacked_symbols(source.shape) or free_unbacked_symbols(out.shape)):
                continue
            with graph.inserting_before(node):
                flat = graph.call_function(node.target, (node.args[0], [-1]))
            flat.meta["val"] = source.reshape(-1)
            node.args = (flat, *node.args[1:])
            rewritten += 1
        module.recompile()
    return rewritten


def export_aoti(
    model: nn.Module,
    sample_image: torch.Tensor,
    package_path: str,
    dynamic: bool = True,
    min_size: int | None = None,
    max_size: int = 4096,
    inductor_configs: dict[str, Any] | None = None,
    exported: TorchExport | None = None,
) -> AOTIExport:
    """Export ``model`` (eval mode) with torch.export and compile it into an AOTInductor package.

    Args:
        model: a detector following the model I/O convention.
        sample_image: float32 [C, H, W], 0-255, the model's channel order, at the resolution the
            model runs at (the test-time resize already done).
        package_path: where to write the package; must end with ``.pt2``.
        dynamic, min_size, max_size: as in :func:`export_torch_export` (dynamic height and width
            in ``[min_size, max_size]`` pixels, falling back to the sample's size).
        inductor_configs: extra ``torch._inductor`` settings for the compilation (e.g.
            ``{"aot_inductor.compile_wrapper_opt_level": "O0"}``); the package metadata is added.
        exported: a torch.export result of this model on ``sample_image`` to compile instead of
            exporting again.

    Returns:
        :class:`AOTIExport`. Load the package with :func:`load_aoti_package`.
    """
    if not str(package_path).endswith(".pt2"):
        raise ValueError(f"package_path must end with .pt2, got {package_path!r}")
    if exported is None:
        exported = export_torch_export(
            model, sample_image, dynamic=dynamic, min_size=min_size, max_size=max_size
        )
    rewritten = flatten_unbacked_reshapes(exported.program)
    if rewritten:
        logger.info("Rewrote %d reshapes with data-dependent sizes through 1-d", rewritten)
    metadata = package_metadata(exported, sample_image)
    configs = dict(inductor_configs or {})
    configs["aot_inductor.metadata"] = {**configs.get("aot_inductor.metadata", {}), **metadata}
    os.makedirs(os.path.dirname(os.path.abspath(package_path)), exist_ok=True)
    start = time.perf_counter()
    with torch.no_grad():
        path = torch._inductor.aoti_compile_and_package(
            exported.program, package_path=package_path, inductor_configs=configs
        )
    seconds = time.perf_counter() - start
    logger.info("AOTInductor package %s compiled in %.1f s", path, seconds)
    return AOTIExport(str(path), exported, metadata, seconds)


class AOTIDetector:
    """A loaded AOTInductor package of a detector: ``detector(image)`` with ``image`` float32
    [3, H, W] returns ``(boxes [N, 5], scores [N], classes [N])`` as the eager detector through
    ``TracingAdapter``.

    The compiled program does not check its input's size (Inductor's input checks run only with
    ``AOTI_RUNTIME_CHECK_INPUTS=1``), so the size is checked here against the package metadata:
    a fixed-size package refuses other sizes, a dynamic one sizes outside its range, with a
    ``ValueError`` that names the accepted size.

    Attributes:
        metadata: the package's metadata (``rotated_det.*`` entries: see the module docstring).
    """

    def __init__(self, compiled: Any):
        self.compiled = compiled
        self.metadata: dict[str, str] = dict(compiled.get_metadata())
        self.dynamic_resolution = self.metadata.get("rotated_det.dynamic_resolution") == "1"
        lo_hi = self.metadata.get("rotated_det.size_range", "")
        self.size_range = tuple(int(v) for v in lo_hi.split(",")) if lo_hi else None
        traced = self.metadata.get("rotated_det.traced_size", "")
        self.traced_size = tuple(int(v) for v in traced.split(",")) if traced else None

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if image.dim() != 3:
            raise ValueError(f"image must be float32 [3, H, W], got shape {tuple(image.shape)}")
        h, w = int(image.shape[1]), int(image.shape[2])
        if self.dynamic_resolution and self.size_range:
            lo, hi = self.size_range
            if not (lo <= min(h, w) and max(h, w) <= hi):
                raise ValueError(
                    f"the AOTInductor package accepts sides in [{lo}, {hi}] pixels, got {h} x {w}"
                )
        elif not self.dynamic_resolution and self.traced_size and (h, w) != self.traced_size:
            th, tw = self.traced_size
            raise ValueError(
                f"the AOTInductor package was compiled for input size 3 x {th} x {tw} only, got "
                f"3 x {h} x {w}"
            )
        boxes, scores, classes = self.compiled(image.contiguous())
        return boxes, scores, classes


def load_aoti_package(package_path: str, ops_library: str | None = None) -> AOTIDetector:
    """Load an AOTInductor package after registering the rotated_det ops it calls.

    Args:
        package_path: a ``.pt2`` written by :func:`export_aoti` (or ``export_model.py --format
            aoti``).
        ops_library: the compiled ops library; default this checkout's ``rotated_det/_C.so``.

    Returns:
        An :class:`AOTIDetector`.
    """
    if not os.path.isfile(package_path):
        raise FileNotFoundError(f"AOTInductor package not found: {package_path}")
    torch.ops.load_library(ops_library or library_path())
    return AOTIDetector(torch._inductor.aoti_load_package(package_path))

"""Loads the compiled operators (``rotated_det/_C*.so``) and registers their Python-side parts.

The shared library only holds ``TORCH_LIBRARY(rotated_det, ...)`` registrations (no Python
bindings), so it is loaded with :func:`torch.ops.load_library`; the ops are then
``torch.ops.rotated_det.{box_iou_rotated, nms_rotated, batched_nms_rotated,
roi_align_rotated_forward, roi_align_rotated_backward, ri_roi_align_rotated_forward,
ri_roi_align_rotated_backward, min_area_rect_pair, convex_overlaps}``.

This module also registers, for each op, a fake (meta) implementation used by ``torch.export`` /
``torch.compile`` to infer output shapes, and the autograd formulas of ``roi_align_rotated_forward``
and ``ri_roi_align_rotated_forward``.
"""

import glob
import os
from typing import Any

import torch

__all__ = ["load_library", "library_path", "has_kernel"]

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_loaded = False
# (op name, dispatch key) -> whether the op has a kernel for it (filled on first use)
_kernels: dict[tuple[str, str], bool] = {}


def library_path() -> str:
    """Path of the compiled ops library next to the package (``rotated_det/_C*.so``)."""
    found = sorted(glob.glob(os.path.join(_PACKAGE_DIR, "_C*.so")))
    if not found:
        raise ImportError(
            f"rotated_det's compiled ops were not found in {_PACKAGE_DIR} (expected _C.so). "
            "Build them with `pip install --no-build-isolation -e .` from the repository root "
            "(or `bash dev/setup_env.sh`)."
        )
    return found[0]


# Fake (meta) kernels: output shapes and dtypes from the input shapes, for torch.export and
# torch.compile.
def _box_iou_rotated_fake(
    boxes1: torch.Tensor, boxes2: torch.Tensor, mode: int = 0, aligned: bool = False
) -> torch.Tensor:
    if aligned:
        return boxes1.new_empty((boxes1.shape[0],))
    return boxes1.new_empty((boxes1.shape[0], boxes2.shape[0]))


def _nms_rotated_fake(
    dets: torch.Tensor, scores: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    n = torch.library.get_ctx().new_dynamic_size()
    return dets.new_empty((n,), dtype=torch.int64)


def _batched_nms_rotated_fake(
    dets: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    n = torch.library.get_ctx().new_dynamic_size()
    return dets.new_empty((n,), dtype=torch.int64)


def _roi_align_rotated_forward_fake(
    input: torch.Tensor,
    rois: torch.Tensor,
    spatial_scale: float,
    pooled_height: int,
    pooled_width: int,
    sampling_ratio: int,
) -> torch.Tensor:
    return input.new_empty((rois.shape[0], input.shape[1], pooled_height, pooled_width))


def _roi_align_rotated_backward_fake(
    grad: torch.Tensor,
    rois: torch.Tensor,
    spatial_scale: float,
    pooled_height: int,
    pooled_width: int,
    batch_size: int,
    channels: int,
    height: int,
    width: int,
    sampling_ratio: int,
) -> torch.Tensor:
    return grad.new_empty((batch_size, channels, height, width))


def _ri_roi_align_rotated_forward_fake(
    input: torch.Tensor,
    rois: torch.Tensor,
    spatial_scale: float,
    pooled_height: int,
    pooled_width: int,
    sampling_ratio: int,
    num_orientations: int,
    clockwise: bool,
) -> torch.Tensor:
    return input.new_empty((rois.shape[0], input.shape[1], pooled_height, pooled_width))


def _ri_roi_align_rotated_backward_fake(
    grad: torch.Tensor,
    rois: torch.Tensor,
    spatial_scale: float,
    pooled_height: int,
    pooled_width: int,
    batch_size: int,
    channels: int,
    height: int,
    width: int,
    sampling_ratio: int,
    num_orientations: int,
    clockwise: bool,
) -> torch.Tensor:
    return grad.new_empty((batch_size, channels, height, width))


def _min_area_rect_pair_fake(points: torch.Tensor, tol: float) -> torch.Tensor:
    return points.new_empty((points.shape[0], 2), dtype=torch.int64)


def _convex_overlaps_fake(
    points: torch.Tensor, polygons: torch.Tensor, aligned: bool = False
) -> torch.Tensor:
    if aligned:
        return points.new_empty((points.shape[0],))
    return points.new_empty((points.shape[0], polygons.shape[0]))


# Autograd of roi_align_rotated_forward: the gradient of the input is the backward op's output.
def _roi_align_setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio = inputs
    ctx.save_for_backward(rois)
    ctx.args = (spatial_scale, pooled_height, pooled_width, sampling_ratio)
    ctx.input_shape = input.shape


def _roi_align_backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
    (rois,) = ctx.saved_tensors
    spatial_scale, pooled_height, pooled_width, sampling_ratio = ctx.args
    n, c, h, w = ctx.input_shape
    grad_input = torch.ops.rotated_det.roi_align_rotated_backward(
        grad, rois, spatial_scale, pooled_height, pooled_width, n, c, h, w, sampling_ratio
    )
    return grad_input, None, None, None, None, None


# Autograd of ri_roi_align_rotated_forward, likewise.
def _ri_roi_align_setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, n, clockwise = inputs
    ctx.save_for_backward(rois)
    ctx.args = (spatial_scale, pooled_height, pooled_width, sampling_ratio, n, clockwise)
    ctx.input_shape = input.shape


def _ri_roi_align_backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
    (rois,) = ctx.saved_tensors
    spatial_scale, pooled_height, pooled_width, sampling_ratio, n, clockwise = ctx.args
    batch, c, h, w = ctx.input_shape
    grad_input = torch.ops.rotated_det.ri_roi_align_rotated_backward(
        grad,
        rois,
        spatial_scale,
        pooled_height,
        pooled_width,
        batch,
        c,
        h,
        w,
        sampling_ratio,
        n,
        clockwise,
    )
    return grad_input, None, None, None, None, None, None, None


def _register_python_parts() -> None:
    lib = "rotated_det::"
    torch.library.register_fake(lib + "box_iou_rotated", _box_iou_rotated_fake)
    torch.library.register_fake(lib + "nms_rotated", _nms_rotated_fake)
    torch.library.register_fake(lib + "batched_nms_rotated", _batched_nms_rotated_fake)
    torch.library.register_fake(lib + "roi_align_rotated_forward", _roi_align_rotated_forward_fake)
    torch.library.register_fake(
        lib + "roi_align_rotated_backward", _roi_align_rotated_backward_fake
    )
    torch.library.register_autograd(
        lib + "roi_align_rotated_forward",
        _roi_align_backward,
        setup_context=_roi_align_setup_context,
    )
    torch.library.register_fake(
        lib + "ri_roi_align_rotated_forward", _ri_roi_align_rotated_forward_fake
    )
    torch.library.register_fake(
        lib + "ri_roi_align_rotated_backward", _ri_roi_align_rotated_backward_fake
    )
    torch.library.register_fake(lib + "min_area_rect_pair", _min_area_rect_pair_fake)
    torch.library.register_fake(lib + "convex_overlaps", _convex_overlaps_fake)
    torch.library.register_autograd(
        lib + "ri_roi_align_rotated_forward",
        _ri_roi_align_backward,
        setup_context=_ri_roi_align_setup_context,
    )


def load_library() -> None:
    """Loads the compiled ops once; later calls do nothing."""
    global _loaded
    if _loaded:
        return
    torch.ops.load_library(library_path())
    _register_python_parts()
    _loaded = True


def has_kernel(op: str, device: torch.device) -> bool:
    """Whether ``torch.ops.rotated_det.<op>`` can run on ``device``: the library is built and
    loads, and has a kernel for the device's type (a CPU-only build has no CUDA kernels). For the
    parts of the package that fall back to a torch formulation of an op."""
    key = (op, "CUDA" if device.type == "cuda" else device.type.upper())
    if key not in _kernels:
        try:
            load_library()
            _kernels[key] = torch._C._dispatch_has_kernel_for_dispatch_key(
                f"rotated_det::{op}", key[1]
            )
        except (ImportError, OSError, RuntimeError):
            _kernels[key] = False
    return _kernels[key]

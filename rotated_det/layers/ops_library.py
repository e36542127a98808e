"""Loads the compiled operators (``rotated_det/_C*.so``) and registers their Python-side parts.

The shared library only holds ``TORCH_LIBRARY(rotated_det, ...)`` registrations (no Python
bindings), so it is loaded with :func:`torch.ops.load_library`; the ops are then
``torch.ops.rotated_det.{box_iou_rotated, nms_rotated, batched_nms_rotated,
roi_align_rotated_forward, roi_align_rotated_backward}``.

This module also registers, for each op, a fake (meta) implementation used by ``torch.export`` /
``torch.compile`` to infer output shapes, and the autograd formula of ``roi_align_rotated_forward``.
"""

import glob
import os

import torch

__all__ = ["load_library", "library_path"]

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_loaded = False


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


def _register_python_parts() -> None:
    lib = "rotated_det::"

    @torch.library.register_fake(lib + "box_iou_rotated")
    def _(boxes1, boxes2, mode=0, aligned=False):
        if aligned:
            return boxes1.new_empty((boxes1.shape[0],))
        return boxes1.new_empty((boxes1.shape[0], boxes2.shape[0]))

    @torch.library.register_fake(lib + "nms_rotated")
    def _(dets, scores, iou_threshold):
        n = torch.library.get_ctx().new_dynamic_size()
        return dets.new_empty((n,), dtype=torch.int64)

    @torch.library.register_fake(lib + "batched_nms_rotated")
    def _(dets, scores, idxs, iou_threshold):
        n = torch.library.get_ctx().new_dynamic_size()
        return dets.new_empty((n,), dtype=torch.int64)

    @torch.library.register_fake(lib + "roi_align_rotated_forward")
    def _(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio):
        return input.new_empty((rois.shape[0], input.shape[1], pooled_height, pooled_width))

    @torch.library.register_fake(lib + "roi_align_rotated_backward")
    def _(
        grad,
        rois,
        spatial_scale,
        pooled_height,
        pooled_width,
        batch_size,
        channels,
        height,
        width,
        sampling_ratio,
    ):
        return grad.new_empty((batch_size, channels, height, width))

    def _setup_context(ctx, inputs, output):
        input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio = inputs
        ctx.save_for_backward(rois)
        ctx.args = (spatial_scale, pooled_height, pooled_width, sampling_ratio)
        ctx.input_shape = input.shape

    def _backward(ctx, grad):
        (rois,) = ctx.saved_tensors
        spatial_scale, pooled_height, pooled_width, sampling_ratio = ctx.args
        n, c, h, w = ctx.input_shape
        grad_input = torch.ops.rotated_det.roi_align_rotated_backward(
            grad, rois, spatial_scale, pooled_height, pooled_width, n, c, h, w, sampling_ratio
        )
        return grad_input, None, None, None, None, None

    torch.library.register_autograd(
        lib + "roi_align_rotated_forward", _backward, setup_context=_setup_context
    )


def load_library() -> None:
    """Loads the compiled ops once; later calls do nothing."""
    global _loaded
    if _loaded:
        return
    torch.ops.load_library(library_path())
    _register_python_parts()
    _loaded = True

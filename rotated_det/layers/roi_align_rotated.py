"""RoIAlign for rotated RoIs (compiled ops ``rotated_det::roi_align_rotated_forward`` and
``rotated_det::roi_align_rotated_backward``)."""

import math
import operator
from typing import SupportsIndex

import torch
from torch import nn

from .ops_library import load_library

__all__ = ["roi_align_rotated", "ROIAlignRotated", "MAX_OUTPUT_SIDE", "MAX_SAMPLING_RATIO"]

load_library()

# Limits of the arguments. Their only purpose is to turn a typo (e.g. sampling_ratio=100000, or
# the stride 16 passed as spatial_scale) into an error instead of a kernel that runs for hours
# without answering Ctrl-C; real models use output sides of 7-28 (up to ~100 for text crops) and
# sampling ratios of 0 (adaptive) or 2.
MAX_OUTPUT_SIDE = 256
MAX_SAMPLING_RATIO = 64
# Cap of the adaptive sample count per bin side, applied by the compiled kernel
# (csrc/rotated_geometry.h, kMaxAdaptiveGrid); stated here for the docs and error messages.
_KERNEL_MAX_ADAPTIVE_GRID = 256

_HALF_DTYPES = (torch.float16, torch.bfloat16)

# ``output_size``: one side for both, or (pooled_height, pooled_width).
OutputSize = int | tuple[int, int] | list[int]


def _as_int(value: SupportsIndex, name: str, limits: str) -> int:
    """``value`` as an int (an int or numpy integer; not a bool or a float)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer {limits}, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer {limits}, got {value!r}") from None


def _check_pool_args(
    output_size: OutputSize, spatial_scale: float, sampling_ratio: int
) -> tuple[int, int, float, int]:
    """Checks the pooling arguments against the documented limits.

    Returns:
        (pooled_height, pooled_width, spatial_scale, sampling_ratio) as int, int, float, int.
    """
    sides = output_size if isinstance(output_size, (tuple, list)) else (output_size, output_size)
    limits = f"in [1, {MAX_OUTPUT_SIDE}]"
    if len(sides) != 2:
        raise ValueError(
            "output_size must be an int or a pair (pooled_height, pooled_width), "
            f"got {output_size!r}"
        )
    ph, pw = (_as_int(s, "output_size", f"(or a pair of integers) {limits}") for s in sides)
    if not (1 <= ph <= MAX_OUTPUT_SIDE and 1 <= pw <= MAX_OUTPUT_SIDE):
        raise ValueError(f"output_size sides must be {limits}, got {output_size!r}")
    try:
        scale = float(spatial_scale)
    except (TypeError, ValueError):
        scale = math.nan
    if not (math.isfinite(scale) and 0.0 < scale <= 1.0):
        raise ValueError(
            "spatial_scale must be a number in (0, 1]: feature-map size / image size, e.g. 1/16 "
            f"for a stride-16 map (not the stride itself), got {spatial_scale!r}"
        )
    sr_limits = (
        f"in [-1, {MAX_SAMPLING_RATIO}] (samples per bin side; -1 or 0: adaptive, "
        f"ceil(RoI side / output side), at most {_KERNEL_MAX_ADAPTIVE_GRID})"
    )
    sr = _as_int(sampling_ratio, "sampling_ratio", sr_limits)
    if not -1 <= sr <= MAX_SAMPLING_RATIO:
        raise ValueError(f"sampling_ratio must be an integer {sr_limits}, got {sampling_ratio!r}")
    return ph, pw, scale, sr


def roi_align_rotated(
    input: torch.Tensor,
    rois: torch.Tensor,
    output_size: OutputSize,
    spatial_scale: float,
    sampling_ratio: int,
) -> torch.Tensor:
    """Bilinear RoIAlign over rotated RoIs, with Detectron2's semantics. Differentiable w.r.t.
    ``input``.

    Each RoI is divided into ``output_size`` bins along its own (rotated) axes; each bin is the
    average of ``grid_h x grid_w`` bilinear samples placed at the centres of a regular sub-grid
    of the bin. Coordinates are "aligned": the RoI is scaled by ``spatial_scale`` and shifted by
    -0.5, so pixel centres of the feature map sit at integer coordinates. Samples farther than one
    pixel outside the map contribute 0; samples within one pixel are clamped to the border.

    Mixed precision: float16/bfloat16 features (autocast) are widened to float32 for the kernel
    and the output is rounded back to the feature dtype; the gradient flows back the same way
    (computed in float32, returned in the feature dtype).

    Args:
        input: [N, C, H, W] float16, bfloat16, float32 or float64 feature map.
        rois: [K, 6] rows (batch_idx, cx, cy, w, h, angle) in input-image pixels, angle in
            degrees counter-clockwise on screen; same device as ``input`` and the same dtype,
            except that with float16/bfloat16 features they may also be float32 (which keeps
            coordinates exact: bfloat16 holds 8 significant bits, i.e. steps of 4 px at 1000 px).
        output_size: int or (pooled_height, pooled_width), each side in [1, MAX_OUTPUT_SIDE=256].
        spatial_scale: feature-map size / image size in (0, 1], e.g. 1/16.
        sampling_ratio: samples per bin along each side, in [-1, MAX_SAMPLING_RATIO=64]; -1 or 0
            means adaptive (ceil(RoI side / output side) in feature-map pixels, per RoI, capped
            at 256 by the kernel).

    Returns:
        [K, C, pooled_height, pooled_width] tensor in the dtype of ``input``. RoIs with a NaN/inf
        value or a batch index outside [0, N) give zeros (and no gradient); negative sides are
        treated as 0.

    Raises:
        ValueError: on wrong shapes, dtypes or devices, or arguments outside the limits above.
    """
    ph, pw, scale, sr = _check_pool_args(output_size, spatial_scale, sampling_ratio)
    _check_tensors(input, rois)
    if input.dtype in _HALF_DTYPES:
        out: torch.Tensor = torch.ops.rotated_det.roi_align_rotated_forward(
            input.float(), rois.float(), scale, ph, pw, sr
        )
        return out.to(input.dtype)
    out = torch.ops.rotated_det.roi_align_rotated_forward(input, rois, scale, ph, pw, sr)
    return out


def _check_tensors(input: torch.Tensor, rois: torch.Tensor) -> None:
    if not isinstance(input, torch.Tensor) or input.dim() != 4:
        raise ValueError(
            f"input must be a [N, C, H, W] tensor, got {getattr(input, 'shape', type(input))}"
        )
    if input.dtype not in (torch.float32, torch.float64, *_HALF_DTYPES):
        raise ValueError(f"input must be float16, bfloat16, float32 or float64, got {input.dtype}")
    if not isinstance(rois, torch.Tensor) or rois.dim() != 2 or rois.shape[1] != 6:
        raise ValueError(
            "rois must be a [K, 6] tensor (batch_idx, cx, cy, w, h, angle_deg), got "
            f"{getattr(rois, 'shape', type(rois))}"
        )
    allowed = (torch.float32, *_HALF_DTYPES) if input.dtype in _HALF_DTYPES else (input.dtype,)
    if rois.dtype not in allowed:
        expected = " or ".join(str(d) for d in allowed)
        raise ValueError(
            f"rois must have the dtype of input ({input.dtype}), got {rois.dtype}"
            + (f" (accepted with {input.dtype} input: {expected})" if len(allowed) > 1 else "")
        )
    if rois.device != input.device:
        raise ValueError(f"rois must be on the device of input ({input.device}), got {rois.device}")


class ROIAlignRotated(nn.Module):
    """Module form of :func:`roi_align_rotated`; the arguments are checked here, at construction.

    Args:
        output_size: int or (pooled_height, pooled_width), each side in [1, 256].
        spatial_scale: feature-map size / image size in (0, 1], e.g. 1/16.
        sampling_ratio: samples per bin along each side, in [-1, 64]; -1 or 0 means adaptive.
    """

    def __init__(self, output_size: OutputSize, spatial_scale: float, sampling_ratio: int):
        super().__init__()
        ph, pw, scale, sr = _check_pool_args(output_size, spatial_scale, sampling_ratio)
        self.output_size = (ph, pw)
        self.spatial_scale = scale
        self.sampling_ratio = sr

    def forward(self, input: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """
        Args:
            input: [N, C, H, W] feature map.
            rois: [K, 6] (batch_idx, cx, cy, w, h, angle_deg) in input-image pixels.

        Returns:
            [K, C, pooled_height, pooled_width] in the dtype of ``input``.
        """
        return roi_align_rotated(
            input, rois, self.output_size, self.spatial_scale, self.sampling_ratio
        )

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}"
        )

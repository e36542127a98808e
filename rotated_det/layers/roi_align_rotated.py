"""RoIAlign for rotated RoIs (compiled ops ``rotated_det::roi_align_rotated_forward`` and
``rotated_det::roi_align_rotated_backward``)."""

import torch
from torch import nn
from torch.nn.modules.utils import _pair

from .ops_library import load_library

__all__ = ["roi_align_rotated", "ROIAlignRotated"]

load_library()


def roi_align_rotated(
    input: torch.Tensor,
    rois: torch.Tensor,
    output_size,
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

    Args:
        input: [N, C, H, W] float32/float64 feature map.
        rois: [K, 6] rows (batch_idx, cx, cy, w, h, angle) in input-image pixels, angle in
            degrees counter-clockwise on screen; same dtype and device as ``input``.
        output_size: int or (pooled_height, pooled_width).
        spatial_scale: feature-map size / image size, e.g. 1/16.
        sampling_ratio: samples per bin along each side; <= 0 means adaptive
            (ceil(RoI side / output side) in feature-map pixels, per RoI, at most 256).

    Returns:
        [K, C, pooled_height, pooled_width] tensor. RoIs with a NaN/inf value or a batch index
        outside [0, N) give zeros (and no gradient); negative sides are treated as 0.
    """
    _check_args(input, rois)
    ph, pw = _pair(output_size)
    ph, pw = int(ph), int(pw)
    if ph <= 0 or pw <= 0:
        raise ValueError(f"output_size must be positive, got {output_size}")
    return torch.ops.rotated_det.roi_align_rotated_forward(
        input, rois, float(spatial_scale), ph, pw, int(sampling_ratio)
    )


def _check_args(input, rois) -> None:
    if not isinstance(input, torch.Tensor) or input.dim() != 4:
        raise ValueError(
            f"input must be a [N, C, H, W] tensor, got {getattr(input, 'shape', type(input))}"
        )
    if input.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"input must be float32 or float64, got {input.dtype}")
    if not isinstance(rois, torch.Tensor) or rois.dim() != 2 or rois.shape[1] != 6:
        raise ValueError(
            "rois must be a [K, 6] tensor (batch_idx, cx, cy, w, h, angle_deg), got "
            f"{getattr(rois, 'shape', type(rois))}"
        )
    if rois.dtype != input.dtype:
        raise ValueError(f"rois must have the dtype of input ({input.dtype}), got {rois.dtype}")
    if rois.device != input.device:
        raise ValueError(f"rois must be on the device of input ({input.device}), got {rois.device}")


class ROIAlignRotated(nn.Module):
    """Module form of :func:`roi_align_rotated`.

    Args:
        output_size: int or (pooled_height, pooled_width).
        spatial_scale: feature-map size / image size, e.g. 1/16.
        sampling_ratio: samples per bin along each side; <= 0 means adaptive.
    """

    def __init__(self, output_size, spatial_scale: float, sampling_ratio: int):
        super().__init__()
        self.output_size = _pair(output_size)
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = int(sampling_ratio)

    def forward(self, input: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """
        Args:
            input: [N, C, H, W] feature map.
            rois: [K, 6] (batch_idx, cx, cy, w, h, angle_deg) in input-image pixels.

        Returns:
            [K, C, pooled_height, pooled_width].
        """
        return roi_align_rotated(
            input, rois, self.output_size, self.spatial_scale, self.sampling_ratio
        )

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}"
        )

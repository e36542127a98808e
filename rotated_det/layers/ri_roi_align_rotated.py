"""Rotation-invariant RoIAlign of ReDet (Han et al., CVPR 2021), compiled ops
``rotated_det::ri_roi_align_rotated_forward`` and ``rotated_det::ri_roi_align_rotated_backward``.

The features come from a rotation-equivariant network over the cyclic group C_n: ``C =
num_fields * n`` channels, each field holding n orientation channels (orientation the fast
axis, e2cnn's layout of regular fields). Rotating the input image by ``360 / n`` degrees
counter-clockwise on screen moves such features with the image and rolls each field's channels
forward by one (channel ``j`` -> ``j + 1 mod n``; e2cnn's regular representation, whose
rotations of a tensor are ``torch.rot90(x, k, dims=(-2, -1))``, counter-clockwise on screen).

RiRoIAlign pools a RoI as :func:`~rotated_det.layers.roi_align_rotated` does (spatial
alignment) and then reads each field's channels starting at the RoI's orientation (orientation
alignment): with ``t = angle * n / 360`` (angle counter-clockwise on screen, in degrees),

    out[f * n + o] = (1 - frac(t)) * v[f * n + (o + floor(t)) % n]
                     + frac(t) * v[f * n + (o + floor(t) + 1) % n],

where ``v`` is the rotated RoIAlign of the features. The output is then invariant: rotating
the image and the RoI together (by any multiple of ``360 / n`` degrees, exactly; in between up to
the linear interpolation of the orientations) leaves it unchanged, and ``n = 1`` gives
``roi_align_rotated``.

Compared with MMCV's ``riroi_align_rotated`` (which ReDet's MMRotate configs call with
``clockwise=True`` on clockwise angles): the orientation shift agrees at multiples of ``360 / n``;
between them MMCV interpolates towards the neighbour on the other side (its output jumps at each
multiple), while here it varies linearly and continuously with the angle. The spatial sampling
follows this library's RoIAlignRotated (Detectron2's "aligned" half-pixel convention, RoI sides
not enlarged to 1 px), so that both poolers of a model read the same positions.
"""

import torch
from torch import nn

from .ops_library import load_library
from .roi_align_rotated import OutputSize, _as_int, _check_pool_args, _check_tensors

__all__ = ["ri_roi_align_rotated", "RiRoIAlignRotated", "MAX_NUM_ORIENTATIONS"]

load_library()

# Upper limit of num_orientations: the cyclic groups of equivariant detectors have 4-16
# elements (ReDet: 8); the limit only turns a mixed-up argument into an error.
MAX_NUM_ORIENTATIONS = 64


def _check_num_orientations(num_orientations: int) -> int:
    limits = f"in [1, {MAX_NUM_ORIENTATIONS}]"
    n = _as_int(num_orientations, "num_orientations", limits)
    if not 1 <= n <= MAX_NUM_ORIENTATIONS:
        raise ValueError(f"num_orientations must be an integer {limits}, got {num_orientations!r}")
    return n


def ri_roi_align_rotated(
    features: torch.Tensor,
    rois: torch.Tensor,
    output_size: OutputSize,
    spatial_scale: float,
    sampling_ratio: int,
    num_orientations: int,
    clockwise: bool = False,
) -> torch.Tensor:
    """Rotation-invariant RoIAlign (see the module docstring). Differentiable w.r.t.
    ``features``.

    Args:
        features: [N, C, H, W] float16, bfloat16, float32 or float64 feature map, C =
            num_fields * num_orientations, channel ``f * num_orientations + o`` holding
            orientation ``o`` of field ``f``. Half features run the float32 kernel (as in
            :func:`~rotated_det.layers.roi_align_rotated`).
        rois: [K, 6] rows (batch_idx, cx, cy, w, h, angle) in input-image pixels, angle in
            degrees, counter-clockwise on screen (this library's convention), or clockwise when
            ``clockwise=True``; same device as ``features`` and the same dtype (float32 also
            accepted with half features).
        output_size: int or (pooled_height, pooled_width), each side in [1, 256].
        spatial_scale: feature-map size / image size in (0, 1], e.g. 1/16.
        sampling_ratio: samples per bin along each side, in [-1, 64]; -1 or 0 means adaptive.
        num_orientations: n, the channels per field (the order of the rotation group), in
            [1, 64]; must divide C.
        clockwise: angles are clockwise-positive on screen (MMCV's flag); both the sampling and
            the orientation shift then use ``-angle``.

    Returns:
        [K, C, pooled_height, pooled_width] tensor in the dtype of ``features``. RoIs with a
        NaN/inf value or a batch index outside [0, N) give zeros (and no gradient).

    Raises:
        ValueError: on wrong shapes, dtypes or devices, or arguments outside the limits above.
    """
    ph, pw, scale, sr = _check_pool_args(output_size, spatial_scale, sampling_ratio)
    n = _check_num_orientations(num_orientations)
    _check_tensors(features, rois)
    # (not under tracing, where the channel count is a traced value; the kernel checks it too)
    if not torch.jit.is_tracing() and features.shape[1] % n != 0:
        raise ValueError(
            f"features must have num_fields * num_orientations channels: {features.shape[1]} "
            f"channels are not a multiple of num_orientations={n}"
        )
    if not isinstance(clockwise, bool):
        raise ValueError(f"clockwise must be a bool, got {clockwise!r}")
    if features.dtype in (torch.float16, torch.bfloat16):
        out: torch.Tensor = torch.ops.rotated_det.ri_roi_align_rotated_forward(
            features.float(), rois.float(), scale, ph, pw, sr, n, clockwise
        )
        return out.to(features.dtype)
    out = torch.ops.rotated_det.ri_roi_align_rotated_forward(
        features, rois, scale, ph, pw, sr, n, clockwise
    )
    return out


class RiRoIAlignRotated(nn.Module):
    """Module form of :func:`ri_roi_align_rotated`; the arguments are checked at construction.

    Args:
        output_size: int or (pooled_height, pooled_width), each side in [1, 256].
        spatial_scale: feature-map size / image size in (0, 1], e.g. 1/16.
        sampling_ratio: samples per bin along each side, in [-1, 64]; -1 or 0 means adaptive
            (ReDet: 2).
        num_orientations: channels per field, the order of the rotation group (ReDet: 8).
        clockwise: RoI angles are clockwise-positive on screen (MMCV's flag); False for this
            library's boxes.
    """

    def __init__(
        self,
        output_size: OutputSize,
        spatial_scale: float,
        sampling_ratio: int,
        num_orientations: int,
        clockwise: bool = False,
    ):
        super().__init__()
        ph, pw, scale, sr = _check_pool_args(output_size, spatial_scale, sampling_ratio)
        if not isinstance(clockwise, bool):
            raise ValueError(f"clockwise must be a bool, got {clockwise!r}")
        self.output_size = (ph, pw)
        self.spatial_scale = scale
        self.sampling_ratio = sr
        self.num_orientations = _check_num_orientations(num_orientations)
        self.clockwise = clockwise

    def forward(self, features: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """
        Args:
            features: [N, num_fields * num_orientations, H, W] feature map.
            rois: [K, 6] (batch_idx, cx, cy, w, h, angle_deg) in input-image pixels.

        Returns:
            [K, C, pooled_height, pooled_width] in the dtype of ``features``.
        """
        return ri_roi_align_rotated(
            features,
            rois,
            self.output_size,
            self.spatial_scale,
            self.sampling_ratio,
            self.num_orientations,
            self.clockwise,
        )

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}, num_orientations={self.num_orientations}, "
            f"clockwise={self.clockwise}"
        )

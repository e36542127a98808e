"""ReDet's rotation-invariant RoIAlign written with standard operators: the formulation that ONNX
export uses instead of the compiled ``rotated_det::ri_roi_align_rotated_forward`` (ONNX
``GridSample``, ``Gather``, ``Slice``/``Concat`` and arithmetic; runs in stock ONNX Runtime and
OpenVINO).

Same semantics as :func:`rotated_det.layers.ri_roi_align_rotated`:

1. spatial alignment: the rotated RoIAlign of the features,
   :func:`rotated_det.export.roi_align_rotated_grid.roi_align_rotated_grid` (the compiled op's
   sampling; adaptive sampling capped at ``max_adaptive_samples`` slots per bin side, see
   that module);
2. orientation alignment: the features have ``C = fields * n`` channels, orientation the fast
   axis; with ``t = angle * n / 360`` reduced to ``[0, n)`` (angle counter-clockwise on screen,
   degrees), ``first = floor(t)`` and ``frac = t - first``, each field's output orientation ``o``
   is ``a0 + frac * (a1 - a0)`` with ``a0 = v[(o + first) % n]`` and ``a1 = v[(o + first + 1) %
   n]``, ``v`` the field's pooled orientations.

Step 2 gathers the rows ``(k, (o + first_k) % n)`` of the pooled features laid out as
``[K * n, fields * PH * PW]`` (one ``Gather`` of ``K * n`` row indices: no loop over RoIs, any RoI
count), and gets ``a1`` from ``a0`` by rolling the orientation axis by one (two static slices):
``a0[(o + 1) % n] = v[(o + first + 1) % n]``. ``t`` is reduced as the compiled kernel reduces it
(``fmod(angle, 360) * n / 360``, then wrapped into ``[0, n)``), so that the two agree at the
multiples of ``360 / n`` too.
"""

from __future__ import annotations

import torch

from .roi_align_rotated_grid import DEFAULT_MAX_ADAPTIVE_SAMPLES, roi_align_rotated_grid

__all__ = ["align_orientations", "ri_roi_align_rotated_grid"]


def align_orientations(
    pooled: torch.Tensor, angles: torch.Tensor, num_orientations: int
) -> torch.Tensor:
    """Orientation alignment of pooled regular-field features (step 2 of the module docstring).

    Args:
        pooled: ``[K, C, PH, PW]`` features, ``C = fields * num_orientations``, channel
            ``f * num_orientations + o`` holding orientation ``o`` of field ``f``.
        angles: ``[K]`` RoI angles in degrees, counter-clockwise on screen, any range; a
            non-finite angle shifts by 0.
        num_orientations: ``n``, the orientations per field (>= 1, divides ``C``).

    Returns:
        ``[K, C, PH, PW]``: ``out[k, f * n + o] = a0 + frac_k * (a1 - a0)``, ``a0 = pooled[k, f * n
        + (o + first_k) % n]``, ``a1 = pooled[k, f * n + (o + first_k + 1) % n]``.
    """
    n = int(num_orientations)
    k, c, ph, pw = pooled.shape
    fields = c // n
    angles = angles.to(pooled.dtype)
    # as the kernel: t = fmod(angle, 360) * n / 360 in [-n, n], wrapped into [0, n) (a tiny
    # negative t rounds up to n after adding n, hence the second wrap)
    t = torch.fmod(angles, 360.0) * float(n) / 360.0
    t = torch.where(torch.isfinite(t), t, torch.zeros_like(t))
    t = torch.where(t < 0, t + n, t)
    t = torch.where(t >= n, t - n, t)
    first = torch.floor(t)
    frac = t - first
    # rows (k, o) of the pooled features as [K * n, fields * PH * PW], orientation outermost
    rows = pooled.reshape(k, fields, n, ph * pw).transpose(1, 2).reshape(k * n, fields * ph * pw)
    o = torch.arange(n, device=pooled.device)
    j0 = torch.remainder(o[None, :] + first.long()[:, None], n)  # [K, n]
    index = (torch.arange(k, device=pooled.device)[:, None] * n + j0).reshape(-1)
    a0 = rows.index_select(0, index).reshape(k, n, fields, ph * pw)
    # a1[:, o] = a0[:, (o + 1) % n]: a roll written as slices (torch.roll checks for an empty
    # tensor, which torch.export cannot decide when the RoI count is data-dependent)
    a1 = torch.cat([a0[:, 1:], a0[:, :1]], dim=1)
    out = a0 + frac[:, None, None, None] * (a1 - a0)
    return out.transpose(1, 2).reshape(k, c, ph, pw)


def ri_roi_align_rotated_grid(
    input: torch.Tensor,
    rois: torch.Tensor,
    spatial_scale: float,
    pooled_height: int,
    pooled_width: int,
    sampling_ratio: int,
    num_orientations: int,
    clockwise: bool = False,
    max_adaptive_samples: int = DEFAULT_MAX_ADAPTIVE_SAMPLES,
) -> torch.Tensor:
    """Rotation-invariant RoIAlign from standard operators (see the module docstring).

    The argument order follows the compiled op ``rotated_det::ri_roi_align_rotated_forward``.

    Args:
        input: ``[N, C, H, W]`` float feature maps, ``C = fields * num_orientations``.
        rois: ``[K, 6]`` rows ``(batch_idx, cx, cy, w, h, angle)``: input-image pixels, angle in
            degrees counter-clockwise on screen (clockwise with ``clockwise=True``); same dtype
            and device as ``input``.
        spatial_scale: feature-map size / image size, e.g. 1/16.
        pooled_height, pooled_width: bins per RoI side.
        sampling_ratio: samples per bin side (> 0), or <= 0 for adaptive sampling (capped at
            ``max_adaptive_samples`` per side).
        num_orientations: orientations per field (>= 1, divides C).
        clockwise: the angles are clockwise-positive (MMCV's flag): both the sampling and the
            orientation shift use ``-angle``.
        max_adaptive_samples: sample slots per bin side for adaptive sampling.

    Returns:
        ``[K, C, pooled_height, pooled_width]``. RoIs with a non-finite value or a batch index
        outside ``[0, N)`` give zeros, as in the compiled op.

    Raises:
        ValueError: ``num_orientations`` is not positive or does not divide C.
    """
    n = int(num_orientations)
    channels = input.shape[1]
    if n < 1 or channels % n != 0:
        raise ValueError(
            f"num_orientations must be positive and divide the channels of input ({channels}), "
            f"got {num_orientations}"
        )
    if clockwise:
        rois = torch.cat([rois[:, :5], -rois[:, 5:]], dim=1)
    pooled = roi_align_rotated_grid(
        input,
        rois,
        spatial_scale,
        pooled_height,
        pooled_width,
        sampling_ratio,
        max_adaptive_samples=max_adaptive_samples,
    )
    return align_orientations(pooled, rois[:, 5], n)

"""SASM's shape-adaptive measurement (SA-M; Hou et al., AAAI 2022): positives whose point (or
point set's centroid) lies near the object's centre weigh more in the losses.

``weight = exp(1 / (1 + d))``, ``d = sqrt(u^2 / w + v^2 / h)`` with (u, v) the offset of the
point from the object's centre along its w- and h-axis (pixels): e at the centre, falling towards
1 far away. As in MMRotate, u^2 / w is in pixels (not u^2 / w^2): the weight falls faster on
large objects than a scale-free distance would; MMRotate measures (u, v) along the image axes
(swapping w and h by the angle), here along the object's own axes.

Worked example: the object (0, 0, 16, 4, 0) and the point (4, 1): d = sqrt(16 / 16 + 1 / 4) =
sqrt(1.25) = 1.118, weight exp(1 / 2.118) = 1.604.
"""

import torch

from ..point_sets import box_frame_offsets

__all__ = ["ShapeAdaptiveMeasurement"]


class ShapeAdaptiveMeasurement:
    """SA-M weights of positives (module docstring)."""

    def __call__(self, points: torch.Tensor, gt_boxes: torch.Tensor) -> torch.Tensor:
        """``[F]`` weights of the points ``[F, 2]`` against their objects ``[F, 5]``."""
        uv = box_frame_offsets(points, gt_boxes)
        sides = gt_boxes[:, 2:4].clamp(min=1e-6)
        d = torch.sqrt((uv**2 / sides).sum(dim=1))
        return torch.exp(1 / (1 + d))

"""Distance-angle coder of anchor-free heads: a point and its distances to a rotated box's sides.

A rotated box ``(cx, cy, w, h, a)`` (pixels, degrees counter-clockwise on screen, image y down)
has a w-axis ``u = (cos a, -sin a)`` and an h-axis ``v = (sin a, cos a)`` in image coordinates.
A point ``p`` inside it has box-frame offsets ``ox = (p - c) . u`` and ``oy = (p - c) . v`` and
four distances to the sides:

    left = w / 2 + ox,   right = w / 2 - ox,   top = h / 2 + oy,   bottom = h / 2 - oy

("left" is the side at ``-w/2`` along u, "top" the side at ``-h/2`` along v; for ``a = 0`` they
are the image's left and top). Worked example: box ``(50, 40, 20, 10, -90)`` (le90) has
``u = (0, 1)`` and ``v = (-1, 0)``; the point ``(52, 37)`` is at offset ``(2, -3)`` from the
centre, so ``ox = -3``, ``oy = -2`` and the distances are ``(7, 3, 13, 7)`` (left, top, right,
bottom).
"""

import torch

from rotated_det.structures import (
    cos_sin_degrees,
    normalize_rbox_angles,
    point_offsets_in_box_frame,
)

__all__ = ["DistanceAnglePointCoder"]


class DistanceAnglePointCoder:
    """Encodes rotated boxes as (left, top, right, bottom) distances from points plus an angle.

    Args:
        angle_version: the convention targets are written in before encoding ("le90", "le135"
            or "oc"; see ``rotated_det.structures.normalize_rbox_angles``): it fixes which side
            is w and so the angle the head learns.
    """

    def __init__(self, angle_version: str = "le90") -> None:
        if angle_version not in ("le90", "le135", "oc"):
            raise ValueError(
                f"angle_version must be 'le90', 'le135' or 'oc', got {angle_version!r}"
            )
        self.angle_version = angle_version

    def encode(
        self, points: torch.Tensor, boxes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``points`` ``[N, 2]`` and their boxes ``[N, 5]`` -> distances ``[N, 4]`` (pixels,
        negative for a point outside its box) and angles ``[N]`` (degrees, in the convention)."""
        boxes = normalize_rbox_angles(boxes, self.angle_version)
        ox, oy = point_offsets_in_box_frame(points, boxes, aligned=True).unbind(1)
        half_w, half_h = boxes[:, 2] / 2, boxes[:, 3] / 2
        distances = torch.stack([half_w + ox, half_h + oy, half_w - ox, half_h - oy], dim=1)
        return distances, boxes[:, 4]

    def decode(
        self, points: torch.Tensor, distances: torch.Tensor, angles: torch.Tensor
    ) -> torch.Tensor:
        """``points`` ``[N, 2]``, ``distances`` ``[N, 4]`` (left, top, right, bottom; pixels) and
        ``angles`` ``[N]`` (degrees) -> boxes ``[N, 5]`` in the coder's convention."""
        left, top, right, bottom = distances.unbind(1)
        cos, sin = cos_sin_degrees(angles)
        ox = (right - left) / 2  # the box centre seen from the point, box frame: -offset
        oy = (bottom - top) / 2
        cx = points[:, 0] + ox * cos + oy * sin
        cy = points[:, 1] - ox * sin + oy * cos
        boxes = torch.stack([cx, cy, left + right, top + bottom, angles], dim=1)
        return normalize_rbox_angles(boxes, self.angle_version)

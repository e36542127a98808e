"""Losses of a point set against its object through the convex hull of the points: the convex
GIoU loss (CFA, Guo et al. 2021; used by every RepPoints-family detector) and SASM's
shape-balanced variant (``bc_convex_giou_loss``, Hou et al. 2022)."""

import torch
from torch.nn import functional as F

from rotated_det.layers import convex_giou
from rotated_det.structures import rbox_to_poly

__all__ = ["convex_giou_loss", "bc_convex_giou_loss"]


def convex_giou_loss(points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """``1 - GIoU(hull(points), box)`` per pair, in [0, 2].

    Args:
        points: ``[N, K, 2]`` point sets (x, y), pixels; gradients flow to them.
        boxes: ``[N, 5]`` their objects (cx, cy, w, h, angle in degrees).

    Returns:
        ``[N]``.
    """
    return 1 - convex_giou(points, boxes)


def bc_convex_giou_loss(
    points: torch.Tensor, boxes: torch.Tensor, scale: torch.Tensor, beta: float = 1.0
) -> torch.Tensor:
    """SASM's loss of the initial point sets: the convex GIoU loss balanced, for squat objects,
    by smooth L1 terms that pull the points' mean to the object's centre and the points' four
    extremes (leftmost, topmost, rightmost, bottommost point) to the object's.

    ``w = exp(-r / 4)`` with r = long side / short side of the object (w = 0.78 for a square,
    0.37 for 1:4):
    ``loss = w * (L_mean + L_extremes) + 1 - GIoU``, the smooth L1 terms summed over coordinates
    measured in units of ``scale``; 0 for a set whose hull is the object, with its extremes on
    the object's and its mean at the centre.

    MMRotate's ``BCConvexGIoULoss`` reports ``w * (L_mean + L_extremes) + 1 - (1 - 2 w) * GIoU``
    (at best 2 w: 1.56 for a square) but backpropagates the convex GIoU gradient alone. Its GIoU
    term here has that gradient; differentiating its reported value instead would turn the GIoU
    term against the object wherever ``w > 1/2`` (aspect ratio below 4 ln 2 = 2.77: squares,
    most vehicles), where ``1 - 2 w < 0`` and the loss falls as the hull leaves the object (SASM
    then overfitted two images to a best IoU of 0.74 and a loss ratio of 0.21, which its 2 w
    floor kept above 0.2: tests/modeling/test_overfit.py). The smooth L1 terms keep their
    gradient, and each sample has its own (MMRotate adds their batch mean to every sample and
    lets no gradient through them).

    Args:
        points: ``[N, K, 2]`` point sets (x, y), pixels.
        boxes: ``[N, 5]`` their objects.
        scale: ``[N]`` length unit of the smooth L1 terms, pixels (the RepPoints normaliser,
            ``point_base_scale * stride``).
        beta: smooth L1 transition point, in units of ``scale``.

    Returns:
        ``[N]``.
    """
    giou = convex_giou(points, boxes)
    unit = scale.view(-1, 1, 1)
    pts = points / unit
    corners = rbox_to_poly(boxes).view(-1, 4, 2) / unit
    mean_term = F.smooth_l1_loss(
        pts.mean(dim=1), boxes[:, :2] / scale[:, None], beta=beta, reduction="none"
    ).sum(dim=1)
    extreme_term = F.smooth_l1_loss(
        _extremes(pts), _extremes(corners), beta=beta, reduction="none"
    ).sum(dim=(1, 2))
    sides = boxes[:, 2:4].clamp(min=1e-6)
    w = torch.exp(-(sides.max(dim=1).values / sides.min(dim=1).values) / 4)
    return w * (mean_term + extreme_term) + 1 - giou


def _extremes(points: torch.Tensor) -> torch.Tensor:
    """``[N, 4, 2]`` the leftmost, topmost, rightmost and bottommost of ``[N, K, 2]`` points."""
    idx = torch.stack(
        [
            points[..., 0].argmin(dim=1),
            points[..., 1].argmin(dim=1),
            points[..., 0].argmax(dim=1),
            points[..., 1].argmax(dim=1),
        ],
        dim=1,
    )
    return torch.gather(points, 1, idx[..., None].expand(-1, -1, 2))

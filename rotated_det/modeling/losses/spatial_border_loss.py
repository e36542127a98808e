"""Oriented RepPoints' spatial constraint (Li et al., CVPR 2022; MMRotate's
``SpatialBorderLoss``): points of a set that fall outside their object are pulled towards the
object's centre; points inside cost nothing."""

import torch

from ..point_sets import points_in_rboxes

__all__ = ["spatial_border_loss"]


def spatial_border_loss(
    points: torch.Tensor, boxes: torch.Tensor, scale: torch.Tensor
) -> torch.Tensor:
    """Per point set: the mean over its K points of ``|p - c| / scale`` for the points outside
    their object (c its centre; 0 for points inside or on the border).

    Args:
        points: ``[N, K, 2]`` point sets (x, y), pixels.
        boxes: ``[N, 5]`` their objects (cx, cy, w, h, angle in degrees).
        scale: ``[N]`` length unit, pixels (the RepPoints normaliser).

    Returns:
        ``[N]``.

    MMRotate averages 0.2 x the distance over the batch's outside points and divides that by the
    number of point sets; here each set's loss is the mean over its own points, so that the
    loss weight (0.05 initial, 0.1 refined in Oriented RepPoints) acts per set.
    """
    outside = ~points_in_rboxes(points, boxes[:, None, :])
    dist = (points - boxes[:, None, :2]).norm(dim=2) / scale[:, None]
    return (dist * outside).mean(dim=1)

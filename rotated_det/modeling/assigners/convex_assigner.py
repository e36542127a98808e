"""The initial-stage assigner of the point-set detectors (RepPoints' point assigner, MMRotate's
``ConvexAssigner``): each object is learnt by the ``pos_num`` points of one FPN level nearest to
its centre, the level chosen by the object's size.

Level choice: with the object's axis-aligned extent W x H (pixels) the level is the one of stride
``2 ** floor((log2(W / scale) + log2(H / scale)) / 2)``, clamped to the coarsest and finest
levels. With ``scale = 4``: a 32 x 32 object goes to stride 8 (log2(8) = 3), 64 x 64 to 16,
64 x 16 to 8 ((log2 16 + log2 4) / 2 = 3).

Worked example (one level of stride 8, points at (4, 4), (12, 4), (20, 4), ...): the box
(13, 5, 32, 32, 0) has normalised distances |(p - c) / (32, 32)| of (1, 1) / 32 to (12, 4),
(7, 1) / 32 to (20, 4) and (9, 1) / 32 to (4, 4): with ``pos_num = 2`` it takes (12, 4) and
(20, 4). A point that two objects take goes to the nearer one (in each object's normalised
distance; the lower index on a tie).
"""

import math

import torch

from rotated_det.structures import rbox_to_hbox

from ._common import check_gt_boxes

__all__ = ["ConvexAssigner"]


class ConvexAssigner:
    """Nearest points of the object's level (module docstring).

    Args:
        scale: object side (pixels) that belongs to stride 1 (4 in MMRotate's configs).
        pos_num: points per object (1 in MMRotate's rotated RepPoints configs).
    """

    def __init__(self, scale: float = 4.0, pos_num: int = 1) -> None:
        if scale <= 0:
            raise ValueError(f"ConvexAssigner: scale must be > 0, got {scale}")
        if pos_num < 1:
            raise ValueError(f"ConvexAssigner: pos_num must be >= 1, got {pos_num}")
        self.scale = float(scale)
        self.pos_num = int(pos_num)

    def object_levels(self, gt_boxes: torch.Tensor, strides: list[int]) -> torch.Tensor:
        """``[G]`` index into ``strides`` of each object's level (module docstring)."""
        hbox = rbox_to_hbox(gt_boxes)
        wh = (hbox[:, 2:] - hbox[:, :2]).clamp(min=1e-6)
        log_size = torch.log2(wh / self.scale).mean(dim=1).floor()
        log_strides = torch.tensor(
            [math.log2(s) for s in strides], dtype=log_size.dtype, device=log_size.device
        )
        log_size = log_size.clamp(log_strides.min(), log_strides.max())
        return (log_size[:, None] - log_strides[None, :]).abs().argmin(dim=1)

    @torch.no_grad()
    def __call__(
        self,
        points: torch.Tensor,
        num_points_per_level: list[int],
        strides: list[int],
        gt_boxes: torch.Tensor,
    ) -> torch.Tensor:
        """
        Args:
            points: ``[P, 2]`` the locations' points (x, y) in pixels, all levels in order.
            num_points_per_level: points of each level (they add up to P).
            strides: stride of each level (pixels).
            gt_boxes: ``[G, 5]`` the image's objects (cx, cy, w, h, angle in degrees).

        Returns:
            ``[P]`` int64 index of the object each point learns, -1 for none.
        """
        check_gt_boxes(gt_boxes)
        if sum(num_points_per_level) != points.shape[0] or len(strides) != len(
            num_points_per_level
        ):
            raise ValueError(
                f"ConvexAssigner: num_points_per_level {list(num_points_per_level)} must add up "
                f"to the {points.shape[0]} points and have one entry per stride {list(strides)}"
            )
        num_points, num_gt = points.shape[0], gt_boxes.shape[0]
        assigned = torch.full((num_points,), -1, dtype=torch.int64, device=points.device)
        if num_gt == 0 or num_points == 0:
            return assigned
        counts = torch.tensor(num_points_per_level, device=points.device)
        point_level = torch.repeat_interleave(
            torch.arange(len(strides), device=points.device), counts
        )
        gt_level = self.object_levels(gt_boxes.float(), strides)
        hbox = rbox_to_hbox(gt_boxes.float())
        wh = (hbox[:, 2:] - hbox[:, :2]).clamp(min=1e-6)
        # [G, P] normalised distance, +inf off the object's level
        dist = ((points.float()[None] - gt_boxes[:, None, :2].float()) / wh[:, None]).norm(dim=2)
        dist = dist.masked_fill(point_level[None] != gt_level[:, None], float("inf"))
        k = min(self.pos_num, num_points)
        near_dist, near_idx = dist.topk(k, dim=1, largest=False)  # [G, k]
        gt_idx = torch.arange(num_gt, device=points.device)[:, None].expand(-1, k)
        valid = torch.isfinite(near_dist)
        near_dist, near_idx, gt_idx = near_dist[valid], near_idx[valid], gt_idx[valid]
        best = torch.full((num_points,), float("inf"), device=points.device)
        best = best.scatter_reduce(0, near_idx, near_dist, reduce="amin")
        winner = near_dist == best[near_idx]
        # ties between objects: the lowest index
        first = torch.full((num_points,), num_gt, dtype=torch.int64, device=points.device)
        first = first.scatter_reduce(0, near_idx[winner], gt_idx[winner], reduce="amin")
        taken = first < num_gt
        assigned[taken] = first[taken]
        return assigned

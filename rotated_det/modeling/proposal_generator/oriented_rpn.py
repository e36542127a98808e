"""Oriented RPN of Oriented R-CNN (Xie et al. 2021): horizontal anchors, rotated proposals."""

import torch

from rotated_det.structures import rbox_to_hbox

from .rrpn import RRPN

__all__ = ["OrientedRPN"]


class OrientedRPN(RRPN):
    """Region proposal network with horizontal anchors and midpoint-offset regression.

    Same arguments as RRPN, except: ``anchor_generator`` is a DefaultAnchorGenerator (XYXY
    anchors), ``head`` predicts 6 deltas per anchor, and ``box2box_transform`` is a
    MidpointOffsetCoder. Anchors are matched to the ground truth's horizontal bounding boxes by
    (horizontal) IoU; each proposal is the rectangle decoded from the 6 deltas (a rotated box).
    """

    def _gt_boxes_for_matching(self, gt_boxes: torch.Tensor) -> torch.Tensor:
        """XYXY ``[G, 4]`` bounding boxes of the rotated ground truth."""
        return rbox_to_hbox(gt_boxes)

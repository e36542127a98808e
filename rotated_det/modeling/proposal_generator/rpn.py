"""RPN: region proposal network with horizontal anchors and horizontal proposals."""

import torch

from rotated_det.structures import hbox_to_rbox, rbox_to_hbox

from ..box_regression import Box2BoxTransform
from .rrpn import RRPN

__all__ = ["RPN"]


class RPN(RRPN):
    """The region proposal network of Faster R-CNN (Ren et al. 2015) for rotated detectors whose
    second stage starts from axis-aligned RoIs (RoI Transformer, Gliding Vertex).

    Same arguments as RRPN, except: ``anchor_generator`` is a DefaultAnchorGenerator (XYXY
    anchors), ``head`` predicts 4 deltas per anchor, and ``box2box_transform`` is a
    Box2BoxTransform. Anchors are matched to, and regress, the axis-aligned bounding boxes of the
    rotated ground truth.

    Proposals are returned as RotatedBoxes of angle 0 ``(cx, cy, w, h, 0)``, so that the proposal
    selection and the RoI heads take them unchanged: the rotated IoU of two axis-aligned boxes is
    their horizontal IoU, so the rotated NMS of the proposals is the standard RPN's NMS, and
    ROIAlignRotated of an angle-0 box is torchvision's aligned RoIAlign of the same box.
    """

    def __init__(self, *, box2box_transform: Box2BoxTransform, **kwargs):
        if not isinstance(box2box_transform, Box2BoxTransform):
            raise TypeError(
                "RPN needs a Box2BoxTransform (horizontal deltas), got "
                f"{type(box2box_transform).__name__}"
            )
        super().__init__(box2box_transform=box2box_transform, **kwargs)
        if self.box_dim != 4:
            raise ValueError(f"RPN: head.box_dim must be 4 (dx, dy, dw, dh), got {self.box_dim}")

    def _gt_boxes_for_matching(self, gt_boxes: torch.Tensor) -> torch.Tensor:
        """XYXY ``[G, 4]`` bounding boxes of the rotated ground truth."""
        return rbox_to_hbox(gt_boxes)

    def _decode(self, deltas: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """``[K, 4]`` deltas on ``[K, 4]`` XYXY anchors -> ``[K, 5]`` angle-0 rotated boxes."""
        return hbox_to_rbox(self.box2box_transform.apply_deltas(deltas, anchors))

    def losses(
        self,
        anchors: torch.Tensor,
        pred_objectness_logits: list[torch.Tensor],
        gt_labels: list[torch.Tensor],
        pred_anchor_deltas: list[torch.Tensor],
        gt_boxes: list[torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """RRPN's losses with the matched rotated ground truth ``[A, 5]`` replaced by its
        bounding boxes ``[A, 4]`` (the regression targets of horizontal deltas)."""
        hboxes = [rbox_to_hbox(b) for b in gt_boxes]
        return super().losses(
            anchors, pred_objectness_logits, gt_labels, pred_anchor_deltas, hboxes
        )

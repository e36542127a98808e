"""Oriented R-CNN, R-50-FPN (model definition only).

The Rotated Faster R-CNN definition with the RRPN replaced by an oriented RPN (horizontal
anchors of 3 aspect ratios on P2-P6, midpoint-offset deltas, proposal NMS 0.8, 2000 proposals)
and, as in MMRotate's oriented_rcnn_r50_fpn_1x (le90), RoI targets in the le90 convention with
angle weight 10 and a smooth L1 loss with beta 1.
"""

import copy

from rotated_det.config import LazyCall as L
from rotated_det.modeling import (
    Box2BoxTransformRotated,
    DefaultAnchorGenerator,
    Matcher,
    MidpointOffsetCoder,
    OrientedRCNN,
    OrientedRPN,
    StandardRPNHead,
)

from .rotated_faster_rcnn import model as _rotated_faster_rcnn

model = copy.deepcopy(_rotated_faster_rcnn)
model._target_ = OrientedRCNN
model.proposal_generator = L(OrientedRPN)(
    in_features=["p2", "p3", "p4", "p5", "p6"],
    head=L(StandardRPNHead)(in_channels=256, num_anchors=3, box_dim=6),
    anchor_generator=L(DefaultAnchorGenerator)(
        sizes=[[32], [64], [128], [256], [512]],
        aspect_ratios=[0.5, 1.0, 2.0],
        strides=[4, 8, 16, 32, 64],
        offset=0.0,
    ),
    anchor_matcher=L(Matcher)(
        thresholds=[0.3, 0.7], labels=[0, -1, 1], allow_low_quality_matches=True
    ),
    box2box_transform=L(MidpointOffsetCoder)(weights=(1.0, 1.0, 1.0, 1.0, 2.0, 2.0)),
    batch_size_per_image=256,
    positive_fraction=0.5,
    pre_nms_topk=(2000, 2000),
    post_nms_topk=(2000, 2000),
    nms_thresh=0.8,
    box_reg_loss_type="smooth_l1",
    smooth_l1_beta=1.0 / 9,
)
model.roi_heads.box_predictor.box2box_transform = L(Box2BoxTransformRotated)(
    weights=(10.0, 10.0, 5.0, 5.0, 10.0), angle_version="le90", edge_swap=True
)
model.roi_heads.box_predictor.smooth_l1_beta = 1.0

"""The horizontal RPN of RoI Transformer and Gliding Vertex, for P2-P6 of a 256-channel FPN (a
shared piece, not a model).

As MMRotate's roi_trans / gliding_vertex r50_fpn_1x configs: horizontal anchors of 3 aspect ratios
(8 x stride: 32 px at P2), Box2BoxTransform deltas with unit weights, IoU thresholds 0.3 / 0.7 with
low-quality matches, 256 sampled anchors, smooth L1 beta 1/9, 2000 proposals before and after an
NMS at IoU 0.7 in training and testing.
"""

from rotated_det.config import LazyCall as L
from rotated_det.modeling import (
    RPN,
    Box2BoxTransform,
    DefaultAnchorGenerator,
    Matcher,
    StandardRPNHead,
)

rpn = L(RPN)(
    in_features=["p2", "p3", "p4", "p5", "p6"],
    head=L(StandardRPNHead)(in_channels=256, num_anchors=3, box_dim=4),
    anchor_generator=L(DefaultAnchorGenerator)(
        sizes=[[32], [64], [128], [256], [512]],
        aspect_ratios=[0.5, 1.0, 2.0],
        strides=[4, 8, 16, 32, 64],
        offset=0.0,
    ),
    anchor_matcher=L(Matcher)(
        thresholds=[0.3, 0.7], labels=[0, -1, 1], allow_low_quality_matches=True
    ),
    box2box_transform=L(Box2BoxTransform)(weights=(1.0, 1.0, 1.0, 1.0)),
    batch_size_per_image=256,
    positive_fraction=0.5,
    pre_nms_topk=(2000, 2000),
    post_nms_topk=(2000, 2000),
    nms_thresh=0.7,
    box_reg_loss_type="smooth_l1",
    smooth_l1_beta=1.0 / 9,
)

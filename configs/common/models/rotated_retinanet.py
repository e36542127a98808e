"""Rotated RetinaNet, R-50-FPN (P3-P7) (model definition only).

As MMRotate's rotated_retinanet_obb_r50_fpn_1x (le90): 9 anchors per location (3 octave scales x
3 aspect ratios, angle 0), IoU thresholds 0.4 / 0.5, focal loss (0.25, 2), L1 box loss on
deltas with targets in the le90 convention.
"""

from rotated_det.config import LazyCall as L
from rotated_det.modeling import (
    FPN,
    BasicStem,
    Box2BoxTransformRotated,
    LastLevelP6P7,
    Matcher,
    ResNet,
    RotatedAnchorGenerator,
    RotatedRetinaNet,
    RotatedRetinaNetHead,
)

SCALES = [2 ** (i / 3) for i in range(3)]
ASPECT_RATIOS = [1.0, 0.5, 2.0]

model = L(RotatedRetinaNet)(
    backbone=L(FPN)(
        bottom_up=L(ResNet)(
            stem=L(BasicStem)(in_channels=3, out_channels=64, norm="FrozenBN"),
            stages=L(ResNet.make_default_stages)(depth=50, stride_in_1x1=True, norm="FrozenBN"),
            out_features=["res3", "res4", "res5"],
            freeze_at=2,
        ),
        in_features=["res3", "res4", "res5"],
        out_channels=256,
        top_block=L(LastLevelP6P7)(in_channels=2048, out_channels=256, in_feature="res5"),
    ),
    head=L(RotatedRetinaNetHead)(
        in_channels=256,
        num_classes="${..num_classes}",
        num_anchors=len(SCALES) * len(ASPECT_RATIOS),
        conv_dims=[256, 256, 256, 256],
        prior_prob=0.01,
    ),
    head_in_features=["p3", "p4", "p5", "p6", "p7"],
    anchor_generator=L(RotatedAnchorGenerator)(
        sizes=[[s * 4 * stride for s in SCALES] for stride in (8, 16, 32, 64, 128)],
        aspect_ratios=ASPECT_RATIOS,
        angles=[0],
        strides=[8, 16, 32, 64, 128],
        offset=0.0,
    ),
    box2box_transform=L(Box2BoxTransformRotated)(
        weights=(1.0, 1.0, 1.0, 1.0, 1.0), angle_version="le90", edge_swap=True
    ),
    anchor_matcher=L(Matcher)(
        thresholds=[0.4, 0.5], labels=[0, -1, 1], allow_low_quality_matches=True
    ),
    num_classes=15,
    focal_loss_alpha=0.25,
    focal_loss_gamma=2.0,
    box_reg_loss_type="l1",
    test_score_thresh=0.05,
    test_topk_candidates=2000,
    test_nms_thresh=0.1,
    max_detections_per_image=2000,
    pixel_mean=[103.530, 116.280, 123.675],
    pixel_std=[1.0, 1.0, 1.0],
    input_format="BGR",
)

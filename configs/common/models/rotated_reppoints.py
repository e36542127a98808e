"""Rotated RepPoints, R-50-FPN (P3-P7) (model definition only).

As MMRotate's rotated_reppoints_r50_fpn_1x_dota_oc (DOTA v1.0 59.44): GroupNorm FPN with P6 / P7
from C5, 3 x 256 GroupNorm convs per tower, 9 points, gradient_mul 0.3; initial points assigned
to the nearest location of the object's level (scale 4, one point per object) with the convex
GIoU loss of weight 0.375; refined points assigned by convex-hull IoU (0.4 / 0.3, best match
kept) with the convex GIoU loss of weight 1 and focal loss (0.25, 2); point_base_scale 2; 2000
candidates per level, NMS at rotated IoU 0.4, 2000 detections. Oriented RepPoints, CFA and SASM
(oriented_reppoints.py, cfa.py, sasm.py) change the assignment and losses of this model.
"""

from rotated_det.config import LazyCall as L
from rotated_det.modeling import (
    FPN,
    BasicStem,
    ConvexAssigner,
    LastLevelP6P7,
    MaxConvexIoUAssigner,
    PointGenerator,
    RepPointsHead,
    ResNet,
    RotatedRepPoints,
)

STRIDES = [8, 16, 32, 64, 128]

model = L(RotatedRepPoints)(
    backbone=L(FPN)(
        bottom_up=L(ResNet)(
            stem=L(BasicStem)(in_channels=3, out_channels=64, norm="FrozenBN"),
            stages=L(ResNet.make_default_stages)(depth=50, stride_in_1x1=True, norm="FrozenBN"),
            out_features=["res3", "res4", "res5"],
            freeze_at=2,
        ),
        in_features=["res3", "res4", "res5"],
        out_channels=256,
        norm="GN",
        top_block=L(LastLevelP6P7)(in_channels=2048, out_channels=256, in_feature="res5"),
    ),
    head=L(RepPointsHead)(
        in_channels=256,
        num_classes="${..num_classes}",
        strides=STRIDES,
        conv_dims=[256, 256, 256],
        point_feat_channels="${.in_channels}",
        num_points=9,
        gradient_mul=0.3,
        norm="GN",
        prior_prob=0.01,
    ),
    head_in_features=["p3", "p4", "p5", "p6", "p7"],
    point_generator=L(PointGenerator)(strides=STRIDES, offset=0.5),
    init_assigner=L(ConvexAssigner)(scale=4, pos_num=1),
    refine_assigner=L(MaxConvexIoUAssigner)(
        pos_iou_thr=0.4, neg_iou_thr=0.3, allow_low_quality_matches=True
    ),
    refine_selection=None,
    shape_measurement=None,
    num_classes=15,
    point_base_scale=2.0,
    focal_loss_alpha=0.25,
    focal_loss_gamma=2.0,
    init_loss_type="convex_giou",
    init_loss_weight=0.375,
    refine_loss_weight=1.0,
    spatial_init_weight=0.0,
    spatial_refine_weight=0.0,
    test_score_thresh=0.05,
    test_topk_candidates=2000,
    test_nms_thresh=0.4,
    max_detections_per_image=2000,
    pixel_mean=[103.530, 116.280, 123.675],
    pixel_std=[1.0, 1.0, 1.0],
    input_format="BGR",
)

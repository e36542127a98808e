"""Rotated FCOS, R-50-FPN (P3-P7) (model definition only).

As MMRotate's rotated_fcos_r50_fpn_1x_dota_le90: points at the cell centres of P3-P7 (P6 and P7
from P5 of the FPN), centre sampling of radius 1.5 strides inside the rotated boxes, FCOS's
regress ranges, 4 x 256 GroupNorm convs per tower, centerness on the regression tower, the angle
regressed (radians, scaled per level) and learnt through the rotated IoU loss (1 - IoU) of the
decoded box, focal loss (0.25, 2), le90 targets.
"""

import copy

from rotated_det.config import LazyCall as L
from rotated_det.modeling import (
    DistanceAnglePointCoder,
    PointGenerator,
    RegressionAngleCoder,
    RotatedCenterSamplingAssigner,
    RotatedFCOS,
    RotatedFCOSHead,
)

from .rotated_retinanet import model as retinanet_model

STRIDES = [8, 16, 32, 64, 128]
# RetinaNet's R-50-FPN, with P6 computed from P5 (MMRotate's FCOS: extra convs "on_output")
BACKBONE = copy.deepcopy(retinanet_model.backbone)
BACKBONE.top_block.in_channels = 256
BACKBONE.top_block.in_feature = "p5"
ANGLE_VERSION = "le90"

model = L(RotatedFCOS)(
    backbone=BACKBONE,
    head=L(RotatedFCOSHead)(
        in_channels=256,
        num_classes="${..num_classes}",
        strides=STRIDES,
        conv_dims=[256, 256, 256, 256],
        norm="GN",
        prior_prob=0.01,
        angle_encode_size=1,
        scale_angle=True,
        centerness_on_reg=True,
    ),
    head_in_features=["p3", "p4", "p5", "p6", "p7"],
    point_generator=L(PointGenerator)(strides=STRIDES, offset=0.5),
    assigner=L(RotatedCenterSamplingAssigner)(center_sampling=True, center_sample_radius=1.5),
    regress_ranges=[[-1, 64], [64, 128], [128, 256], [256, 512], [512, float("inf")]],
    box_coder=L(DistanceAnglePointCoder)(angle_version=ANGLE_VERSION),
    angle_coder=L(RegressionAngleCoder)(angle_version=ANGLE_VERSION),
    num_classes=15,
    focal_loss_alpha=0.25,
    focal_loss_gamma=2.0,
    box_loss_type="iou",
    angle_loss_weight=0.0,
    test_score_thresh=0.05,
    test_topk_candidates=2000,
    test_nms_thresh=0.1,
    max_detections_per_image=2000,
    pixel_mean=[103.530, 116.280, 123.675],
    pixel_std=[1.0, 1.0, 1.0],
    input_format="BGR",
)

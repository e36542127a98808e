"""S2A-Net, R-50-FPN (P3-P7) (model definition only).

As MMRotate's s2anet-le135_r50_fpn_1x_dota (DOTA v1.0 73.91): one square anchor of side
4 x stride per location; feature alignment module (2 x 256 convs per subnet, alignment
convolution) and oriented detection module (32 active rotating filters x 8 orientations, orientation
pooling for classification, 2 x 256 convs per subnet); both stages matched at IoU 0.4 / 0.5 with
low-quality matches, focal loss (0.25, 2) and smooth L1 (beta 0.11) of weight 1; box deltas in the
le135 convention, projected on the source box's axes, angle delta divided by pi (MMRotate's
norm_factor=1); 2000 candidates per level, NMS at rotated IoU 0.1, 2000 detections.

One difference: the box coder swaps edges (``edge_swap=True``; MMRotate's S2A-Net does not),
so that each target is written as whichever of ``(w, h, a)`` and ``(h, w, a + 90)`` is nearer
the source's angle: an angle delta within +-45 degrees for the square angle-0 anchors and for
the ODM's near-square refined anchors alike. Without it, the angle-0 anchors regress upright
objects to angles near 90 degrees: with the delta wrapped to [-90, 90) (as the coder did for
le135 before) their targets jumped between +90 and -90 and the quickstart found upright
elongated objects at mean IoU 0.49-0.50 (median angle error 25-31 degrees) against 0.67 (5
degrees) for level ones (mAP50 75.8, mAP75 13.3). On fresh 128 px scenes of thin objects at
75-105 degrees (small model, 100 iterations, seeds 0 / 1; mean IoU of the best detection per
object): delta in [-90, 90) 0.15 / 0.53, MMRotate's [-45, 135) 0.64 / 0.63, edge swap
0.72 / 0.71. On the overfit test (tests/modeling/test_overfit.py, seeds 0-4) the smallest IoU
was 0.90-0.94, 0.51-0.84 and 0.95 respectively.
"""

import math

from rotated_det.config import LazyCall as L
from rotated_det.modeling import (
    FPN,
    BasicStem,
    Box2BoxTransformRotated,
    LastLevelP6P7,
    Matcher,
    ResNet,
    RotatedAnchorGenerator,
    S2ANet,
    S2ANetHead,
)

STRIDES = [8, 16, 32, 64, 128]

model = L(S2ANet)(
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
    head=L(S2ANetHead)(
        in_channels=256,
        num_classes="${..num_classes}",
        conv_dims=[256, 256],
        prior_prob=0.01,
        num_orientations=8,
    ),
    head_in_features=["p3", "p4", "p5", "p6", "p7"],
    anchor_generator=L(RotatedAnchorGenerator)(
        sizes=[[4 * stride] for stride in STRIDES],
        aspect_ratios=[1.0],
        angles=[0],
        strides=STRIDES,
        offset=0.0,
    ),
    box2box_transform=L(Box2BoxTransformRotated)(
        weights=(1.0, 1.0, 1.0, 1.0, 1.0 / math.pi),
        angle_version="le135",
        edge_swap=True,
        proj_xy=True,
    ),
    fam_matcher=L(Matcher)(
        thresholds=[0.4, 0.5], labels=[0, -1, 1], allow_low_quality_matches=True
    ),
    odm_matcher=L(Matcher)(
        thresholds=[0.4, 0.5], labels=[0, -1, 1], allow_low_quality_matches=True
    ),
    num_classes=15,
    focal_loss_alpha=0.25,
    focal_loss_gamma=2.0,
    box_reg_loss_type="smooth_l1",
    smooth_l1_beta=0.11,
    fam_loss_weight=1.0,
    odm_loss_weight=1.0,
    test_score_thresh=0.05,
    test_topk_candidates=2000,
    test_nms_thresh=0.1,
    max_detections_per_image=2000,
    pixel_mean=[103.530, 116.280, 123.675],
    pixel_std=[1.0, 1.0, 1.0],
    input_format="BGR",
)

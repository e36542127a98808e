"""Rotated Faster R-CNN, R-50-FPN: GeneralizedRCNN + RRPN + RROIHeads (model definition only).

Defaults follow Detectron2's RRPN / RROIHeads: rotated anchors of 3 aspect ratios x 6 angles per
location on P2-P6, RPN IoU thresholds 0.3 / 0.7, RoI IoU threshold 0.5, ROIAlignRotated 7x7,
two 1024-d fc layers, box coder weights (10, 10, 5, 5, 1) in the RoI head. Unlike Detectron2,
box targets use the "le90" angle convention (ANGLE_VERSION below), as MMRotate does.
"""

from rotated_det.config import LazyCall as L
from rotated_det.layers import ShapeSpec
from rotated_det.modeling import (
    FPN,
    RRPN,
    BasicStem,
    Box2BoxTransformRotated,
    FastRCNNConvFCHead,
    GeneralizedRCNN,
    LastLevelMaxPool,
    Matcher,
    ResNet,
    ROIPooler,
    RotatedAnchorGenerator,
    RotatedFastRCNNOutputLayers,
    RROIHeads,
    StandardRPNHead,
)

ANGLES = [-60, -30, 0, 30, 60, 90]
# Boxes are compared in MMRotate's "le90" convention, so that the same rectangle written two ways
# (w, h, a) / (h, w, a + 90) / (w, h, a + 180) gives no regression target; set None for
# Detectron2's behaviour.
ANGLE_VERSION = "le90"
ASPECT_RATIOS = [0.5, 1.0, 2.0]

model = L(GeneralizedRCNN)(
    backbone=L(FPN)(
        bottom_up=L(ResNet)(
            stem=L(BasicStem)(in_channels=3, out_channels=64, norm="FrozenBN"),
            stages=L(ResNet.make_default_stages)(depth=50, stride_in_1x1=True, norm="FrozenBN"),
            out_features=["res2", "res3", "res4", "res5"],
            freeze_at=2,
        ),
        in_features=["res2", "res3", "res4", "res5"],
        out_channels=256,
        top_block=L(LastLevelMaxPool)(),
    ),
    proposal_generator=L(RRPN)(
        in_features=["p2", "p3", "p4", "p5", "p6"],
        head=L(StandardRPNHead)(
            in_channels=256, num_anchors=len(ANGLES) * len(ASPECT_RATIOS), box_dim=5
        ),
        anchor_generator=L(RotatedAnchorGenerator)(
            sizes=[[32], [64], [128], [256], [512]],
            aspect_ratios=ASPECT_RATIOS,
            angles=ANGLES,
            strides=[4, 8, 16, 32, 64],
            offset=0.0,
        ),
        anchor_matcher=L(Matcher)(
            thresholds=[0.3, 0.7], labels=[0, -1, 1], allow_low_quality_matches=True
        ),
        box2box_transform=L(Box2BoxTransformRotated)(
            weights=(1.0, 1.0, 1.0, 1.0, 1.0), angle_version=ANGLE_VERSION, edge_swap=True
        ),
        batch_size_per_image=256,
        positive_fraction=0.5,
        pre_nms_topk=(2000, 1000),
        post_nms_topk=(1000, 1000),
        nms_thresh=0.7,
        box_reg_loss_type="smooth_l1",
    ),
    roi_heads=L(RROIHeads)(
        num_classes=15,
        box_in_features=["p2", "p3", "p4", "p5"],
        box_pooler=L(ROIPooler)(
            output_size=7,
            scales=(1.0 / 4, 1.0 / 8, 1.0 / 16, 1.0 / 32),
            sampling_ratio=2,
            pooler_type="ROIAlignRotated",
        ),
        box_head=L(FastRCNNConvFCHead)(
            input_shape=L(ShapeSpec)(channels=256, height=7, width=7),
            conv_dims=[],
            fc_dims=[1024, 1024],
        ),
        box_predictor=L(RotatedFastRCNNOutputLayers)(
            input_shape=L(ShapeSpec)(channels=1024),
            box2box_transform=L(Box2BoxTransformRotated)(
                weights=(10.0, 10.0, 5.0, 5.0, 10.0), angle_version=ANGLE_VERSION, edge_swap=True
            ),
            num_classes="${..num_classes}",
            test_score_thresh=0.05,
            test_nms_thresh=0.1,
            test_topk_per_image=2000,
            box_reg_loss_type="smooth_l1",
        ),
        proposal_matcher=L(Matcher)(
            thresholds=[0.5], labels=[0, 1], allow_low_quality_matches=False
        ),
        batch_size_per_image=512,
        positive_fraction=0.25,
    ),
    pixel_mean=[103.530, 116.280, 123.675],
    pixel_std=[1.0, 1.0, 1.0],
    input_format="BGR",
)

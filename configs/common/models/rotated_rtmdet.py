"""Rotated RTMDet, tiny / s / m / l (model definitions only).

As MMRotate's rotated_rtmdet_{tiny,s,m,l}-3x-dota (le90): CSPNeXt (P5 arch, channel attention,
SiLU, BN) with the sizes' depth / width factors, a CSPNeXt-PAFPN neck (P3-P5), the head with 2
shared 3x3 convs per tower and BatchNorms per level, 1x1 predictors, points at the cell corners
(offset 0) of strides 8 / 16 / 32, distances ``x * stride`` (tiny, s) or ``exp(x) * stride``
(m, l), the angle regressed in radians and learnt through the rotated IoU loss, dynamic
soft-label assignment (top 13, IoU weight 3, centre radius 3 strides), quality focal loss
(beta 2, weight 1) and rotated IoU loss (1 - IoU, weight 2), RTMDet's pixel normalisation
(BGR mean 103.53 / 116.28 / 123.675, std 57.375 / 57.12 / 58.395), test: 2000 candidates per
level, score 0.05, rotated NMS 0.1, 2000 detections.

``rotated_rtmdet_model(size)`` returns the definition of one size; ``model`` is the tiny one.
MMRotate's parameter counts (15 classes): tiny 4.88 M, s 8.86 M, m 24.67 M, l 52.27 M.
"""

from rotated_det.config import LazyCall as L
from rotated_det.modeling import (
    CSPNEXT_SIZES,
    CSPNeXt,
    CSPNeXtPAFPN,
    DistanceAnglePointCoder,
    DynamicSoftLabelAssigner,
    PointGenerator,
    RegressionAngleCoder,
    RotatedRTMDet,
    RotatedRTMDetHead,
)

STRIDES = [8, 16, 32]
ANGLE_VERSION = "le90"
SIZES = tuple(CSPNEXT_SIZES)  # "tiny", "s", "m", "l"
# exp() on the distances: MMRotate's m and l configs (tiny and s regress them linearly)
EXP_ON_REG = {"tiny": False, "s": False, "m": True, "l": True}


def rotated_rtmdet_model(size: str = "l", num_classes: int = 15):
    """The LazyCall definition of Rotated RTMDet of ``size`` ("tiny", "s", "m" or "l")."""
    if size not in CSPNEXT_SIZES:
        raise ValueError(f"rotated_rtmdet_model: size must be one of {SIZES}, got {size!r}")
    deepen, widen = CSPNEXT_SIZES[size]
    channels = int(256 * widen)  # neck and head width: 96, 128, 192, 256
    return L(RotatedRTMDet)(
        backbone=L(CSPNeXtPAFPN)(
            bottom_up=L(CSPNeXt)(
                deepen_factor=deepen,
                widen_factor=widen,
                expand_ratio=0.5,
                channel_attention=True,
                norm="BN",
                out_features=["res3", "res4", "res5"],
            ),
            in_features=["res3", "res4", "res5"],
            out_channels=channels,
            num_csp_blocks=max(round(3 * deepen), 1),
            expand_ratio=0.5,
            norm="BN",
        ),
        head=L(RotatedRTMDetHead)(
            in_channels=channels,
            num_classes="${..num_classes}",
            strides=STRIDES,
            feat_channels=channels,
            stacked_convs=2,
            norm="BN",
            share_conv=True,
            exp_on_reg=EXP_ON_REG[size],
            angle_encode_size=1,
            prior_prob=0.01,
        ),
        head_in_features=["p3", "p4", "p5"],
        point_generator=L(PointGenerator)(strides=STRIDES, offset=0.0),
        assigner=L(DynamicSoftLabelAssigner)(topk=13, iou_weight=3.0, soft_center_radius=3.0),
        box_coder=L(DistanceAnglePointCoder)(angle_version=ANGLE_VERSION),
        angle_coder=L(RegressionAngleCoder)(angle_version=ANGLE_VERSION),
        num_classes=num_classes,
        qfl_beta=2.0,
        cls_loss_weight=1.0,
        box_loss_weight=2.0,
        box_loss_mode="linear",
        test_score_thresh=0.05,
        test_topk_candidates=2000,
        test_nms_thresh=0.1,
        max_detections_per_image=2000,
        pixel_mean=[103.53, 116.28, 123.675],
        pixel_std=[57.375, 57.12, 58.395],
        input_format="BGR",
    )


model = rotated_rtmdet_model("tiny")

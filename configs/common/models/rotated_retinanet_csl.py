"""Rotated RetinaNet with a circular-smooth-label angle branch (CSL, Yang & Yan, ECCV 2020),
R-50-FPN (model definition only).

As MMRotate's rotated_retinanet_obb_csl_gaussian_r50_fpn_fp16_1x_dota_le90: the box subnet
regresses (x, y, w, h) deltas against angle-0 anchors (targets in le90: w is the long side) and
an angle branch classifies the angle into 180 / omega bins (Gaussian window of radius 3 bins,
omega 4 degrees), trained with focal loss (weight 0.8).
"""

from rotated_det.config import LazyCall as L
from rotated_det.modeling import Box2BoxTransformRotated, CSLCoder

from .rotated_retinanet import model

model.angle_coder = L(CSLCoder)(angle_version="le90", omega=4, window="gaussian", radius=3)
model.angle_loss_weight = 0.8
model.head.box_dim = 4
model.head.angle_encode_size = 180 // 4
# Targets are rewritten in the angle coder's le90; the box coder only sees angle-0 anchors.
model.box2box_transform = L(Box2BoxTransformRotated)(weights=(1.0, 1.0, 1.0, 1.0, 1.0))

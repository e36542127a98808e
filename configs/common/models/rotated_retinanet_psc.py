"""Rotated RetinaNet with a phase-shifting angle coder (PSC, Yu & Da, CVPR 2023), R-50-FPN
(model definition only).

As MMRotate's rotated-retinanet-rbox-le90_r50_fpn_psc-dual_amp-1x_dota: the box subnet
regresses (x, y, w, h) deltas against angle-0 anchors (targets in le90) with L1 loss of weight
0.5 and an angle branch predicts the dual-frequency 3-step phase code (6 channels: the 180-degree
period for elongated objects and the 90-degree one for square-like objects), L1 loss of weight 0.2.
"""

from rotated_det.config import LazyCall as L
from rotated_det.modeling import Box2BoxTransformRotated, PSCCoder

from .rotated_retinanet import model

model.angle_coder = L(PSCCoder)(angle_version="le90", num_step=3, dual_freq=True)
model.angle_loss_weight = 0.2
model.box_reg_loss_weight = 0.5
model.head.box_dim = 4
model.head.angle_encode_size = 6  # num_step x 2 frequencies
# Targets are rewritten in the angle coder's le90; the box coder only sees angle-0 anchors.
model.box2box_transform = L(Box2BoxTransformRotated)(weights=(1.0, 1.0, 1.0, 1.0, 1.0))

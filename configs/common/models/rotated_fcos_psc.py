"""Rotated FCOS with a phase-shifting angle coder (PSC, Yu & Da, CVPR 2023), R-50-FPN (model
definition only).

As MMRotate's rotated-fcos-hbox-le90_r50_fpn_psc-dual_1x_dota: the rotated FCOS of
rotated_fcos.py, but the box loss is the IoU of the (left, top, right, bottom) boxes in the
target's frame (-log IoU; MMRotate's ``use_hbbox_loss``) and the angle is learnt only through the
dual-frequency 3-step phase code (6 channels, no per-level angle scale), L1 loss of weight 0.1.
"""

from rotated_det.config import LazyCall as L
from rotated_det.modeling import PSCCoder

from .rotated_fcos import ANGLE_VERSION, model

model.angle_coder = L(PSCCoder)(angle_version=ANGLE_VERSION, num_step=3, dual_freq=True)
model.head.angle_encode_size = 6  # num_step x 2 frequencies
model.head.scale_angle = False
model.box_loss_type = "hbox_log_iou"
model.angle_loss_weight = 0.1

"""Rotated ATSS, R-50-FPN (P3-P7) (model definition only).

As MMRotate's rotated_atss_obb_r50_fpn_1x_dota_le90: the Rotated RetinaNet of
rotated_retinanet.py with one square anchor per location (side 4 x stride, angle 0), targets
assigned by ATSS on rotated IoU (top 9 anchors per level by centre distance, IoU threshold =
mean + std of their IoUs, centre inside the box) instead of fixed IoU thresholds, and L1 loss on
le90 deltas with edge swap. MMRotate's head has no centerness branch either.
"""

from rotated_det.config import LazyCall as L
from rotated_det.modeling import RotatedATSSAssigner

from .rotated_retinanet import model

STRIDES = [8, 16, 32, 64, 128]

model.head.num_anchors = 1
model.anchor_generator.sizes = [[4 * stride] for stride in STRIDES]
model.anchor_generator.aspect_ratios = [1.0]
model.anchor_matcher = L(RotatedATSSAssigner)(topk=9)

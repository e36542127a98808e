"""H2RBox-v2, R-50-FPN (P3-P7) (model definition only): a rotated detector trained from
horizontal boxes (rotated_det.modeling.H2RBoxV2).

As MMRotate's h2rbox_v2-le90_r50_fpn-1x_dota: the rotated FCOS of rotated_fcos.py (centre
sampling 1.5 strides, FCOS's regress ranges, 4 x 256 GroupNorm convs per tower, centerness on the
regression tower, focal loss (0.25, 2), le90) with a single-frequency 3-step phase-shifting angle
code (no per-level angle scale, no modulation threshold) learnt only from the symmetry losses
(rotated view turned by 45-135 degrees with reflection padding, flipped view; weights 1.0 and
0.05, smooth L1 beta 0.1 rad, snap loss), the boxes from the -log IoU of their circumscribed
boxes, and DOTA's baseball-diamond (1), storage-tank (9) and roundabout (11) as classes without
an orientation (baseball-diamond boxes shrunk x0.85 at inference). A dataset with other classes
sets ``model.square_classes`` (and ``model.square_class_scales``) to its own round or square-like
classes, or to [] when it has none.
"""

import copy

from rotated_det.config import LazyCall as L
from rotated_det.modeling import H2RBoxV2, PSCCoder

from .rotated_fcos import ANGLE_VERSION
from .rotated_fcos import model as _rotated_fcos

model = copy.deepcopy(_rotated_fcos)
model._target_ = H2RBoxV2
model.angle_coder = L(PSCCoder)(
    angle_version=ANGLE_VERSION, num_step=3, dual_freq=False, thr_mod=0.0
)
model.head.angle_encode_size = 3  # num_step x 1 frequency
model.head.scale_angle = False
model.box_loss_type = "log_iou"
del model.angle_loss_weight  # no angle labels: H2RBoxV2 has no angle-coder loss
model.view_range = [45.0, 135.0]  # degrees: MMRotate's (0.25, 0.75) x pi
model.rotate_padding = "reflection"
model.square_classes = [1, 9, 11]
model.square_class_scales = [0.85, 1.0, 1.0]
model.rotation_loss_weight = 1.0
model.flip_loss_weight = 0.05
model.symmetry_beta = 0.1
model.snap_loss = True

"""R3Det, R-50-FPN (P3-P7) (model definition only).

As MMRotate's r3det-oc_r50_fpn_1x_dota (DOTA v1.0 69.80): the first stage is the Rotated
RetinaNet of rotated_retinanet.py (9 anchors per location, IoU thresholds 0.4 / 0.5, focal loss)
with MMRotate's "oc" angle version and smooth L1 (beta 0.11) on the deltas, its anchors matched
against each object's enclosing horizontal box (MMRotate 0.x's default for this head,
``assign_by_circumhbbox``: see R3Det's docstring for the object it mattered for); one refinement
stage: the feature refinement module (5 x 1, 1 x 5 and 1 x 1 convs, then rotated feature
alignment at each location's best refined box) and a RetinaNet head of the same width with one
box per location, IoU thresholds 0.5 / 0.6, stage loss weight 1.0. Test: 2000 candidates per
level, score 0.05, NMS 0.1, 2000 detections.

One difference: the box coder swaps edges (``edge_swap=True``; MMRotate's R3Det does not). The
refinement stage's sources are predicted boxes, whose "oc" angles fall on either side of the
0 / 90 degree boundary from one iteration to the next for objects near it: without the swap the
same object's target flips between ``(dw, dh, da)`` and ``(dh, dw, da -+ 90 deg)``. On the
overfit test's two images (an object at angle 0, a square) the refinement stage's box loss then
kept jumping between 0.04 and 0.55 for 120 iterations (total loss down to 25%, not 20%); with
the swap it falls below 0.001 and the total loss to 0.03-1.1% (seeds 0-4; 0.08-0.33% since the
first stage matches by enclosing box). The decoded boxes are the same rectangles either way.
"""

from rotated_det.config import LazyCall as L
from rotated_det.modeling import (
    Box2BoxTransformRotated,
    FeatureRefineModule,
    Matcher,
    R3Det,
    RotatedRetinaNetHead,
)

from .rotated_retinanet import model as retinanet

STRIDES = [8, 16, 32, 64, 128]

retinanet.head.norm = ""  # named so that the refinement head can follow it
model = L(R3Det)(
    **{key: value for key, value in retinanet.items() if key != "_target_"},
    # The refinement stages follow the first head's width, depth, norm and class count
    # (interpolations: edits of model.head, e.g. by the ResNet-18 quickstart, carry over).
    refine_modules=[L(FeatureRefineModule)(in_channels="${...head.in_channels}", strides=STRIDES)],
    refine_heads=[
        L(RotatedRetinaNetHead)(
            in_channels="${...head.in_channels}",
            num_classes="${...num_classes}",
            num_anchors=1,
            conv_dims="${...head.conv_dims}",
            norm="${...head.norm}",
            prior_prob=0.01,
        )
    ],
    refine_matchers=[
        L(Matcher)(thresholds=[0.5, 0.6], labels=[0, -1, 1], allow_low_quality_matches=True)
    ],
    stage_loss_weights=[1.0],
    assign_by_circumhbbox=True,
)
model.box2box_transform = L(Box2BoxTransformRotated)(
    weights=(1.0, 1.0, 1.0, 1.0, 1.0), angle_version="oc", edge_swap=True
)
model.box_reg_loss_type = "smooth_l1"
model.smooth_l1_beta = 0.11

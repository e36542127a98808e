"""RoI Transformer, R-50-FPN (model definition only).

As MMRotate's roi_trans_r50_fpn_1x_dota_le90: the horizontal RPN of horizontal_rpn.py; an RRoI
learner on the axis-aligned proposals (7x7 RoIAlign with adaptive sampling, two 1024-d fc
layers, classification and one class-agnostic horizontal-to-rotated regression: le90 targets with
edge swap, weights (10, 10, 5, 5) for the box and 1 / (2 pi) for the angle in radians, i.e.
MMRotate's target stds (0.1, 0.1, 0.2, 0.2, 1) with the angle normalised by 2 pi); then the rotated
stage of the Rotated Faster R-CNN definition (ROIAlignRotated 7x7, sampling ratio 2) with weights
(20, 20, 10, 10, 2) (stds (0.05, 0.05, 0.1, 0.1, 0.5)) and the centre offset measured along the
RoI's axes (``proj_xy``, MMRotate's DeltaXYWHAOBBoxCoder). Both stages: IoU 0.5 for foreground
(the learner on the ground truth's bounding boxes), 512 RoIs per image, 25% foreground, smooth L1
beta 1, loss weights (1, 1); detections: score > 0.05, rotated NMS 0.1, 2000 per image.
"""

import copy
import math

from rotated_det.config import LazyCall as L
from rotated_det.layers import ShapeSpec
from rotated_det.modeling import (
    Box2BoxTransformRotated,
    FastRCNNConvFCHead,
    Matcher,
    ROIPooler,
    RoITransformer,
    RoITransformerROIHeads,
    RotatedRoIPredictor,
    RROIHeads,
)

from .horizontal_rpn import rpn
from .rotated_faster_rcnn import ANGLE_VERSION
from .rotated_faster_rcnn import model as _rotated_faster_rcnn

model = copy.deepcopy(_rotated_faster_rcnn)
model._target_ = RoITransformer
model.proposal_generator = copy.deepcopy(rpn)
model.roi_heads._target_ = RoITransformerROIHeads
model.roi_heads.rroi_learner = L(RROIHeads)(
    num_classes="${..num_classes}",
    box_in_features=["p2", "p3", "p4", "p5"],
    box_pooler=L(ROIPooler)(
        output_size=7,
        scales=(1.0 / 4, 1.0 / 8, 1.0 / 16, 1.0 / 32),
        sampling_ratio=0,
        pooler_type="ROIAlignRotated",  # on angle-0 RoIs: axis-aligned RoIAlign
    ),
    box_head=L(FastRCNNConvFCHead)(
        input_shape=L(ShapeSpec)(channels=256, height=7, width=7),
        conv_dims=[],
        fc_dims=[1024, 1024],
    ),
    box_predictor=L(RotatedRoIPredictor)(
        input_shape=L(ShapeSpec)(channels=1024),
        box2box_transform=L(Box2BoxTransformRotated)(
            weights=(10.0, 10.0, 5.0, 5.0, 1.0 / (2 * math.pi)),
            angle_version=ANGLE_VERSION,
            edge_swap=True,
        ),
        num_classes="${..num_classes}",
        cls_agnostic_bbox_reg=True,
        box_reg_loss_type="smooth_l1",
        smooth_l1_beta=1.0,
    ),
    proposal_matcher=L(Matcher)(thresholds=[0.5], labels=[0, 1], allow_low_quality_matches=False),
    batch_size_per_image=512,
    positive_fraction=0.25,
    match_bounding_boxes=True,
)
model.roi_heads.stage_loss_weights = (1.0, 1.0)
model.roi_heads.box_predictor.box2box_transform.weights = (20.0, 20.0, 10.0, 10.0, 2.0)
model.roi_heads.box_predictor.box2box_transform.proj_xy = True
model.roi_heads.box_predictor.smooth_l1_beta = 1.0

"""Gliding Vertex, R-50-FPN (model definition only).

As MMRotate's gliding_vertex_r50_fpn_1x_dota_le90: the horizontal RPN of horizontal_rpn.py, then
RoI heads on the axis-aligned proposals (7x7 RoIAlign with adaptive sampling, two 1024-d fc
layers) that predict the class and, class-agnostic, the bounding-box deltas (weights
(10, 10, 5, 5), smooth L1 beta 1), the 4 vertex glides (smooth L1 beta 1/3) and the obliquity
(smooth L1 beta 1/3, loss weight 16). Proposals match the ground truth's bounding boxes at IoU 0.5,
512 RoIs per image, 25% foreground. Detections: objects of predicted obliquity above 0.8 keep
their bounding box, the others the minimum-area rectangle of the glided vertices (le90);
score > 0.05, rotated NMS 0.1, 2000 per image.
"""

import copy

from rotated_det.config import LazyCall as L
from rotated_det.layers import ShapeSpec
from rotated_det.modeling import (
    FastRCNNConvFCHead,
    GlidingVertex,
    GlidingVertexCoder,
    GlidingVertexOutputLayers,
    Matcher,
    ROIPooler,
    RROIHeads,
)

from .horizontal_rpn import rpn
from .rotated_faster_rcnn import ANGLE_VERSION
from .rotated_faster_rcnn import model as _rotated_faster_rcnn

model = copy.deepcopy(_rotated_faster_rcnn)
model._target_ = GlidingVertex
model.proposal_generator = copy.deepcopy(rpn)
model.roi_heads = L(RROIHeads)(
    num_classes=15,
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
    box_predictor=L(GlidingVertexOutputLayers)(
        input_shape=L(ShapeSpec)(channels=1024),
        box2box_transform=L(GlidingVertexCoder)(
            weights=(10.0, 10.0, 5.0, 5.0), obliquity_threshold=0.8, angle_version=ANGLE_VERSION
        ),
        num_classes="${..num_classes}",
        test_score_thresh=0.05,
        test_nms_thresh=0.1,
        test_topk_per_image=2000,
        smooth_l1_beta={"loss_box_reg": 1.0, "loss_glide": 1.0 / 3, "loss_obliquity": 1.0 / 3},
        loss_weight={
            "loss_cls": 1.0,
            "loss_box_reg": 1.0,
            "loss_glide": 1.0,
            "loss_obliquity": 16.0,
        },
    ),
    proposal_matcher=L(Matcher)(thresholds=[0.5], labels=[0, 1], allow_low_quality_matches=False),
    batch_size_per_image=512,
    positive_fraction=0.25,
    match_bounding_boxes=True,
)

"""Oriented RepPoints, R-50-FPN (P3-P7) (model definition only).

As MMRotate's oriented_reppoints_r50_fpn_1x_dota_le135 (DOTA v1.0 71.94): rotated RepPoints
(rotated_reppoints.py) whose refine candidates (convex-hull IoU >= 0.1) are scored by the
adaptive points assessment (classification, localisation, orientation and point-correlation
quality; initial stage weight 0.2) and the best 40% of each object's 6-per-level candidates kept;
spatial constraint of weight 0.05 (initial) and 0.1 (refined).
"""

import copy

from rotated_det.config import LazyCall as L
from rotated_det.modeling import AdaptivePointsAssignment

from .rotated_reppoints import model as reppoints_model

model = copy.deepcopy(reppoints_model)
model.refine_assigner.pos_iou_thr = 0.1
model.refine_assigner.neg_iou_thr = 0.1
model.refine_selection = L(AdaptivePointsAssignment)(
    top_ratio=0.4, init_weight=0.2, ori_weight=0.3, poc_weight=0.1, candidates_per_level=6
)
model.spatial_init_weight = 0.05
model.spatial_refine_weight = 0.1

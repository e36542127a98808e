"""CFA, R-50-FPN (P3-P7) (model definition only).

As MMRotate's cfa_r50_fpn_1x_dota_le135 (DOTA v1.0 69.63): rotated RepPoints
(rotated_reppoints.py) whose refine candidates (convex-hull IoU >= 0.1) are split and re-weighted
by the convex-hull feature adaptation (6 per level and object, anti-aliasing factor 0.75).
"""

import copy

from rotated_det.config import LazyCall as L
from rotated_det.modeling import ConvexHullFeatureAdaptation

from .rotated_reppoints import model as reppoints_model

model = copy.deepcopy(reppoints_model)
model.refine_assigner.pos_iou_thr = 0.1
model.refine_assigner.neg_iou_thr = 0.1
model.refine_selection = L(ConvexHullFeatureAdaptation)(anti_factor=0.75, candidates_per_level=6)

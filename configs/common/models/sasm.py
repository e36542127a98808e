"""SASM, R-50-FPN (P3-P7) (model definition only).

As MMRotate's sasm_reppoints_r50_fpn_1x_dota_oc (DOTA v1.0 66.45): rotated RepPoints
(rotated_reppoints.py) with the shape-adaptive selection of the refine positives (9 candidates
per level and object, IoU threshold lowered for elongated objects), the shape-adaptive
measurement weights of the positives and the shape-balanced convex GIoU loss of the initial
points.
"""

import copy

from rotated_det.config import LazyCall as L
from rotated_det.modeling import SASAssigner, ShapeAdaptiveMeasurement

from .rotated_reppoints import model as reppoints_model

model = copy.deepcopy(reppoints_model)
model.refine_assigner = L(SASAssigner)(topk=9)
model.shape_measurement = L(ShapeAdaptiveMeasurement)()
model.init_loss_type = "bc_convex_giou"

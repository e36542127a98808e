from .box_regression_loss import BOX_REG_LOSS_TYPES, box_regression_loss
from .convex_giou_loss import bc_convex_giou_loss, convex_giou_loss
from .focal_loss import sigmoid_focal_loss
from .gaussian_loss import gwd_loss, kld_loss, rbox_to_gaussian
from .kfiou_loss import KFIOU_FUNS, kfiou, kfiou_loss
from .quality_focal_loss import quality_focal_loss
from .rotated_iou_loss import ROTATED_IOU_LOSS_MODES, rotated_iou_loss
from .smooth_l1_loss import smooth_l1_loss
from .spatial_border_loss import spatial_border_loss

__all__ = [
    "BOX_REG_LOSS_TYPES",
    "KFIOU_FUNS",
    "ROTATED_IOU_LOSS_MODES",
    "bc_convex_giou_loss",
    "box_regression_loss",
    "convex_giou_loss",
    "gwd_loss",
    "kfiou",
    "kfiou_loss",
    "kld_loss",
    "quality_focal_loss",
    "rbox_to_gaussian",
    "rotated_iou_loss",
    "sigmoid_focal_loss",
    "smooth_l1_loss",
    "spatial_border_loss",
]

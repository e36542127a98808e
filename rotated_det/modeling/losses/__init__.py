from .box_regression_loss import BOX_REG_LOSS_TYPES, box_regression_loss
from .focal_loss import sigmoid_focal_loss
from .gaussian_loss import gwd_loss, kld_loss, rbox_to_gaussian
from .smooth_l1_loss import smooth_l1_loss

__all__ = [
    "BOX_REG_LOSS_TYPES",
    "box_regression_loss",
    "gwd_loss",
    "kld_loss",
    "rbox_to_gaussian",
    "sigmoid_focal_loss",
    "smooth_l1_loss",
]

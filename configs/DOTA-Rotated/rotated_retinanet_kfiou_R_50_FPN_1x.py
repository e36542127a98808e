# Rotated RetinaNet R-50-FPN with the KFIoU loss (Yang et al., ICLR 2023) on DOTA v1.0 (15 classes),
# MMRotate's 1x schedule (_base_1x.py), as MMRotate's
# rotated_retinanet_obb_kfiou_r50_fpn_1x_dota_le90 (DOTA v1.0 69.60): the box loss is KFIoU of
# the decoded box plus the smooth-L1 centre term.
from .rotated_retinanet_R_50_FPN_1x import dataloader, lr_multiplier, model, optimizer, train

model.box_reg_loss_type = "kfiou"

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]

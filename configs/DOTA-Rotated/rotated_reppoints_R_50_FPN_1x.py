# Rotated RepPoints R-50-FPN on DOTA v1.0 (15 classes), MMRotate's 1x schedule (_base_1x.py) at its
# lr 0.008 for batch 2 (rotated_reppoints_r50_fpn_1x_dota_oc, 59.44).
from ..common.models.rotated_reppoints import model
from ._base_1x import NUM_CLASSES, dataloader, lr_multiplier, optimizer, train

model.num_classes = NUM_CLASSES
optimizer.lr = 0.008

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]

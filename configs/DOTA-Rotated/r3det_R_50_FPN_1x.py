# R3Det R-50-FPN on DOTA v1.0 (15 classes), MMRotate's 1x schedule (_base_1x.py), as MMRotate's
# r3det-oc_r50_fpn_1x_dota (DOTA v1.0 69.80).
from ..common.models.r3det import model
from ._base_1x import NUM_CLASSES, dataloader, lr_multiplier, optimizer, train

model.num_classes = NUM_CLASSES

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]

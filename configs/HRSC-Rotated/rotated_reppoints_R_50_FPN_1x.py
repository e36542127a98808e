# Rotated RepPoints R-50-FPN on HRSC2016 (1 class), 1x schedule (_base_1x.py) at the lr of
# MMRotate's DOTA config (0.008 for batch 2; MMRotate has no HRSC config of the point-set family).
from ..common.models.rotated_reppoints import model
from ._base_1x import NUM_CLASSES, dataloader, lr_multiplier, optimizer, train

model.num_classes = NUM_CLASSES
optimizer.lr = 0.008

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]

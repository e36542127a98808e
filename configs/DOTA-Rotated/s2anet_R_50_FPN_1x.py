# S2A-Net R-50-FPN on DOTA v1.0 (15 classes), MMRotate's 1x schedule (_base_1x.py).
from ..common.models.s2anet import model
from ._base_1x import NUM_CLASSES, dataloader, lr_multiplier, optimizer, train

model.num_classes = NUM_CLASSES

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]

# R3Det R-50-FPN with the KLD loss on HRSC2016 (1 class), 1x schedule (_base_1x.py).
from ..common.models.r3det_kld import model
from ._base_1x import NUM_CLASSES, dataloader, lr_multiplier, optimizer, train

model.num_classes = NUM_CLASSES

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]

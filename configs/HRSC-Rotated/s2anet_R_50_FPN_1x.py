# S2A-Net R-50-FPN on HRSC2016 (1 class), 1x schedule (_base_1x.py). MMRotate trains it 3x on
# HRSC (s2anet-le135_r50_fpn_3x_hrsc): add train.max_iter=11088 (36 epochs; lr steps follow).
from ..common.models.s2anet import model
from ._base_1x import NUM_CLASSES, dataloader, lr_multiplier, optimizer, train

model.num_classes = NUM_CLASSES

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]

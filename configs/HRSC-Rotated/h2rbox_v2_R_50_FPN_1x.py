# H2RBox-v2, R-50-FPN, on HRSC2016 (1 class, "ship") trained from the HORIZONTAL boxes of the
# labels and scored against the rotated ones; 1x schedule (_base_1x.py) with MMRotate's H2RBox-v2
# HRSC optimizer: AdamW lr 5e-5 at 2 images, weight decay 0.005. MMRotate trains it 6x on HRSC
# (72 epochs, 89.66 mAP50 in the paper): train.max_iter=<6 x this config's> for that.
from ..common.models.h2rbox_v2 import model
from ..common.optim import AdamW as optimizer
from ._base_1x import NUM_CLASSES, dataloader, lr_multiplier, train

model.num_classes = NUM_CLASSES
model.square_classes = []  # ships all have an orientation
model.square_class_scales = []
optimizer.lr = 5e-5
optimizer.weight_decay = 0.005

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]

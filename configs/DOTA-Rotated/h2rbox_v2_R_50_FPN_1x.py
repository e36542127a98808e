# H2RBox-v2, R-50-FPN, on DOTA v1.0 (15 classes) trained from the HORIZONTAL boxes of the labels
# (the model replaces every gt box by its enclosing horizontal box) and scored against the rotated
# ones; MMRotate's 1x schedule (_base_1x.py) with its H2RBox-v2 optimizer: AdamW lr 5e-5 at 2
# images, weight decay 0.05 (72.59 mAP50 on DOTA v1.0 in MMRotate's model zoo).
from ..common.models.h2rbox_v2 import model
from ..common.optim import AdamW as optimizer
from ._base_1x import NUM_CLASSES, dataloader, lr_multiplier, train

model.num_classes = NUM_CLASSES
optimizer.lr = 5e-5
optimizer.weight_decay = 0.05

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]

# Shared by the DOTA-Rotated Rotated RTMDet *_100e_aug configs (not a runnable config by itself):
# MMRotate's rotated_rtmdet_l-100e-aug-dota recipe -- the 3x configs' data, optimizer and
# flat-then-cosine schedule (_base_rtmdet_3x.py) over 100 epochs, with RTMDet's strong
# augmentation (configs/common/data/rtmdet_augmentation.py: cached mosaic of 1024 px quadrants,
# jitter x0.1-2 of the 2048 px canvas, random rotation with quarter turns for storage tank and
# roundabout, 1024 px crops, flips, cached mixup) switched off for the last 10 epochs, and an EMA
# of the weights (MMDetection's ExpMomentumEMA, momentum 0.0002, gamma 2000 = decay 0.9998, tau
# 2000) used for evaluation and export.
from ..common.data.rtmdet_augmentation import use_rtmdet_augmentation
from ._base_rtmdet_3x import (
    ITERS_PER_EPOCH,
    NUM_CLASSES,
    ROUND_CLASSES,
    dataloader,
    lr_multiplier,
    optimizer,
    train,
)

EPOCHS = 100
STAGE2_EPOCHS = 10  # the last epochs train without mosaic and mixup

use_rtmdet_augmentation(
    dataloader,
    train,
    image_size=1024,
    last_iters=STAGE2_EPOCHS * ITERS_PER_EPOCH,
    jitter=(0.1, 2.0),
    rect_classes=ROUND_CLASSES,
)
train.max_iter = EPOCHS * ITERS_PER_EPOCH
train.model_ema.enabled = True
train.model_ema.decay = 0.9998
train.model_ema.tau = 2000

__all__ = ["dataloader", "optimizer", "train", "lr_multiplier", "NUM_CLASSES"]

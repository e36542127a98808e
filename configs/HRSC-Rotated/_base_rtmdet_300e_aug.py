# Shared by the HRSC-Rotated Rotated RTMDet *_300e_aug configs (not a runnable config by itself):
# MMRotate's rotated_rtmdet_l-300e-aug-hrsc recipe -- 100 epochs of the 3 x repeated trainval
# images (300 epochs), batch 8, with RTMDet's strong augmentation
# (configs/common/data/rtmdet_augmentation.py: cached mosaic of 800 px quadrants, jitter x0.1-2
# of the 1600 px canvas, random rotation, 800 px crops, flips, cached mixup) switched off for the
# last 10 (x3) epochs, and an EMA of the weights (decay 0.9998, tau 2000). Its lr: MMRotate's
# config names base_lr = 0.004 / 2, but that value only reaches the cosine's floor (0.004 / 2 *
# 0.05 = 1e-4); the optimizer keeps schedule_3x's 0.004 / 16, so the cosine ends at x0.4. (The l
# config crops 1024 px out of what it pads to 800 px; 800 px crops here, as in the tiny one.)
from ..common.data.rtmdet_augmentation import use_rtmdet_augmentation
from ..common.schedule import flat_cosine
from ._base_rtmdet_3x import (
    ITERS_PER_EPOCH,
    NUM_CLASSES,
    dataloader,
    optimizer,
    train,
)

EPOCHS = 100 * 3  # 100 epochs of the 3 x repeated dataset
STAGE2_EPOCHS = 10 * 3

use_rtmdet_augmentation(
    dataloader,
    train,
    image_size=800,
    last_iters=STAGE2_EPOCHS * ITERS_PER_EPOCH,
    jitter=(0.1, 2.0),
)
train.max_iter = EPOCHS * ITERS_PER_EPOCH
train.checkpointer.period = 20 * 3 * ITERS_PER_EPOCH
train.eval_period = 20 * 3 * ITERS_PER_EPOCH
train.model_ema.enabled = True
train.model_ema.decay = 0.9998
train.model_ema.tau = 2000
lr_multiplier = flat_cosine(flat_fraction=0.5, end_value=0.4, warmup_iters=1000)

__all__ = ["dataloader", "optimizer", "train", "lr_multiplier", "NUM_CLASSES"]

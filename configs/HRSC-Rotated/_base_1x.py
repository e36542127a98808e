# Shared by the HRSC-Rotated configs (not a runnable config by itself): HRSC2016 (one "ship"
# class, 800 px shorter side) with the 1x schedule of the DOTA configs -- 12 epochs at batch 2,
# SGD lr 0.005, warm-up, lr x0.1 after epochs 8 and 11.
from ..common.data.hrsc import dataloader
from ..common.optim import SGD as optimizer
from ..common.schedule import mmrotate_1x
from ..common.train import train

HRSC_TRAINVAL_IMAGES = 617
IMS_PER_BATCH = 2
EPOCHS = 12
ITERS_PER_EPOCH = HRSC_TRAINVAL_IMAGES // IMS_PER_BATCH
NUM_CLASSES = 1

dataloader.train.total_batch_size = IMS_PER_BATCH
optimizer.lr = 0.005
train.auto_scale_lr.base_batch_size = IMS_PER_BATCH  # the batch this lr is for
train.max_iter = EPOCHS * ITERS_PER_EPOCH
train.checkpointer.period = ITERS_PER_EPOCH
train.eval_period = 4 * ITERS_PER_EPOCH
lr_multiplier = mmrotate_1x(warmup_iters=500)  # steps follow train.max_iter

__all__ = ["dataloader", "optimizer", "train", "lr_multiplier", "NUM_CLASSES"]

# Shared by the DOTA-Rotated configs (not a runnable config by itself): DOTA v1.0 data and
# MMRotate's 1x schedule -- 12 epochs over the 1024 px trainval patches at batch 2, SGD lr 0.005,
# linear warm-up over 500 iterations, lr x0.1 after epochs 8 and 11.
from ..common.data.dota import dataloader
from ..common.optim import SGD as optimizer
from ..common.schedule import mmrotate_1x
from ..common.train import train

# Patches of DOTA v1.0 trainval split at 1024 px with a 200 px gap that contain objects
# (tools/split_dota.py --preset ss; empty patches are filtered by the loader).
DOTA_V1_TRAINVAL_PATCHES = 21046
IMS_PER_BATCH = 2
EPOCHS = 12
ITERS_PER_EPOCH = DOTA_V1_TRAINVAL_PATCHES // IMS_PER_BATCH
NUM_CLASSES = 15

dataloader.train.total_batch_size = IMS_PER_BATCH
optimizer.lr = 0.005
train.auto_scale_lr.base_batch_size = IMS_PER_BATCH  # the batch this lr is for
train.max_iter = EPOCHS * ITERS_PER_EPOCH
train.checkpointer.period = ITERS_PER_EPOCH
train.eval_period = 0  # the test split has no labels: write the submission files at the end
lr_multiplier = mmrotate_1x(warmup_iters=500)  # steps follow train.max_iter

__all__ = ["dataloader", "optimizer", "train", "lr_multiplier", "NUM_CLASSES"]

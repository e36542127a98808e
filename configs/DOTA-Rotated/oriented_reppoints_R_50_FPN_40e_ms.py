# Oriented RepPoints R-50-FPN on DOTA v1.0, MMRotate's 40-epoch schedule
# (oriented_reppoints_r50_fpn_40e_dota_ms_le135, 75.21 with multi-scale training, which this
# config leaves out: add a multi-scale resize to dataloader.train.mapper.augmentations):
# lr 0.008 for batch 2, x0.1 after epochs 24, 32 and 38.
from ..common.models.oriented_reppoints import model
from ..common.schedule import multistep
from ._base_1x import ITERS_PER_EPOCH, NUM_CLASSES, dataloader, optimizer, train

EPOCHS = 40
model.num_classes = NUM_CLASSES
optimizer.lr = 0.008
train.max_iter = EPOCHS * ITERS_PER_EPOCH
lr_multiplier = multistep(step_fractions=(24 / EPOCHS, 32 / EPOCHS, 38 / EPOCHS), warmup_iters=500)

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]

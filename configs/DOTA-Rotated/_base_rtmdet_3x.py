# Shared by the DOTA-Rotated Rotated RTMDet configs (not a runnable config by itself): DOTA v1.0
# data and MMRotate's rotated_rtmdet 3x schedule -- 36 epochs over the 1024 px trainval patches at
# batch 8, AdamW lr 0.004 / 16 = 2.5e-4, weight decay 0.05 (none on norms and biases), linear
# warm-up from 1e-5 over 1000 iterations, lr x1 for 18 epochs then cosine to x0.05; flips
# (horizontal, vertical, both: 3 x 0.25) and, with probability 1/2, a rotation by an angle drawn
# from [-180, 180) (MMRotate's RandomRotate), by multiples of 90 degrees only for images holding
# one of the round classes, storage tank or roundabout (whose labels are axis-aligned by
# convention: MMRotate's rect_obj_labels=[9, 11]).
import rotated_det.data.transforms as T
from rotated_det.config import LazyCall as L
from rotated_det.data import DOTA_V1_CLASSES

from ..common.data.dota import dataloader
from ..common.optim import AdamW as optimizer
from ..common.schedule import flat_cosine
from ..common.train import train
from ._base_1x import DOTA_V1_TRAINVAL_PATCHES, NUM_CLASSES

IMS_PER_BATCH = 8
EPOCHS = 36
ITERS_PER_EPOCH = DOTA_V1_TRAINVAL_PATCHES // IMS_PER_BATCH
ROUND_CLASSES = [DOTA_V1_CLASSES.index(c) for c in ("storage-tank", "roundabout")]

dataloader.train.mapper.augmentations.append(
    L(T.RandomRotation)(angle=(-180.0, 180.0), expand=False, prob=0.5, rect_classes=ROUND_CLASSES)
)
dataloader.train.total_batch_size = IMS_PER_BATCH
optimizer.lr = 0.004 / 16
optimizer.weight_decay = 0.05
train.auto_scale_lr.base_batch_size = IMS_PER_BATCH  # the batch this lr is for
train.max_iter = EPOCHS * ITERS_PER_EPOCH
train.checkpointer.period = ITERS_PER_EPOCH
train.eval_period = 0  # the test split has no labels: write the submission files at the end
lr_multiplier = flat_cosine(flat_fraction=0.5, end_value=0.05, warmup_iters=1000)

__all__ = ["dataloader", "optimizer", "train", "lr_multiplier", "NUM_CLASSES"]

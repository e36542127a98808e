# Shared by the HRSC-Rotated Rotated RTMDet configs (not a runnable config by itself): HRSC2016 and
# MMRotate's rotated_rtmdet 3x HRSC schedule -- 36 epochs over the trainval images repeated 3
# times (RepeatDataset), batch 8, AdamW lr 0.004 / 16 = 2.5e-4, weight decay 0.05 (none on norms
# and biases), warm-up from 1e-5 over 1000 iterations, lr x1 for the first half then cosine to
# x0.05; flips and, with probability 1/2, a rotation in [-180, 180). Images are resized so that
# their longer side is 800 px (MMRotate's keep-ratio resize to 800 x 800), in training and test:
# a shorter side of 800 px capped at max_size=800 is exactly that.
import rotated_det.data.transforms as T
from rotated_det.config import LazyCall as L

from ..common.data.hrsc import dataloader
from ..common.optim import AdamW as optimizer
from ..common.schedule import flat_cosine
from ..common.train import train
from ._base_1x import HRSC_TRAINVAL_IMAGES, NUM_CLASSES

IMS_PER_BATCH = 8
EPOCHS = 36 * 3  # 36 epochs of the 3 x repeated dataset
ITERS_PER_EPOCH = HRSC_TRAINVAL_IMAGES // IMS_PER_BATCH

LONGER_SIDE_800 = L(T.ResizeShortestEdge)(short_edge_length=800, max_size=800)
dataloader.train.mapper.augmentations[0] = LONGER_SIDE_800
dataloader.test.mapper.augmentations[0] = LONGER_SIDE_800
dataloader.train.mapper.augmentations.append(
    L(T.RandomRotation)(angle=(-180.0, 180.0), expand=False, prob=0.5)
)
dataloader.train.total_batch_size = IMS_PER_BATCH
optimizer.lr = 0.004 / 16
optimizer.weight_decay = 0.05
train.auto_scale_lr.base_batch_size = IMS_PER_BATCH  # the batch this lr is for
train.max_iter = EPOCHS * ITERS_PER_EPOCH
train.checkpointer.period = 12 * ITERS_PER_EPOCH
train.eval_period = 12 * ITERS_PER_EPOCH
lr_multiplier = flat_cosine(flat_fraction=0.5, end_value=0.05, warmup_iters=1000)

__all__ = ["dataloader", "optimizer", "train", "lr_multiplier", "NUM_CLASSES"]

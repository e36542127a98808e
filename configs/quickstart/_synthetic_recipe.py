# Shared by the synthetic quickstart configs (not a runnable config by itself): the recipe that
# trains a small detector from scratch on the synthetic dataset's 512 px patches on 2 CPU cores in
# about 10 minutes, and evaluates DOTA mAP on the validation scenes merged back from their patches.
# - random 320 px crops of the 512 px patches (objects are at most 120 px long): 2.5x less work
#   per image than whole patches; flips and 90-degree turns;
# - AdamW with gradient clipping: from random weights it converges in a few hundred iterations
#   where SGD needs thousands;
# - 1100 iterations at batch 2, lr x0.1 at 75% and 92%.
# Each synthetic_*.py config adds its model (ResNet-18 FPN with GroupNorm, narrow heads).
import torch

import rotated_det.data.transforms as T
from rotated_det.config import LazyCall as L
from rotated_det.solver import get_default_optimizer_params, maybe_add_gradient_clipping

from ..common.schedule import multistep
from ._base import NUM_CLASSES, dataloader, train

TRAIN_CROP = 320  # pixels; the patches are 512 x 512

dataloader.train.mapper.augmentations = [
    L(T.RandomCrop)(crop_type="absolute", crop_size=(TRAIN_CROP, TRAIN_CROP)),
    L(T.RandomFlip)(prob=0.5, horizontal=True, vertical=False),
    L(T.RandomFlip)(prob=0.5, horizontal=False, vertical=True),
    L(T.RandomRot90)(prob=0.5),
]
dataloader.train.total_batch_size = 2
dataloader.train.num_workers = 1
dataloader.test.num_workers = 1

optimizer = L(maybe_add_gradient_clipping)(
    optimizer=L(torch.optim.AdamW)(
        params=L(get_default_optimizer_params)(weight_decay_norm=0.0, weight_decay_bias=0.0),
        lr=1e-3,
        betas=(0.9, 0.999),
        weight_decay=0.05,
    ),
    clip_type="norm",
    clip_value=10.0,
)

train.max_iter = 1100
train.seed = 0
train.checkpointer.period = 200
train.eval_period = 0  # evaluate once, at the end
train.log_period = 10
train.device = "cpu"
lr_multiplier = multistep(step_fractions=(0.75, 0.92), warmup_iters=50, warmup_factor=0.1)

__all__ = ["dataloader", "optimizer", "train", "lr_multiplier", "NUM_CLASSES"]

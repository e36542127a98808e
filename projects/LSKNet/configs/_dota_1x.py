# Shared by the LSKNet DOTA configs (not a runnable config by itself): the library's DOTA v1.0
# Oriented R-CNN config (data, 1x schedule: 12 epochs, lr x0.1 after epochs 8 and 11, 500 warm-up
# steps) with the optimisation of the authors' configs: AdamW, betas (0.9, 0.999), weight decay
# 0.05 on every parameter (their configs exempt none), `images_per_step` images per optimizer step
# reached with the library's 2 images per GPU and gradient accumulation, SyncBN over GPUs.
from rotated_det.config import LazyConfig

from ....configs.common.optim import AdamW as optimizer

_dota = LazyConfig.load_rel("../../../configs/DOTA-Rotated/oriented_rcnn_R_50_FPN_1x.py")
model = _dota.model
dataloader = _dota.dataloader
train = _dota.train
lr_multiplier = _dota.lr_multiplier  # its steps follow train.max_iter

# DOTA v1.0 trainval patches (1024 px, gap 200, with objects): the R-50 config's epoch x batch
DOTA_V1_PATCHES = train.checkpointer.period * dataloader.train.total_batch_size
EPOCHS = 12

optimizer.params.weight_decay_norm = None  # None: the optimizer's 0.05, as the authors
optimizer.params.weight_decay_bias = None
train.sync_bn = True  # BatchNorm over all GPUs (several CUDA processes); one process: plain BN


def paper_steps(train, images_per_step: int) -> None:
    """Accumulate gradients to ``images_per_step`` images per step and count 12 epochs of them."""
    per_iteration = dataloader.train.total_batch_size
    if images_per_step % per_iteration:
        raise ValueError(f"{images_per_step} images per step is not a multiple of {per_iteration}")
    train.grad_accum_steps = images_per_step // per_iteration
    train.auto_scale_lr.base_batch_size = images_per_step  # the batch optimizer.lr is for
    train.max_iter = EPOCHS * DOTA_V1_PATCHES // images_per_step
    train.checkpointer.period = DOTA_V1_PATCHES // images_per_step


__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier", "paper_steps"]

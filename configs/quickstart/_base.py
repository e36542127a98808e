# Shared by the quickstart configs (not a runnable config by itself): the synthetic dataset's
# 512 px patches (generated on first use), ResNet-18 models trained from scratch with GroupNorm,
# a short schedule that runs on a CPU in minutes.
from ..common.data.synthetic import dataloader
from ..common.optim import SGD as optimizer
from ..common.schedule import multistep
from ..common.train import train

NUM_CLASSES = 6  # rotated_det.data.datasets.synthetic.SYNTHETIC_CLASSES

dataloader.train.total_batch_size = 2
dataloader.train.num_workers = 1
dataloader.test.num_workers = 1
optimizer.lr = 0.01
train.auto_scale_lr.base_batch_size = dataloader.train.total_batch_size  # the batch this lr is for
train.max_iter = 300
train.checkpointer.period = 100
train.eval_period = 0  # evaluate once, at the end
train.log_period = 10
train.device = "cpu"
lr_multiplier = multistep(step_fractions=(2 / 3, 0.9), warmup_iters=50, warmup_factor=0.1)

__all__ = ["dataloader", "optimizer", "train", "lr_multiplier", "NUM_CLASSES"]

# ReDet ReResNet-50 + ReFPN on HRSC2016 (1 class), MMRotate's redet-le90_re50_refpn_3x_hrsc
# (mAP50 90.40, AP75 89.50): the library's HRSC data (flips; shorter side 800 px, where MMRotate
# resizes to 800 x 512) and ReDet's model (see _redet_model.py) with MMRotate's HRSC settings:
# SGD lr 0.01 at batch 2, 36 epochs with lr x0.1 after epochs 24 and 33 and 500 warm-up steps;
# tighter angle targets than on DOTA: std 0.1 of the angle / 2 pi in the RRoI learner (DOTA: 1)
# and 0.05 rad in the rotated stage (DOTA: 0.5).
# ImageNet weights: train.init_checkpoint=<the authors' ReResNet-50 state dict> (see ../README.md).
import math

from rotated_det.config import LazyConfig

from ....configs.common.schedule import mmrotate_3x
from ._redet_model import redet_model

_hrsc = LazyConfig.load_rel("../../../configs/HRSC-Rotated/roi_transformer_R_50_FPN_1x.py")
EPOCHS = 36
ITERS_PER_EPOCH = 617 // 2  # HRSC2016 trainval images at batch 2

model = redet_model(_hrsc.model)
learner_coder = model.roi_heads.rroi_learner.box_predictor.box2box_transform
learner_coder.weights = (10.0, 10.0, 5.0, 5.0, 1.0 / (2 * math.pi * 0.1))
model.roi_heads.box_predictor.box2box_transform.weights = (20.0, 20.0, 10.0, 10.0, 20.0)
dataloader = _hrsc.dataloader
optimizer = _hrsc.optimizer
optimizer.lr = 0.01
train = _hrsc.train
train.max_iter = EPOCHS * ITERS_PER_EPOCH
train.checkpointer.period = 12 * ITERS_PER_EPOCH
train.eval_period = 12 * ITERS_PER_EPOCH
train.output_dir = "./output/redet_re50_refpn_3x_hrsc"
lr_multiplier = mmrotate_3x(warmup_iters=500)

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]

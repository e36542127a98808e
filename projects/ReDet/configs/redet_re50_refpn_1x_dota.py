# ReDet ReResNet-50 + ReFPN on DOTA v1.0 (15 classes), the authors' and MMRotate's 1x setting
# (redet-le90_re50_refpn_1x_dota: 76.68 mAP on DOTA v1.0 test): the library's RoI Transformer
# DOTA config (data with flips, SGD lr 0.005 at batch 2, 12 epochs, lr x0.1 after epochs 8 and
# 11, 500 warm-up steps, le90 targets) with ReDet's backbone and RiRoIAlign (see _redet_model.py).
# ImageNet weights of the authors' ReResNet-50 (re_resnet50_c8_batch256):
#   train.init_checkpoint=<its state dict> (see ../README.md)
from rotated_det.config import LazyConfig

from ._redet_model import redet_model

_dota = LazyConfig.load_rel("../../../configs/DOTA-Rotated/roi_transformer_R_50_FPN_1x.py")
model = redet_model(_dota.model)
dataloader = _dota.dataloader
optimizer = _dota.optimizer
train = _dota.train
lr_multiplier = _dota.lr_multiplier  # its steps follow train.max_iter
train.output_dir = "./output/redet_re50_refpn_1x_dota"

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]

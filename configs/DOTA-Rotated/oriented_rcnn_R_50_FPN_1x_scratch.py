# Oriented R-CNN R-50-FPN on DOTA v1.0 from random weights (no ImageNet checkpoint):
# GroupNorm in backbone and FPN instead of FrozenBN, no frozen stage;
# see common/models/scratch.py (norm="SyncBN" there for BatchNorm over several GPUs).
from ..common.models.scratch import scratch_model
from .oriented_rcnn_R_50_FPN_1x import dataloader, lr_multiplier, model, optimizer, train

model = scratch_model(model)
train.init_checkpoint = ""

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]

# S2A-Net (ResNet-18 FPN, GroupNorm, from scratch) on the synthetic dataset with the quickstart
# recipe (_synthetic_recipe.py): `python dev/quickstart.py --config-file <this file>`; its figures
# are in dev/zoo.py's table. Square anchors of side 2 x stride (16 px at P3) instead of 4 x stride:
# the synthetic vehicles are 16-32 px long (see _dense_synthetic.py).
from ..common.models.s2anet import STRIDES, model
from ._dense_synthetic import small_dense_model
from ._synthetic_recipe import dataloader, lr_multiplier, optimizer, train

model = small_dense_model(model)
model.anchor_generator.sizes = [[2 * stride] for stride in STRIDES]

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]

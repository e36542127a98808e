# A small RoI Transformer (ResNet-18 FPN, GroupNorm, from scratch) trained on the CPU on the
# synthetic dataset's 512 px patches with the recipe of _synthetic_recipe.py (320 px crops, AdamW,
# 1100 iterations), evaluated on the validation scenes merged from their patches (DOTA mAP50).
from ..common.models.roi_transformer import model
from ._horizontal_rpn_synthetic import small_horizontal_rpn_model
from ._synthetic_recipe import dataloader, lr_multiplier, optimizer, train

model = small_horizontal_rpn_model(model)

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]

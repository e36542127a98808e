# R3Det (ResNet-18 FPN, GroupNorm, from scratch; the refinement stage follows the first head's
# width and norm) on the synthetic dataset with the quickstart recipe (_synthetic_recipe.py):
# `python dev/quickstart.py --config-file <this file>`; its figures are in dev/zoo.py's table.
from ..common.models.r3det import model
from ._dense_synthetic import small_dense_model
from ._synthetic_recipe import dataloader, lr_multiplier, optimizer, train

model = small_dense_model(model)

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]

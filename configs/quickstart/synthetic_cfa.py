# CFA (ResNet-18 FPN, GroupNorm, from scratch) on the synthetic dataset with the quickstart recipe
# (_synthetic_recipe.py): `python dev/quickstart.py --config-file <this file>`; its figures are in
# dev/zoo.py's table. gradient_mul 0.1 (RepPoints' own; MMRotate's point-set configs use 0.3): under
# AdamW from scratch the gradients that reach the initial points through the deformable convolutions
# slow their learning at 0.3 (tests/modeling/_helpers.py).
from ..common.models.cfa import model
from ._dense_synthetic import small_dense_model
from ._synthetic_recipe import dataloader, lr_multiplier, optimizer, train

model = small_dense_model(model)
model.head.gradient_mul = 0.1

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]

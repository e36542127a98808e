# H2RBox-v2 (ResNet-18 FPN, GroupNorm, from scratch) on the synthetic dataset with the quickstart
# recipe (_synthetic_recipe.py), trained from HORIZONTAL boxes: the model replaces each rotated
# label by its enclosing horizontal box, and the evaluation scores the detections against the
# true rotated boxes. The storage tanks (class 3, discs) have no orientation: they are predicted
# as their horizontal boxes. `python dev/quickstart.py --config-file <this file>`; its figures
# are in dev/zoo.py's table.
from ..common.models.h2rbox_v2 import model
from ._dense_synthetic import small_dense_model
from ._synthetic_recipe import dataloader, lr_multiplier, optimizer, train

model = small_dense_model(model)
model.square_classes = [3]  # rotated_det.data.datasets.synthetic.SYNTHETIC_CLASSES: storage-tank
model.square_class_scales = [1.0]

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]

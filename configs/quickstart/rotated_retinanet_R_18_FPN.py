# A small Rotated RetinaNet (ResNet-18 FPN, from scratch) on the synthetic dataset, on a CPU in
# minutes.
from ..common.models.resnet18 import resnet18_model
from ..common.models.rotated_retinanet import model
from ._base import NUM_CLASSES, dataloader, lr_multiplier, optimizer, train

model = resnet18_model(model)
model.num_classes = NUM_CLASSES

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]

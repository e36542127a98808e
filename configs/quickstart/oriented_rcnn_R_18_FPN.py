# A small Oriented R-CNN (ResNet-18 FPN, from scratch) on the synthetic dataset,
# on a CPU in minutes.
from ..common.models.oriented_rcnn import model
from ..common.models.resnet18 import resnet18_model
from ._base import NUM_CLASSES, dataloader, lr_multiplier, optimizer, train

model = resnet18_model(model)
model.roi_heads.num_classes = NUM_CLASSES
model.proposal_generator.post_nms_topk = (1000, 500)
model.roi_heads.batch_size_per_image = 256

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]

# Oriented R-CNN with a ConvNeXt-T backbone (timm "convnext_tiny") and FPN on DOTA v1.0 (15
# classes): MMRotate's 1x schedule (see _base_1x.py) with its settings for ConvNeXt-T: AdamW lr 1e-4
# at 2 images, weight decay 0.05 (none on norms and biases), drop-path 0.4. ImageNet weights:
# train.init_checkpoint=<timm convnext_tiny model.safetensors or .pth> (see
# common/models/timm_backbone.py).
from ..common.models.oriented_rcnn import model
from ..common.models.timm_backbone import CONVNEXT_TINY, timm_model
from ..common.optim import AdamW as optimizer
from ._base_1x import NUM_CLASSES, dataloader, lr_multiplier, train

model = timm_model(model, **CONVNEXT_TINY)
model.roi_heads.num_classes = NUM_CLASSES
optimizer.lr = 1e-4

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]

# Rotated RTMDet-l on DOTA v1.0 (15 classes): MMRotate's 100-epoch recipe with mosaic, mixup and
# random rotation (_base_rtmdet_100e_aug.py).
from ..common.models.rotated_rtmdet import rotated_rtmdet_model
from ._base_rtmdet_100e_aug import NUM_CLASSES, dataloader, lr_multiplier, optimizer, train

model = rotated_rtmdet_model("l", num_classes=NUM_CLASSES)

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]

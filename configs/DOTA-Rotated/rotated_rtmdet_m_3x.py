# Rotated RTMDet-m on DOTA v1.0 (15 classes): MMRotate's 3x schedule (_base_rtmdet_3x.py).
from ..common.models.rotated_rtmdet import rotated_rtmdet_model
from ._base_rtmdet_3x import NUM_CLASSES, dataloader, lr_multiplier, optimizer, train

model = rotated_rtmdet_model("m", num_classes=NUM_CLASSES)

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]

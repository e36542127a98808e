# Rotated RTMDet-tiny on HRSC2016 (1 class): MMRotate's rotated_rtmdet_tiny-300e-aug-hrsc -- the l
# recipe (_base_rtmdet_300e_aug.py) with milder jitter (x0.5-2), smaller caches (mosaic 20, mixup
# 10) and mixup on half of the images.
from ..common.models.rotated_rtmdet import rotated_rtmdet_model
from ._base_rtmdet_300e_aug import NUM_CLASSES, dataloader, lr_multiplier, optimizer, train

model = rotated_rtmdet_model("tiny", num_classes=NUM_CLASSES)

for _mapper in (dataloader.train.mapper, train.pipeline_switch.mapper):
    _mapper.augmentations[0].min_scale = 0.5  # ResizeScale
dataloader.train.mapper.mosaic.max_cached_images = 20
dataloader.train.mapper.mixup.max_cached_images = 10
dataloader.train.mapper.mixup.prob = 0.5

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]

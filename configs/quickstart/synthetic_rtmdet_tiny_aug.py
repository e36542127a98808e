# Rotated RTMDet-tiny on the synthetic dataset with RTMDet's strong augmentation
# (configs/common/data/rtmdet_augmentation.py), next to synthetic_rtmdet_tiny.py (same model and
# schedule, the quickstart's crops and flips): cached mosaic of 512 px patches (1024 px canvas),
# jitter x0.5-1.5, random rotation (quarter turns for images with storage tanks), 320 px crops,
# flips and quarter turns, mixup on half of the images; the last 300 of 1100 iterations without
# mosaic and mixup. `python dev/quickstart.py --config-file <this file>`.
from rotated_det.data import SYNTHETIC_CLASSES

from ..common.data.rtmdet_augmentation import use_rtmdet_augmentation
from ._synthetic_recipe import TRAIN_CROP
from .synthetic_rtmdet_tiny import dataloader, lr_multiplier, model, optimizer, train

use_rtmdet_augmentation(
    dataloader,
    train,
    image_size=TRAIN_CROP,
    last_iters=300,
    jitter=(0.5, 1.5),
    rect_classes=(SYNTHETIC_CLASSES.index("storage-tank"),),
    mosaic_cache=40,
    mixup_cache=20,
    mixup_prob=0.5,
)
# the mosaic takes whole 512 px patches (objects at their size), the crops stay 320 px
dataloader.train.mapper.mosaic.image_size = 512
dataloader.train.mapper.augmentations[0].target_height = 1024
dataloader.train.mapper.augmentations[0].target_width = 1024

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]

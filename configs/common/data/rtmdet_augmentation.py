# RTMDet's strong augmentation (MMRotate's rotated_rtmdet *-aug configs), applied to a training
# data loader config; used by the DOTA / HRSC *_aug configs and the synthetic quickstart:
# - strong pipeline: cached mosaic (4 images on a 2S x 2S canvas; objects cut by its borders kept
#   by the split tool's iof >= 0.7 rule), large-scale jitter to [min, max] x 2S, random rotation
#   (prob 0.5, quarter turns for rect_classes), crop S x S, the loader's flips, cached mixup;
# - weak pipeline for the last `last_iters` iterations (MMDetection's PipelineSwitchHook): the same
#   without mosaic and mixup, the jitter relative to S.
# MMDetection's YOLOX HSV colour jitter and its padding to S x S are left out (batches are padded
# by the model; the colour jitter has no rotated_det equivalent yet).
import copy

import rotated_det.data.transforms as T
from rotated_det.config import LazyCall as L
from rotated_det.data import CachedMixUp, CachedMosaic


def use_rtmdet_augmentation(
    dataloader,
    train,
    *,
    image_size: int,
    last_iters: int,
    jitter: tuple = (0.1, 2.0),
    rect_classes: tuple = (),
    rotate: bool = True,
    mosaic_cache: int = 40,
    mixup_cache: int = 20,
    mixup_prob: float = 1.0,
):
    """Turn ``dataloader.train.mapper`` (a LazyCall of DatasetMapper whose augmentations hold
    the dataset's flips) into RTMDet's strong pipeline and set ``train.pipeline_switch`` to the
    weak one for the last ``last_iters`` iterations. ``image_size``: S, the training image side
    (pixels)."""
    mapper = dataloader.train.mapper
    flips = [a for a in mapper.augmentations if a["_target_"] in (T.RandomFlip, T.RandomRot90)]
    rotation = (
        [
            L(T.RandomRotation)(
                angle=(-180.0, 180.0), expand=False, prob=0.5, rect_classes=list(rect_classes)
            )
        ]
        if rotate
        else []
    )

    def augmentations(target: int) -> list:
        return [
            L(T.ResizeScale)(
                min_scale=jitter[0], max_scale=jitter[1], target_height=target, target_width=target
            ),
            *copy.deepcopy(rotation),
            L(T.RandomCrop)(crop_type="absolute", crop_size=(image_size, image_size)),
            *copy.deepcopy(flips),
        ]

    weak = copy.deepcopy(mapper)
    weak.augmentations = augmentations(image_size)
    mapper.augmentations = augmentations(2 * image_size)
    mapper.mosaic = L(CachedMosaic)(
        image_size=image_size, max_cached_images=mosaic_cache, pad_value=114.0
    )
    mapper.mixup = L(CachedMixUp)(
        image_size=image_size,
        ratio_range=(1.0, 1.0),
        max_cached_images=mixup_cache,
        prob=mixup_prob,
        pad_value=114.0,
    )
    train.pipeline_switch = dict(last_iters=last_iters, mapper=weak)
    return dataloader, train


__all__ = ["use_rtmdet_augmentation"]

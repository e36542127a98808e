# The data pipeline every rotated_det dataset config starts from (not a runnable config by
# itself): DOTA-format images (usually split patches) -> DatasetMapper (BGR, rotated boxes) ->
# train / test loaders, and a DOTAEvaluator that merges patch predictions back into their full
# images (metadata ``full_dataset_name`` of the patch dataset). Dataset configs import
# ``dataloader`` from here and override names, augmentations, batch size and evaluator.
from omegaconf import OmegaConf

import rotated_det.data.transforms as T
from rotated_det.config import LazyCall as L
from rotated_det.data import (
    DatasetMapper,
    build_detection_test_loader,
    build_detection_train_loader,
    get_detection_dataset_dicts,
)
from rotated_det.evaluation import DOTAEvaluator

dataloader = OmegaConf.create()

dataloader.train = L(build_detection_train_loader)(
    dataset=L(get_detection_dataset_dicts)(names="???"),
    mapper=L(DatasetMapper)(
        is_train=True,
        augmentations=[
            L(T.RandomFlip)(prob=0.5, horizontal=True, vertical=False),
            L(T.RandomFlip)(prob=0.5, horizontal=False, vertical=True),
        ],
        image_format="BGR",
        min_box_size=2.0,
    ),
    total_batch_size=2,
    num_workers=2,
)

dataloader.test = L(build_detection_test_loader)(
    dataset=L(get_detection_dataset_dicts)(names="???", filter_empty=False),
    mapper=L(DatasetMapper)(is_train=False, augmentations=[], image_format="BGR"),
    num_workers=2,
)

dataloader.evaluator = L(DOTAEvaluator)(
    dataset_name="${..test.dataset.names}",
    merge_patches=True,
)

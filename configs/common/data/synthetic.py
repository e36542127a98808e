# The synthetic dataset (rotated_det.data.datasets.synthetic), generated on first use under
# $ROTATED_DET_DATASETS/synthetic: training on its 512 px patches, evaluation on the validation
# patches merged back into full scenes.
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
    dataset=L(get_detection_dataset_dicts)(names="synthetic_train_512"),
    mapper=L(DatasetMapper)(
        is_train=True,
        augmentations=[
            L(T.RandomFlip)(prob=0.5, horizontal=True, vertical=False),
            L(T.RandomFlip)(prob=0.5, horizontal=False, vertical=True),
            L(T.RandomRot90)(prob=0.5),
        ],
        image_format="BGR",
        min_box_size=2.0,
    ),
    total_batch_size=4,
    num_workers=2,
)

dataloader.test = L(build_detection_test_loader)(
    dataset=L(get_detection_dataset_dicts)(names="synthetic_val_512", filter_empty=False),
    mapper=L(DatasetMapper)(is_train=False, augmentations=[], image_format="BGR"),
    num_workers=2,
)

dataloader.evaluator = L(DOTAEvaluator)(
    dataset_name="${..test.dataset.names}",
    merge_patches=True,
    full_dataset_name="synthetic_val",
)

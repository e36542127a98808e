# DOTA v1.0 split into 1024 px patches (tools/split_dota.py --preset ss, see datasets/README.md):
# train on trainval patches, run on test patches and write Task1 submission files of the merged
# full images. For multi-scale use names "dota_v1_trainval_ms" / "dota_v1_test_ms"; for v1.5 / v2.0
# use "dota_v15_..." / "dota_v2_..." (and the matching num_classes in the model).
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
    dataset=L(get_detection_dataset_dicts)(names="dota_v1_trainval_ss"),
    mapper=L(DatasetMapper)(
        is_train=True,
        augmentations=[
            L(T.RandomFlip)(prob=0.25, horizontal=True, vertical=False),
            L(T.RandomFlip)(prob=0.25, horizontal=False, vertical=True),
            L(T.RandomFlip)(prob=0.25, horizontal=False, diagonal=True),
        ],
        image_format="BGR",
        min_box_size=2.0,
    ),
    total_batch_size=8,
    num_workers=4,
)

dataloader.test = L(build_detection_test_loader)(
    dataset=L(get_detection_dataset_dicts)(names="dota_v1_test_ss", filter_empty=False),
    mapper=L(DatasetMapper)(is_train=False, augmentations=[], image_format="BGR"),
    num_workers=4,
)

# The test set has no labels: merge patch predictions per image and write Task1 files only.
dataloader.evaluator = L(DOTAEvaluator)(
    dataset_name="${..test.dataset.names}",
    merge_patches=True,
    compute_metrics=False,
    submission_dir="output/dota_v1_task1",
)

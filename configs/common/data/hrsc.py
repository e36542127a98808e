# HRSC2016 (one "ship" class; use names "hrsc2016_trainval_fine" / "hrsc2016_test_fine" for the
# fine-grained classes). Images are about 1000 x 600: resized to an 800 px shorter side at most
# 1333, MMRotate's usual setting.
from omegaconf import OmegaConf

import rotated_det.data.transforms as T
from rotated_det.config import LazyCall as L
from rotated_det.data import (
    DatasetMapper,
    build_detection_test_loader,
    build_detection_train_loader,
    get_detection_dataset_dicts,
)
from rotated_det.evaluation import HRSCEvaluator

dataloader = OmegaConf.create()

dataloader.train = L(build_detection_train_loader)(
    dataset=L(get_detection_dataset_dicts)(names="hrsc2016_trainval"),
    mapper=L(DatasetMapper)(
        is_train=True,
        augmentations=[
            L(T.ResizeShortestEdge)(short_edge_length=(800, 800), max_size=1333),
            L(T.RandomFlip)(prob=0.5, horizontal=True, vertical=False),
            L(T.RandomFlip)(prob=0.5, horizontal=False, vertical=True),
        ],
        image_format="BGR",
    ),
    total_batch_size=4,
    num_workers=4,
)

dataloader.test = L(build_detection_test_loader)(
    dataset=L(get_detection_dataset_dicts)(names="hrsc2016_test", filter_empty=False),
    mapper=L(DatasetMapper)(
        is_train=False,
        augmentations=[L(T.ResizeShortestEdge)(short_edge_length=800, max_size=1333)],
        image_format="BGR",
    ),
    num_workers=4,
)

dataloader.evaluator = L(HRSCEvaluator)(dataset_name="${..test.dataset.names}")

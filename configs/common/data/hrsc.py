# HRSC2016 (one "ship" class; use names "hrsc2016_trainval_fine" / "hrsc2016_test_fine" for the
# fine-grained classes). Images are about 1000 x 600: resized to an 800 px shorter side at most
# 1333, MMRotate's usual setting.
import rotated_det.data.transforms as T
from rotated_det.config import LazyCall as L
from rotated_det.evaluation import HRSCEvaluator

from .patches import dataloader

dataloader.train.dataset.names = "hrsc2016_trainval"
dataloader.train.mapper.augmentations = [
    L(T.ResizeShortestEdge)(short_edge_length=(800, 800), max_size=1333),
    L(T.RandomFlip)(prob=0.5, horizontal=True, vertical=False),
    L(T.RandomFlip)(prob=0.5, horizontal=False, vertical=True),
]
dataloader.train.mapper.min_box_size = 1.0
dataloader.train.total_batch_size = 4
dataloader.train.num_workers = 4
dataloader.test.dataset.names = "hrsc2016_test"
dataloader.test.mapper.augmentations = [
    L(T.ResizeShortestEdge)(short_edge_length=800, max_size=1333)
]
dataloader.test.num_workers = 4
dataloader.evaluator = L(HRSCEvaluator)(dataset_name="${..test.dataset.names}")

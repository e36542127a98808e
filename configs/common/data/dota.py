# DOTA v1.0 split into 1024 px patches (tools/split_dota.py --preset ss, see datasets/README.md):
# train on trainval patches, run on test patches and write Task1 submission files of the merged
# full images. For multi-scale use names "dota_v1_trainval_ms" / "dota_v1_test_ms"; for v1.5 / v2.0
# use "dota_v15_..." / "dota_v2_..." (and the matching num_classes in the model).
import rotated_det.data.transforms as T
from rotated_det.config import LazyCall as L

from .patches import dataloader

dataloader.train.dataset.names = "dota_v1_trainval_ss"
dataloader.train.mapper.augmentations = [
    L(T.RandomFlip)(prob=0.25, horizontal=True, vertical=False),
    L(T.RandomFlip)(prob=0.25, horizontal=False, vertical=True),
    L(T.RandomFlip)(prob=0.25, horizontal=False, diagonal=True),
]
dataloader.train.total_batch_size = 8
dataloader.train.num_workers = 4
dataloader.test.dataset.names = "dota_v1_test_ss"
dataloader.test.num_workers = 4
# The test set has no labels: merge patch predictions per image and write Task1 files only.
dataloader.evaluator.compute_metrics = False
dataloader.evaluator.submission_dir = "output/dota_v1_task1"

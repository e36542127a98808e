# The synthetic dataset (rotated_det.data.datasets.synthetic), generated on first use under
# $ROTATED_DET_DATASETS/synthetic: training on its 512 px patches, evaluation on the validation
# patches merged back into full scenes.
import rotated_det.data.transforms as T
from rotated_det.config import LazyCall as L

from .patches import dataloader

dataloader.train.dataset.names = "synthetic_train_512"
dataloader.train.mapper.augmentations = [
    L(T.RandomFlip)(prob=0.5, horizontal=True, vertical=False),
    L(T.RandomFlip)(prob=0.5, horizontal=False, vertical=True),
    L(T.RandomRot90)(prob=0.5),
]
dataloader.train.total_batch_size = 4
dataloader.test.dataset.names = "synthetic_val_512"
dataloader.evaluator.full_dataset_name = "synthetic_val"

# The data part of the P0706 configs (not a runnable config by itself): one real DOTA v1.0 scene,
# P0706 (1111 x 1182 px harbour, 531 ships of which 6 difficult, plus 5 "harbor" objects that the
# single-class "ship" datasets skip and count), cut into 512 px patches with a 128 px overlap.
#
# The datasets are the library's (rotated_det.data.datasets.builtin.register_dota_p0706):
#   dota_p0706      the full scene (ground truth of the merged evaluation)
#   dota_p0706_512  its patches (training, and the evaluated inputs)
# The image is read from the DOTA samples: $ROTATED_DET_SHARED_DATA (the folder holding
# dota_samples/, or dota_samples itself), else the repository's tests/data/dota_samples. On first
# use it is copied to $ROTATED_DET_DATASETS/dota_p0706/full and split (rotated_det.data
# .dota_split, the library behind tools/split_dota.py) into $ROTATED_DET_DATASETS/dota_p0706/
# split_512.
# Training and evaluation use the same image: the run proves that dense, real, rotated objects
# survive parsing, splitting, training, patch merging and evaluation, not that the model
# generalises.
import rotated_det.data.transforms as T
from rotated_det.config import LazyCall as L
from rotated_det.data.datasets.builtin import register_dota_p0706

from ..common.data.patches import dataloader

TRAIN_CROP = 320  # random crops of the 512 px patches (ships are at most ~80 px long)

register_dota_p0706()  # when not registered yet (this file is loaded more than once per process)

dataloader.train.dataset.names = "dota_p0706_512"
dataloader.train.mapper.augmentations = [
    L(T.RandomCrop)(crop_type="absolute", crop_size=(TRAIN_CROP, TRAIN_CROP)),
    L(T.RandomFlip)(prob=0.5, horizontal=True, vertical=False),
    L(T.RandomFlip)(prob=0.5, horizontal=False, vertical=True),
    L(T.RandomRot90)(prob=0.5),
]
dataloader.train.num_workers = 1
dataloader.test.dataset.names = "dota_p0706_512"
dataloader.test.num_workers = 1
dataloader.evaluator.dataset_name = "dota_p0706_512"
dataloader.evaluator.full_dataset_name = "dota_p0706"
dataloader.evaluator.iou_thresholds = [0.5, 0.75]
dataloader.evaluator.plot_pr_curves = False

__all__ = ["dataloader"]

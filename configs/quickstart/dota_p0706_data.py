# The data part of the P0706 configs (not a runnable config by itself): one real DOTA v1.0 scene,
# P0706 (1111 x 1182 px harbour, 531 ships of which 6 difficult, plus 5 "harbor" objects that the
# single-class "ship" datasets skip and count), cut into 512 px patches with a 128 px overlap.
#
# The image is read from the DOTA samples: $ROTATED_DET_SHARED_DATA (the folder holding
# dota_samples/, or dota_samples itself), else the repository's tests/data/dota_samples.
# On first use it is copied to $ROTATED_DET_DATASETS/dota_p0706/full and split (rotated_det.data
# .dota_split, the library behind tools/split_dota.py) into $ROTATED_DET_DATASETS/dota_p0706/
# split_512. Registered (when this file is loaded):
#   dota_p0706      the full scene (ground truth of the merged evaluation)
#   dota_p0706_512  its patches (training, and the evaluated inputs)
# Training and evaluation use the same image: the run proves that dense, real, rotated objects
# survive parsing, splitting, training, patch merging and evaluation, not that the model
# generalises.
import os

import rotated_det.data.transforms as T
from rotated_det.config import LazyCall as L
from rotated_det.data import DatasetCatalog, MetadataCatalog

from ..common.data.patches import dataloader

P0706_CLASSES = ["ship"]
P0706_SPLIT = dict(sizes=[512], gaps=[128], rates=[1.0], iof_thr=0.7)
TRAIN_CROP = 320  # random crops of the 512 px patches (ships are at most ~80 px long)


def _find_samples() -> str:
    """The dota_samples folder holding images/P0706.png and labelTxt/P0706.txt."""
    env = os.environ.get("ROTATED_DET_SHARED_DATA")
    if env:
        candidates = [os.path.join(env, "dota_samples"), env]
    else:
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        candidates = [os.path.join(repo, "tests", "data", "dota_samples")]
    for c in candidates:
        if os.path.isfile(os.path.join(c, "images", "P0706.png")) and os.path.isfile(
            os.path.join(c, "labelTxt", "P0706.txt")
        ):
            return os.path.normpath(c)
    raise FileNotFoundError(
        "The P0706 configs need the DOTA samples (images/P0706.png and "
        f"labelTxt/P0706.txt); looked in {[os.path.normpath(c) for c in candidates]}. "
        "Set ROTATED_DET_SHARED_DATA to the folder that holds dota_samples/."
    )


def _p0706_root() -> str:
    from rotated_det.data.datasets.builtin import get_datasets_root

    return os.path.join(get_datasets_root(), "dota_p0706")


def _prepare_p0706() -> str:
    """Copy P0706 and split it unless already done (file-locked); return the root folder."""
    import fcntl
    import shutil

    root = _p0706_root()
    done = os.path.join(root, "split_512", "DONE")
    if os.path.isfile(done):
        return root
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not os.path.isfile(done):
                from rotated_det.data.dota_split import split_dota

                src = _find_samples()
                for sub, name in (("images", "P0706.png"), ("labelTxt", "P0706.txt")):
                    os.makedirs(os.path.join(root, "full", sub), exist_ok=True)
                    shutil.copyfile(
                        os.path.join(src, sub, name), os.path.join(root, "full", sub, name)
                    )
                split_dota(
                    [os.path.join(root, "full", "images")],
                    os.path.join(root, "split_512"),
                    ann_dirs=[os.path.join(root, "full", "labelTxt")],
                    progress=False,
                    **P0706_SPLIT,
                )
                with open(done, "w") as f:
                    f.write("ok\n")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return root


def _register_p0706() -> None:
    from rotated_det.data import load_dota_instances

    for name, sub in (("dota_p0706", "full"), ("dota_p0706_512", "split_512")):
        if name in DatasetCatalog.list():  # this file is loaded more than once per process
            continue

        def load(sub=sub, name=name):
            root = _prepare_p0706()
            return load_dota_instances(
                os.path.join(root, sub, "images"),
                os.path.join(root, sub, "labelTxt"),
                P0706_CLASSES,
                unknown_classes="skip",  # the 5 "harbor" objects (counted in the log)
                dataset_name=name,
            )

        DatasetCatalog.register(name, load)
        MetadataCatalog.get(name).set(
            thing_classes=list(P0706_CLASSES),
            thing_colors=[(250, 60, 40)],
            evaluator_type="dota",
            image_root=os.path.join(_p0706_root(), sub, "images"),
        )
    MetadataCatalog.get("dota_p0706_512").set(full_dataset_name="dota_p0706")


_register_p0706()

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

__all__ = ["dataloader", "P0706_CLASSES"]

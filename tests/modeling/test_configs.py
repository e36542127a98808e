"""The dataset configs load, agree with their datasets' metadata and build their models."""

import glob
import os

import pytest

from rotated_det.config import LazyConfig, instantiate
from rotated_det.data import MetadataCatalog
from rotated_det.modeling import GeneralizedRCNN, OrientedRCNN, RotatedRetinaNet, check_model_config

from ._helpers import DETECTORS, REPO

# The configs of this area (other quickstart files belong to the quickstart script).
CONFIGS = (
    sorted(glob.glob(os.path.join(REPO, "configs", "*-Rotated", "*_R_50_FPN_1x.py")))
    + [
        os.path.join(REPO, "configs", folder, f"rotated_rtmdet_{size}_3x.py")
        for folder in ("DOTA-Rotated", "HRSC-Rotated")
        for size in ("tiny", "s", "m", "l")
    ]
    + [
        os.path.join(REPO, "configs", "quickstart", f"{model}_R_18_FPN.py")
        for model in ("rotated_faster_rcnn", "rotated_retinanet", "oriented_rcnn")
    ]
)


def _is_point_set(path: str) -> bool:
    return os.path.basename(path).startswith(
        ("rotated_reppoints", "oriented_reppoints", "cfa", "sasm")
    )


# Detectors whose dataset configs are not *_R_50_FPN_1x.py (their own backbone and schedule).
DATASET_CONFIG_NAMES = {"rotated_rtmdet": "rotated_rtmdet_tiny_3x.py"}


def test_all_dataset_configs_exist():
    missing = [p for p in CONFIGS if not os.path.isfile(p)]
    assert not missing, missing
    # every detector has a DOTA and an HRSC config
    names = {os.path.relpath(p, os.path.join(REPO, "configs")) for p in CONFIGS}
    for model in DETECTORS:
        for folder in ("DOTA-Rotated", "HRSC-Rotated"):
            name = DATASET_CONFIG_NAMES.get(model, f"{model}_R_50_FPN_1x.py")
            assert os.path.join(folder, name) in names, (folder, model)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, REPO))
def test_config_matches_dataset_metadata(path):
    cfg = LazyConfig.load(path)
    dataset = cfg.dataloader.train.dataset.names
    thing_classes = MetadataCatalog.get(dataset).thing_classes
    check_model_config(cfg.model, thing_classes=thing_classes)
    if "rotated_rtmdet" in path:
        # MMRotate's RTMDet 3x: batch 8, AdamW lr 0.004 / 16, lr x1 for half the epochs then
        # cosine to x0.05, 36 epochs (of the 3 x repeated HRSC)
        assert cfg.dataloader.train.total_batch_size == 8
        assert cfg.optimizer.lr == 0.004 / 16 and cfg.optimizer.weight_decay == 0.05
        assert cfg.lr_multiplier.flat_fraction == 0.5 and cfg.lr_multiplier.end_value == 0.05
        assert cfg.lr_multiplier.max_iter == cfg.train.max_iter
        # checkpoints: every epoch (DOTA), every 12 epochs of the repeated HRSC
        assert cfg.train.max_iter == (9 if "HRSC" in path else 36) * cfg.train.checkpointer.period
        return
    assert cfg.dataloader.train.total_batch_size == 2
    if "quickstart" not in path:
        # MMRotate's H2RBox-v2 configs train with AdamW (lr 5e-5) instead of SGD, its point-set
        # configs (RepPoints family) with SGD at lr 0.008
        assert cfg.optimizer.lr == (
            5e-5 if "h2rbox_v2" in path else 0.008 if _is_point_set(path) else 0.005
        )
        # 12 epochs, lr steps after epochs 8 and 11 (as fractions of train.max_iter)
        assert list(cfg.lr_multiplier.step_fractions) == [8 / 12, 11 / 12]
        assert cfg.lr_multiplier.max_iter == cfg.train.max_iter
        assert cfg.train.max_iter == 12 * cfg.train.checkpointer.period
        assert cfg.model.backbone.bottom_up.stages.depth == 50
    else:
        assert cfg.model.backbone.bottom_up.stages.depth == 18


@pytest.mark.parametrize(
    "path", [p for p in CONFIGS if "quickstart" in p], ids=lambda p: os.path.basename(p)
)
def test_quickstart_models_build(path):
    model = instantiate(LazyConfig.load(path).model)
    expected = {
        "rotated_faster_rcnn": GeneralizedRCNN,
        "oriented_rcnn": OrientedRCNN,
        "rotated_retinanet": RotatedRetinaNet,
    }
    name = os.path.basename(path).rsplit("_R_18", 1)[0]
    assert type(model) is expected[name]
    assert sum(p.numel() for p in model.backbone.bottom_up.parameters()) < 12e6  # ResNet-18

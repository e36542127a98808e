"""DefaultTrainer and tools/lazyconfig_train_net.py check the model config against the dataset
metadata before building anything: a mismatched num_classes or a 4-weight rotated box coder is
an error naming the keys (and the dataset), raised before the model or the data are built."""

import os
import textwrap

import pytest
from engine_test_tools import load_train_tool

from rotated_det.config import LazyConfig
from rotated_det.data import DatasetCatalog, MetadataCatalog
from rotated_det.engine import DefaultTrainer, default_argument_parser
from rotated_det.engine.default_trainer import dataset_names
from rotated_det.modeling import ModelConfigError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN, TEST = "cfgcheck_three_classes_train", "cfgcheck_three_classes_test"
CLASSES = ["plane", "ship", "harbor"]
LOADS = []  # names of datasets whose dicts were loaded (must stay empty: the check comes first)

CONFIG = """
from rotated_det.config import LazyCall as L
from rotated_det.data import (
    DatasetMapper,
    build_detection_test_loader,
    build_detection_train_loader,
    get_detection_dataset_dicts,
)

from ..common.models.rotated_faster_rcnn import model
from ..common.optim import SGD as optimizer
from ..common.train import train

model.roi_heads.num_classes = 3
dataloader = dict(
    train=L(build_detection_train_loader)(
        dataset=L(get_detection_dataset_dicts)(names={train!r}),
        mapper=L(DatasetMapper)(is_train=True, augmentations=[], image_format="BGR"),
        total_batch_size=1,
    ),
    test=L(build_detection_test_loader)(
        dataset=L(get_detection_dataset_dicts)(names=[{test!r}], filter_empty=False),
        mapper=L(DatasetMapper)(is_train=False, augmentations=[], image_format="BGR"),
    ),
)
train.output_dir = {out!r}
train.device = "cpu"
train.max_iter = 1
train.tensorboard = False
"""


def _register():
    for name in (TRAIN, TEST):
        if name not in DatasetCatalog.list():
            DatasetCatalog.register(name, lambda name=name: LOADS.append(name) or [])
            MetadataCatalog.get(name).set(thing_classes=list(CLASSES))


@pytest.fixture
def config_file(tmp_path):
    _register()
    cfg_dir = tmp_path / "configs" / "exp"
    cfg_dir.mkdir(parents=True)
    os.symlink(os.path.join(REPO, "configs", "common"), tmp_path / "configs" / "common")
    path = cfg_dir / "three_classes.py"
    path.write_text(
        textwrap.dedent(CONFIG.format(train=TRAIN, test=TEST, out=str(tmp_path / "out")))
    )
    LOADS.clear()
    return str(path)


@pytest.fixture
def nothing_built(monkeypatch):
    """Building the model or a data loader fails the test: the check must come first."""

    def fail(*args, **kwargs):
        raise AssertionError("built before the config was checked")

    monkeypatch.setattr(DefaultTrainer, "build_model", classmethod(fail))
    monkeypatch.setattr(DefaultTrainer, "build_train_loader", classmethod(fail))


def load(path, *overrides):
    return LazyConfig.apply_overrides(LazyConfig.load(path), list(overrides))


def test_dataset_names_found_in_loader_configs(config_file):
    cfg = load(config_file)
    assert dataset_names(cfg.dataloader.train) == [TRAIN]
    assert dataset_names(cfg.dataloader.test) == [TEST]
    assert dataset_names(None) == []
    # A matching config passes and reports what it was checked against, loading nothing.
    assert DefaultTrainer.check_config(cfg) == [TRAIN, TEST]
    assert LOADS == []


def test_trainer_rejects_mismatched_num_classes_before_building(config_file, nothing_built):
    cfg = load(config_file, "model.roi_heads.num_classes=2")
    with pytest.raises(ModelConfigError) as info:
        DefaultTrainer(cfg)
    msg = str(info.value)
    # Both keys that disagree with the metadata (the predictor's follows roi_heads by
    # interpolation), the metadata's count, and which dataset / loader it came from.
    assert "model.roi_heads.num_classes=2" in msg
    assert "model.roi_heads.box_predictor.num_classes=2" in msg
    assert "3 thing_classes (plane, ship, harbor)" in msg
    assert f"dataset '{TRAIN}' read by dataloader.train" in msg
    assert LOADS == []


def test_trainer_rejects_4_weight_rotated_coder(config_file, nothing_built):
    key = "model.roi_heads.box_predictor.box2box_transform.weights"
    cfg = load(config_file, f"{key}=[10.0,10.0,5.0,5.0]")
    with pytest.raises(ModelConfigError, match=rf"{key}=\(10.0, 10.0, 5.0, 5.0\) has 4 weights"):
        DefaultTrainer(cfg)


def test_test_split_is_checked_too_and_unknown_datasets_are_skipped(config_file, nothing_built):
    # The training data matches but the test data's metadata has other classes: caught at
    # construction, not at the first evaluation.
    other = "cfgcheck_two_classes_test"
    if other not in DatasetCatalog.list():
        DatasetCatalog.register(other, lambda: LOADS.append(other) or [])
        MetadataCatalog.get(other).set(thing_classes=["a", "b"])
    cfg = load(config_file, f"dataloader.test.dataset.names=[{other}]")
    with pytest.raises(ModelConfigError, match=f"2 thing_classes.*\n.*'{other}'.*dataloader.test"):
        DefaultTrainer(cfg)
    # A dataset without metadata yet cannot be checked against; the model is still checked
    # for internal consistency.
    cfg = load(config_file, "dataloader.test.dataset.names=[not_registered_anywhere]")
    assert DefaultTrainer.check_config(cfg) == [TRAIN]
    cfg = load(
        config_file,
        "dataloader.train.dataset.names=not_registered_anywhere",
        "dataloader.test.dataset.names=[not_registered_anywhere]",
        "model.roi_heads.box_predictor.num_classes=4",
    )
    with pytest.raises(ModelConfigError, match="class counts disagree"):
        DefaultTrainer.check_config(cfg)


@pytest.mark.parametrize("eval_only", [False, True])
def test_train_tool_fails_before_training_or_evaluating(config_file, nothing_built, eval_only):
    tool = load_train_tool()
    argv = ["--config-file", config_file] + (["--eval-only"] if eval_only else [])
    args = default_argument_parser().parse_args(argv + ["model.roi_heads.num_classes=5"])
    split = "test" if eval_only else "train"
    pattern = rf"model.roi_heads.num_classes=5(.|\n)*dataloader.{split}"
    with pytest.raises(ModelConfigError, match=pattern):
        tool.main(args)
    assert LOADS == []

"""rotated_det.config.select: one dotted-key reader for configs, mappings and objects (the engine's
default_setup and DefaultPredictor and modeling's check_model_config all read through it)."""

import pytest
from omegaconf import MissingMandatoryValue, OmegaConf
from torch import nn

from rotated_det.config import LazyCall as L
from rotated_det.config import instantiate, select


def test_select_on_configs():
    cfg = OmegaConf.create(
        {"train": {"seed": None, "out": "${train.root}/run", "root": "/tmp", "todo": "???"}}
    )
    cfg.data = {"names": ["a", {"x": 2}]}
    assert select(cfg, "train.out") == "/tmp/run"  # interpolation resolved
    assert select(cfg, "data.names.1.x") == 2  # list index
    assert select(cfg, "train.seed", -1) is None  # a None value is a value
    assert select(cfg, "train.missing", -1) == -1
    assert select(cfg, "train.seed.deeper", 7) == 7  # through None: absent
    with pytest.raises(MissingMandatoryValue, match="train.todo"):
        select(cfg, "train.todo")
    assert select(cfg, "train.todo", "d", throw_on_missing=False) == "d"


def test_select_on_mappings_and_objects():
    plain = {"train": {"device": "cpu"}, "n": None}
    assert select(plain, "train.device") == "cpu"
    assert select(plain, "train.nope", "x") == "x" and select(plain, "n.a", 3) == 3
    # a lazy config node and the module built from it are read with the same keys
    node = L(nn.Linear)(in_features=2, out_features=3)
    model = instantiate(node)
    assert select(model, "out_features") == select(node, "out_features") == 3
    assert select(model, "weight.shape") == (3, 2)
    assert select(model, "nope", "absent") == "absent"
    mixed = {"model": OmegaConf.create({"head": {"num_classes": 4}})}
    assert select(mixed, "model.head.num_classes") == 4

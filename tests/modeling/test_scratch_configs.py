"""The `_scratch` R-50 configs train from random weights: GroupNorm in backbone and FPN (and the
RetinaNet head), nothing frozen, no ImageNet checkpoint; a few iterations at the config's lr keep
finite losses."""

import glob
import math
import os

import pytest
import torch

from rotated_det.config import LazyConfig, instantiate
from rotated_det.engine import DefaultTrainer
from rotated_det.layers import FrozenBatchNorm2d

from ._helpers import REPO, make_batch

SCRATCH = sorted(glob.glob(os.path.join(REPO, "configs", "*-Rotated", "*_R_50_FPN_1x_scratch.py")))


def test_scratch_variants_of_the_first_three_detectors():
    """The first three detectors have DOTA and HRSC scratch configs; any other R-50 model
    definition becomes one with ``scratch_model(model)`` in a config file."""
    names = {os.path.relpath(p, REPO) for p in SCRATCH}
    for detector in ("rotated_faster_rcnn", "rotated_retinanet", "oriented_rcnn"):
        for folder in ("DOTA-Rotated", "HRSC-Rotated"):
            assert f"configs/{folder}/{detector}_R_50_FPN_1x_scratch.py" in names
    for path in SCRATCH:  # each has its base config
        assert os.path.isfile(path[: -len("_scratch.py")] + ".py"), path


@pytest.mark.parametrize("path", SCRATCH, ids=lambda p: os.path.relpath(p, REPO))
def test_scratch_config_builds_trainable_group_norm_model(path):
    cfg = LazyConfig.load(path)
    base = LazyConfig.load(path.replace("_scratch", ""))
    assert cfg.train.init_checkpoint == ""
    # data, lr and schedule are the base config's
    assert cfg.optimizer.lr == base.optimizer.lr and cfg.train.max_iter == base.train.max_iter
    assert cfg.dataloader.train.dataset.names == base.dataloader.train.dataset.names
    assert cfg.model.backbone.bottom_up.stages.depth == 50
    model = instantiate(cfg.model)
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())
    norms = {
        part: [m for m in module.modules() if isinstance(m, torch.nn.GroupNorm)]
        for part, module in (
            ("resnet", model.backbone.bottom_up),
            ("fpn", model.backbone),
            ("head", getattr(model, "head", torch.nn.Identity())),
        )
    }
    # ResNet-50: stem + 16 bottlenecks x 3 + 4 shortcuts; FPN: 2 per input level
    assert len(norms["resnet"]) == 1 + 16 * 3 + 4
    assert len(norms["fpn"]) - len(norms["resnet"]) == 2 * len(cfg.model.backbone.in_features)
    assert len(norms["head"]) == (8 if "retinanet" in path else 0)


def test_scratch_rotated_faster_rcnn_trains_three_iterations_at_standard_lr():
    cfg = LazyConfig.load(
        os.path.join(REPO, "configs", "DOTA-Rotated", "rotated_faster_rcnn_R_50_FPN_1x_scratch.py")
    )
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    model.train()
    optimizer = DefaultTrainer.build_optimizer(cfg, model)  # lr 0.005, no warm-up
    assert optimizer.param_groups[0]["lr"] == 0.005
    batch = make_batch(256)[:1]
    totals = []
    for _ in range(3):
        losses = model(batch)
        total = sum(losses.values())
        assert all(math.isfinite(v.item()) for v in losses.values()), losses
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        totals.append(total.item())
    assert all(math.isfinite(t) for t in totals) and totals[-1] < totals[0], totals

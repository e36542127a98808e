"""The engine hands train.init_checkpoint and train.allow_unsafe_checkpoint to the checkpointer:
DefaultTrainer.resume_or_load converts ImageNet weights and refuses files that carry code unless
the config opts in; so does `tools/lazyconfig_train_net.py --eval-only`."""

import os

import pytest
import torch
import torchvision
from engine_test_tools import load_train_tool
from engine_tiny_task import TinyRegressor, tiny_config

from rotated_det.checkpoint import UnsafeCheckpointError
from rotated_det.config import LazyCall as L
from rotated_det.engine import DefaultTrainer
from rotated_det.modeling import build_resnet_backbone


class ShellPayload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _trainer(cfg) -> DefaultTrainer:
    os.makedirs(cfg.train.output_dir, exist_ok=True)  # what default_setup does
    return DefaultTrainer(cfg)


def test_trainer_converts_torchvision_init_checkpoint(tmp_path):
    tv = torchvision.models.resnet18(weights=None)
    torch.save(tv.state_dict(), tmp_path / "resnet18.pth")
    cfg = tiny_config(str(tmp_path / "out"), init_checkpoint=str(tmp_path / "resnet18.pth"))
    cfg.model = L(build_resnet_backbone)(depth=18, norm="FrozenBN", stride_in_1x1=False)
    trainer = _trainer(cfg)
    trainer.resume_or_load(resume=False)
    torch.testing.assert_close(trainer.model.res5[1].conv2.weight, tv.layer4[1].conv2.weight)
    torch.testing.assert_close(trainer.model.stem.conv1.norm.running_var, tv.bn1.running_var)


def _malicious_init(tmp_path):
    src = TinyRegressor(hidden=16, dropout=0.2)
    for p in src.parameters():
        p.data.normal_()
    marker = tmp_path / "payload_ran"
    torch.save({"model": src.state_dict(), "meta": ShellPayload(marker)}, tmp_path / "w.pth")
    return src, marker, str(tmp_path / "w.pth")


@pytest.mark.parametrize("allow", [False, True])
def test_trainer_refuses_unsafe_init_checkpoint_unless_config_allows(tmp_path, allow):
    src, marker, path = _malicious_init(tmp_path)
    cfg = tiny_config(str(tmp_path / "out"), init_checkpoint=path)
    cfg.train.allow_unsafe_checkpoint = allow
    trainer = _trainer(cfg)
    if not allow:
        with pytest.raises(UnsafeCheckpointError, match="allow_unsafe_checkpoint"):
            trainer.resume_or_load(resume=False)
        assert not marker.exists()
        return
    trainer.resume_or_load(resume=False)
    assert marker.exists()
    torch.testing.assert_close(trainer.model.net[0].weight, src.net[0].weight)


@pytest.mark.parametrize("allow", [False, True])
def test_eval_only_refuses_unsafe_checkpoint_unless_config_allows(tmp_path, allow):
    _, marker, path = _malicious_init(tmp_path)
    cfg = tiny_config(str(tmp_path / "out"), init_checkpoint=path)
    cfg.train.allow_unsafe_checkpoint = allow
    tool = load_train_tool()
    if not allow:
        with pytest.raises(UnsafeCheckpointError):
            tool.do_test(cfg)
        assert not marker.exists()
    else:
        assert tool.do_test(cfg)["regression"]["count"] == 12.0
        assert marker.exists()

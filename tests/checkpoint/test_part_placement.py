"""A checkpoint of one part of a model (a backbone saved alone) loads into the whole model: the
checkpointer finds the part's prefix, ignores what the model dropped (classifier), reports what
does not fit; .safetensors files load without pickle."""

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from rotated_det.checkpoint import DetectionCheckpointer, IncompatibleCheckpointError
from rotated_det.checkpoint.part_placement import find_part_prefix, place_part_checkpoint
from rotated_det.checkpoint.safe_load import load_checkpoint_file
from rotated_det.modeling import FPN, LastLevelMaxPool, build_resnet_backbone


class _Net(nn.Module):
    """A classification network: stem, stages, classifier head (``with_head``)."""

    def __init__(self, with_head: bool = True, blocks: int = 2):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
        self.stages = nn.ModuleList(nn.Conv2d(8, 8, 3) for _ in range(blocks))
        self.head = nn.Linear(8, 10) if with_head else nn.Identity()


class _Detector(nn.Module):
    """The network without its head, as a detector's backbone, plus a detector head."""

    def __init__(self, blocks: int = 2):
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.bottom_up = nn.Module()
        self.backbone.bottom_up.model = _Net(with_head=False, blocks=blocks)
        self.roi_heads = nn.Linear(8, 4)


def _net_state(blocks: int = 2) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return _Net(blocks=blocks).state_dict()


def test_finds_the_part_prefix_on_both_sides():
    file_keys = ["backbone.stem.0.weight", "backbone.stages.0.weight", "neck.conv.weight"]
    model_keys = ["det.bottom_up.stem.0.weight", "det.bottom_up.stages.0.weight", "rpn.x.weight"]
    assert find_part_prefix(file_keys, model_keys) == ("det.bottom_up.", "backbone.", 2)
    assert find_part_prefix(["a.weight"], ["b.bias"]) == ("", "", 0)


def test_network_file_loads_into_detector_with_report(tmp_path):
    state = _net_state()
    path = str(tmp_path / "net.pth")
    torch.save(state, path)
    model = _Detector()
    ckpt = DetectionCheckpointer(model)
    ckpt.load(path)
    report = ckpt.load_report
    prefix = "backbone.bottom_up.model."
    assert report.source_format == "part" and report.resnet_prefix == prefix
    for key, value in model.state_dict().items():
        if key.startswith(prefix):  # every backbone tensor came from the file
            assert torch.equal(value, state[key[len(prefix) :]]), key
    assert not [k for k in report.missing if k.startswith(prefix)]
    assert sorted(report.missing) == ["roi_heads.bias", "roi_heads.weight"]
    # the classifier is a part the model dropped: ignored, not unmatched
    assert sorted(report.ignored) == ["head.bias", "head.weight"]
    assert report.unmatched == [] and not report.needs_attention
    assert f"placed at '{prefix}'" in report.table()


def test_tensors_of_a_kept_part_that_do_not_fit_are_unmatched(tmp_path):
    # a deeper variant's file: its third stage block has no place in the 2-block model
    path = str(tmp_path / "deeper.pth")
    torch.save(_net_state(blocks=3), path)
    ckpt = DetectionCheckpointer(_Detector(blocks=2))
    ckpt.load(path)
    assert sorted(ckpt.load_report.unmatched) == ["stages.2.bias", "stages.2.weight"]
    assert ckpt.load_report.needs_attention


def test_openmmlab_style_file_prefix_and_state_dict_entry(tmp_path):
    state = {f"backbone.{k}": v for k, v in _net_state().items()}
    state["neck.lateral.weight"] = torch.zeros(3)
    path = str(tmp_path / "mm.pth")
    torch.save({"state_dict": state, "meta": {"epoch": 12}}, path)
    model = _Detector()
    ckpt = DetectionCheckpointer(model)
    ckpt.load(path)
    assert ckpt.load_report.renamed["backbone.bottom_up.model.stem.0.weight"] == (
        "backbone.stem.0.weight"
    )
    assert ckpt.load_report.unmatched == ["neck.lateral.weight"]  # outside the file's prefix


def test_own_checkpoint_and_resnet_files_are_not_placed():
    model = _Detector()
    assert place_part_checkpoint(model.state_dict(), model) is None  # loads by name
    # a torchvision ResNet file into a model with this package's ResNet: resnet_conversion's job
    resnet = FPN(build_resnet_backbone(18), ["res4", "res5"], 8, top_block=LastLevelMaxPool())
    tv_keys = {"conv1.weight": torch.zeros(1), "layer1.0.conv1.weight": torch.zeros(1)}
    assert place_part_checkpoint(tv_keys, resnet) is None


def test_names_shared_by_chance_are_not_a_part(tmp_path):
    # one of the file's four tensors pairs with the model ("0.weight" under "stem."): no placement
    state = {"stem.0.weight": torch.zeros(8, 3, 3, 3), "x.a.weight": torch.zeros(1)}
    state.update({"x.b.weight": torch.zeros(1), "x.c.weight": torch.zeros(1)})
    assert place_part_checkpoint(state, _Detector()) is None
    path = str(tmp_path / "other.pth")
    torch.save(state, path)
    with pytest.raises(IncompatibleCheckpointError, match="no parameter of the checkpoint"):
        DetectionCheckpointer(_Detector()).load(path)


def test_safetensors_file_loads_and_bad_file_names_itself(tmp_path):
    state = {k: v.contiguous() for k, v in _net_state().items()}
    path = str(tmp_path / "model.safetensors")
    save_file(state, path)
    loaded = load_checkpoint_file(path)
    assert set(loaded) == set(state)
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    model = _Detector()
    DetectionCheckpointer(model).load(path)
    assert torch.equal(model.backbone.bottom_up.model.stem[0].weight, state["stem.0.weight"])
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{not")
    with pytest.raises(ValueError, match="bad.safetensors: not a readable safetensors file"):
        load_checkpoint_file(str(bad))

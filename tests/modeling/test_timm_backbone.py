"""TimmBackbone: timm networks' feature maps named by stride under an FPN, with the channels and
strides they declare; Swin at any input size; BGR input; freezing; timm checkpoints through the
checkpointer; the ConvNeXt-T / Swin-T configs."""

import math
import os
import sys

import pytest
import timm
import torch
from safetensors.torch import save_file
from script_loading import load_script

from rotated_det.checkpoint import DetectionCheckpointer, IncompatibleCheckpointError
from rotated_det.config import LazyConfig, instantiate
from rotated_det.data import MetadataCatalog
from rotated_det.modeling import check_model_config
from rotated_det.modeling.backbone import TimmBackbone
from rotated_det.modeling.backbone.timm_backbone import import_timm

from ._helpers import MODEL_CONFIGS, REPO, make_batch

SWIN = "swin_tiny_patch4_window7_224"
# channels of the four stages in the papers (ResNet-18: 64-512; ConvNeXt-T and Swin-T: 96-768)
CHANNELS = {
    "resnet18": [64, 128, 256, 512],
    "convnext_tiny": [96, 192, 384, 768],
    SWIN: [96, 192, 384, 768],
}
KWARGS = {"resnet18": {}, "convnext_tiny": {}, SWIN: {"dynamic_img_size": True}}


def _backbone(name: str, **kwargs) -> TimmBackbone:
    torch.manual_seed(0)
    return TimmBackbone(name, model_kwargs=KWARGS[name], **kwargs).eval()


@pytest.mark.parametrize("name", list(CHANNELS))
def test_feature_shapes_and_strides(name):
    backbone = _backbone(name)
    shapes = backbone.output_shape()
    assert list(shapes) == ["res2", "res3", "res4", "res5"]
    assert [s.channels for s in shapes.values()] == CHANNELS[name]
    assert [s.stride for s in shapes.values()] == [4, 8, 16, 32]
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        out = backbone(x)
    assert list(out) == list(shapes)
    for key, feature in out.items():
        s = shapes[key].stride
        assert tuple(feature.shape) == (2, shapes[key].channels, 64 // s, 96 // s), key


def test_swin_takes_any_input_size_and_matches_fixed_size_swin():
    # dynamic_img_size: inputs that are no multiple of the window or of 32 are padded per stage
    backbone = _backbone(SWIN)
    with torch.no_grad():
        out = backbone(torch.randn(1, 3, 100, 72))
    assert [tuple(f.shape[-2:]) for f in out.values()] == [
        (math.ceil(100 / s), math.ceil(72 / s)) for s in (4, 8, 16, 32)
    ]
    # at timm's fixed 224 px size the dynamic masks equal the static ones: same features as the
    # plain (fixed-size) timm Swin with the same weights
    fixed = timm.create_model(SWIN, features_only=True, feature_cls="getter").eval()
    fixed.model.load_state_dict(backbone.model.state_dict())
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        ours, reference = backbone(x), fixed(x)
    for a, b in zip(ours.values(), reference, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_bgr_input_reverses_channels_for_the_rgb_network():
    rgb = _backbone("resnet18")
    bgr = TimmBackbone("resnet18", input_format="BGR").eval()
    bgr.load_state_dict(rgb.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(bgr(x.flip(1))["res3"], rgb(x)["res3"])


def test_out_indices_and_names():
    backbone = TimmBackbone("resnet18", out_indices=(0, 2, 4), out_names=["s1", "c3", "c5"])
    assert {k: (s.channels, s.stride) for k, s in backbone.output_shape().items()} == {
        "s1": (64, 2),
        "c3": (128, 8),
        "c5": (512, 32),
    }
    with torch.no_grad():
        out = backbone(torch.randn(1, 3, 64, 64))
    assert {k: tuple(v.shape[1:]) for k, v in out.items()} == {
        "s1": (64, 32, 32),
        "c3": (128, 8, 8),
        "c5": (512, 2, 2),
    }
    with pytest.raises(ValueError, match="out_names"):
        TimmBackbone("resnet18", out_names=["a", "b"])
    with pytest.raises(ValueError, match="may not set 'out_indices'"):
        TimmBackbone("resnet18", model_kwargs={"out_indices": (1,)})
    with pytest.raises(ValueError, match="input_format"):
        TimmBackbone("resnet18", input_format="YUV")


def test_freeze_at_freezes_stem_and_first_levels():
    backbone = TimmBackbone("resnet18", freeze_at=2)
    frozen = {n.split(".")[1] for n, p in backbone.named_parameters() if not p.requires_grad}
    trainable = {n.split(".")[1] for n, p in backbone.named_parameters() if p.requires_grad}
    assert frozen == {"conv1", "layer1"}  # the stem (conv1, bn1) and res2
    assert trainable == {"layer2", "layer3", "layer4"}
    # frozen BatchNorms: fixed statistics, and the frozen parts stay in eval mode
    assert not isinstance(backbone.model.bn1, torch.nn.BatchNorm2d)
    assert not isinstance(backbone.model.layer1[0].bn1, torch.nn.BatchNorm2d)
    assert isinstance(backbone.model.layer2[0].bn1, torch.nn.BatchNorm2d)
    backbone.train()
    assert not backbone.model.layer1.training and backbone.model.layer2.training
    convnext = TimmBackbone("convnext_tiny", freeze_at=1)
    assert {n.split(".")[1] for n, p in convnext.named_parameters() if not p.requires_grad} == {
        "stem"
    }


def test_freeze_bn_freezes_every_batchnorm():
    backbone = TimmBackbone("resnet18", freeze_bn=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in backbone.modules())
    assert all(p.requires_grad for p in backbone.parameters())  # convs still train


def test_missing_timm_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(ImportError, match="pip install timm"):
        import_timm()


def _detector(name: str, **kwargs):
    """Oriented R-CNN from configs/common/models with TimmBackbone(name), as the configs build."""
    helper = load_script("configs/common/models/timm_backbone.py")
    base = LazyConfig.load(os.path.join(MODEL_CONFIGS, "oriented_rcnn.py")).model
    torch.manual_seed(0)
    return instantiate(helper.timm_model(base, name, **kwargs))


@pytest.mark.parametrize("name,suffix", [("resnet18", ".pth"), ("convnext_tiny", ".safetensors")])
def test_timm_checkpoint_round_trip_through_checkpointer(tmp_path, name, suffix):
    torch.manual_seed(1)  # a timm classification network, its own names and classifier
    network = timm.create_model(name)
    state = {k: v.contiguous() for k, v in network.state_dict().items()}
    path = str(tmp_path / f"{name}{suffix}")
    torch.save(state, path) if suffix == ".pth" else save_file(state, path)
    model = _detector(name, freeze_bn=name == "resnet18")
    ckpt = DetectionCheckpointer(model)
    ckpt.resume_or_load(path, resume=False)
    report = ckpt.load_report
    prefix = "backbone.bottom_up.model."
    backbone_keys = [k for k in model.state_dict() if k.startswith(prefix)]
    assert backbone_keys and set(backbone_keys) <= set(report.matched)
    for key in backbone_keys:  # every backbone tensor is the file's
        assert torch.equal(model.state_dict()[key], state[key[len(prefix) :]]), key
    assert not [k for k in report.missing if k.startswith(prefix)]
    assert report.unmatched == [] and not report.needs_attention
    head = {"resnet18": {"fc.weight", "fc.bias"}, "convnext_tiny": {"head.fc.weight"}}[name]
    assert head <= set(report.ignored)
    # the detector works with them: features equal the timm network's own
    network.eval()
    model.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        levels = [1, 2, 3, 4] if name == "resnet18" else [0, 1, 2, 3]  # strides 4 to 32
        reference = network.forward_intermediates(x, indices=levels, intermediates_only=True)
        ours = model.backbone.bottom_up.model.forward_intermediates(
            x, indices=model.backbone.bottom_up._indices, intermediates_only=True
        )
    torch.testing.assert_close(ours[-1], reference[-1], rtol=1e-4, atol=1e-4)


def test_other_networks_weights_are_refused(tmp_path):
    path = str(tmp_path / "convnext.pth")
    torch.save(timm.create_model("convnext_tiny").state_dict(), path)
    with pytest.raises(IncompatibleCheckpointError, match="no parameter of the checkpoint"):
        DetectionCheckpointer(_detector("resnet18")).load(path)


TIMM_CONFIGS = [
    os.path.join(REPO, "configs", folder, f"oriented_rcnn_{net}_FPN_1x.py")
    for folder in ("DOTA-Rotated", "HRSC-Rotated")
    for net in ("convnext_tiny", "swin_tiny")
] + [os.path.join(REPO, "configs", "DOTA-Rotated", "roi_transformer_swin_tiny_FPN_1x.py")]


@pytest.mark.parametrize("path", TIMM_CONFIGS, ids=lambda p: os.path.relpath(p, REPO))
def test_timm_configs_load_with_mmrotate_settings(path):
    cfg = LazyConfig.load(path)
    thing_classes = MetadataCatalog.get(cfg.dataloader.train.dataset.names).thing_classes
    check_model_config(cfg.model, thing_classes=thing_classes)
    assert cfg.optimizer._target_ is torch.optim.AdamW
    assert (cfg.optimizer.lr, cfg.optimizer.weight_decay) == (1e-4, 0.05)
    assert cfg.dataloader.train.total_batch_size == 2
    bottom_up = cfg.model.backbone.bottom_up
    assert bottom_up._target_ is TimmBackbone and bottom_up.input_format == "BGR"
    assert cfg.model.backbone.in_features == ["res2", "res3", "res4", "res5"]


@pytest.mark.slow  # builds an ImageNet-size backbone and trains a step: ~5 s each
@pytest.mark.parametrize("path", TIMM_CONFIGS, ids=lambda p: os.path.relpath(p, REPO))
def test_timm_configs_build_and_train_a_step(path):
    cfg = LazyConfig.load(path)
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    assert [model.backbone.output_shape()[f"p{k}"].stride for k in range(2, 7)] == [
        4,
        8,
        16,
        32,
        64,
    ]
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    if "swin" in path:  # relative position tables take no weight decay
        tables = {id(p) for n, p in model.named_parameters() if "relative_position" in n}
        groups = optimizer.param_groups
        decays = {g["weight_decay"] for g in groups for p in g["params"] if id(p) in tables}
        assert tables and decays == {0.0}
    model.train()
    batch = make_batch(128)
    for d in batch:  # HRSC: one class
        d["instances"].gt_classes.clamp_(max=cfg.model.roi_heads.num_classes - 1)
    losses = model(batch)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    optimizer.step()

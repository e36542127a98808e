"""Every R-50 / R-101 config loads ImageNet weights in torchvision and MSRA .pkl layouts through
``DetectionCheckpointer(model).resume_or_load(path, resume=False)`` (what ``train.init_checkpoint``
does), and every tensor of the backbone's ResNet equals the file's after the documented
conversion (see rotated_det/checkpoint/resnet_conversion.py)."""

import glob
import os
import pickle
import re

import numpy as np
import pytest
import torch
import torchvision

from rotated_det.checkpoint import DetectionCheckpointer
from rotated_det.config import LazyConfig, instantiate
from rotated_det.modeling import build_resnet_backbone

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# `_scratch` variants train from random weights (GroupNorm / SyncBN): not for ImageNet weights.
CONFIGS = sorted(
    p
    for pattern in ("*_R_50_*.py", "*_R_101_*.py")
    for p in glob.glob(os.path.join(REPO, "configs", "**", pattern), recursive=True)
    if "scratch" not in os.path.basename(p)
)
# No R-101 config exists yet: check the depth override of each R-50 model definition too.
CASES = [(p, None) for p in CONFIGS] + [
    (os.path.join(REPO, "configs", "DOTA-Rotated", f"{m}_R_50_FPN_1x.py"), 101)
    for m in ("oriented_rcnn", "rotated_faster_rcnn", "rotated_retinanet")
]
PREFIX = "backbone.bottom_up."
# torchvision's ImageNet std (0-255 units) per RGB channel; the configs feed BGR, std 1
TORCHVISION_STD_RGB = torch.tensor([58.395, 57.12, 57.375])


def _torchvision_name(ours: str) -> str:
    """Our ResNet key -> torchvision's (independent of the library)."""
    m = re.match(r"stem\.conv1\.(norm\.)?(\w+)$", ours)
    if m:
        return ("bn1." if m.group(1) else "conv1.") + m.group(2)
    stage, block, conv, norm, param = re.match(
        r"res(\d)\.(\d+)\.(conv\d|shortcut)\.(norm\.)?(\w+)$", ours
    ).groups()
    if conv == "shortcut":
        part = "downsample.1." if norm else "downsample.0."
    else:
        part = f"bn{conv[-1]}." if norm else f"{conv}."
    return f"layer{int(stage) - 1}.{block}.{part}{param}"


def _msra_name(ours: str) -> str | None:
    """Our ResNet key -> the Caffe2 / MSRA blob (None for statistics, which MSRA folds)."""
    if ours.endswith(("running_mean", "running_var")):
        return None
    m = re.match(r"stem\.conv1\.(norm\.)?(weight|bias)$", ours)
    if m:
        return "res_conv1_bn_" + "sb"[m.group(2) == "bias"] if m.group(1) else "conv1_w"
    stage, block, conv, norm, param = re.match(
        r"res(\d)\.(\d+)\.(conv\d|shortcut)\.(norm\.)?(weight|bias)$", ours
    ).groups()
    branch = {"conv1": "branch2a", "conv2": "branch2b", "conv3": "branch2c", "shortcut": "branch1"}
    suffix = ("bn_s" if param == "weight" else "bn_b") if norm else "w"
    return f"res{stage}_{block}_{branch[conv]}_{suffix}"


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    """{depth: (torchvision .pth, its state dict, MSRA .pkl, its blobs)} of random values (BN
    statistics included), written once per depth."""
    folder = tmp_path_factory.mktemp("imagenet")
    out = {}
    for depth in (50, 101):
        g = torch.Generator().manual_seed(depth)
        with torch.device("meta"):  # names and shapes only
            tv_shapes = getattr(torchvision.models, f"resnet{depth}")(weights=None).state_dict()
            ours = build_resnet_backbone(depth).state_dict()
        tv = {
            k: torch.tensor(0)
            if k.endswith("num_batches_tracked")
            else torch.rand(v.shape, generator=g) + 0.5
            for k, v in tv_shapes.items()
        }
        torch.save(tv, folder / f"resnet{depth}.pth")
        rng = np.random.default_rng(depth)
        blobs = {
            _msra_name(k): rng.standard_normal(tuple(v.shape)).astype(np.float32)
            for k, v in ours.items()
            if _msra_name(k) is not None
        }
        blobs["fc1000_w"] = np.zeros((1000, 2048), dtype=np.float32)
        with open(folder / f"R-{depth}.pkl", "wb") as f:
            pickle.dump(blobs, f)  # like Detectron2's ImageNet R-50.pkl: a flat dict of blobs
        out[depth] = (folder / f"resnet{depth}.pth", tv, folder / f"R-{depth}.pkl", blobs)
    return out


@pytest.mark.slow  # builds detectors
@pytest.mark.parametrize(
    "config, depth",
    CASES,
    ids=[os.path.relpath(p, REPO) + (f"[depth={d}]" if d else "") for p, d in CASES],
)
def test_config_loads_torchvision_and_msra_resnet(config, depth, weight_files):
    cfg = LazyConfig.load(config)
    if depth is not None:
        cfg = LazyConfig.apply_overrides(cfg, [f"model.backbone.bottom_up.stages.depth={depth}"])
    depth = cfg.model.backbone.bottom_up.stages.depth
    model = instantiate(cfg.model)
    # the conversion below is the one for the configs' input: BGR, ImageNet mean, std 1
    assert model.input_format == "BGR" and torch.all(model.pixel_std == 1)
    resnet_keys = [k for k in model.state_dict() if k.startswith(PREFIX)]
    ours = [k[len(PREFIX) :] for k in resnet_keys]
    assert len(ours) > 100

    # torchvision layout
    tv_path, tv, pkl_path, blobs = weight_files[depth]
    ckpt = DetectionCheckpointer(model)
    ckpt.resume_or_load(str(tv_path), resume=False)
    state = model.state_dict()
    for k in ours:
        expected = tv[_torchvision_name(k)]
        if k == "stem.conv1.weight":  # RGB -> BGR, and the std folded into the weights
            expected = (expected / TORCHVISION_STD_RGB.view(1, 3, 1, 1)).flip(1)
        torch.testing.assert_close(state[PREFIX + k], expected, msg=k)
    report = ckpt.load_report
    assert report.unmatched == [] and not report.incompatible_shapes
    assert not [k for k in report.missing if k.startswith(PREFIX)]
    assert sorted(k for k in report.matched if k.startswith(PREFIX)) == sorted(resnet_keys)

    # MSRA .pkl layout (into the same model: every tensor is overwritten)
    ckpt = DetectionCheckpointer(model)
    ckpt.resume_or_load(str(pkl_path), resume=False)
    state = model.state_dict()
    for k in ours:
        name = _msra_name(k)
        if name is not None:
            expected = torch.from_numpy(blobs[name])
        elif k.endswith("running_mean"):
            expected = torch.zeros_like(state[PREFIX + k])
        else:  # identity statistics: FrozenBN then computes x * scale + bias exactly
            expected = torch.full_like(state[PREFIX + k], 1 - 1e-5)
        torch.testing.assert_close(state[PREFIX + k], expected, msg=k)
    report = ckpt.load_report
    assert report.unmatched == [] and not report.incompatible_shapes and not report.warnings
    assert not [k for k in report.missing if k.startswith(PREFIX)]


def test_torchvision_weights_compute_torchvision_features_in_a_detector(tmp_path):
    """With the stride layout torchvision uses, the detector's backbone computes on a BGR 0-255
    image what torchvision's ResNet computes on the same image in RGB, ImageNet-normalised."""
    torch.manual_seed(0)
    tv = torchvision.models.resnet50(weights=None)
    g = torch.Generator().manual_seed(1)
    for m in tv.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    tv.eval()
    torch.save(tv.state_dict(), tmp_path / "resnet50.pth")
    cfg = LazyConfig.load(
        os.path.join(REPO, "configs", "DOTA-Rotated", "oriented_rcnn_R_50_FPN_1x.py")
    )
    cfg = LazyConfig.apply_overrides(cfg, ["model.backbone.bottom_up.stages.stride_in_1x1=False"])
    model = instantiate(cfg.model).eval()
    ckpt = DetectionCheckpointer(model)
    ckpt.resume_or_load(str(tmp_path / "resnet50.pth"), resume=False)
    assert not ckpt.load_report.warnings

    bgr = torch.randint(0, 256, (3, 64, 96)).float()
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    tv_input = (bgr.flip(0) / 255.0 - mean.view(3, 1, 1)) / std.view(3, 1, 1)  # RGB, normalised
    tv_trunk = torch.nn.Sequential(*list(tv.children())[:-2])  # conv1 ... layer4
    with torch.no_grad():
        got = model.backbone.bottom_up(model.preprocess_image([{"image": bgr}]).tensor)["res5"]
        expected = tv_trunk(tv_input[None])
    torch.testing.assert_close(got, expected, atol=1e-3, rtol=1e-3)

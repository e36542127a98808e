"""DetectionCheckpointer converts ImageNet ResNet checkpoints: torchvision / timm names, Caffe2 /
MSRA .pkl blobs, Detectron2 names at another prefix, and ``torchvision://`` names."""

import pickle
import re
import urllib.error

import numpy as np
import pytest
import torch
import torchvision

from rotated_det.checkpoint import DetectionCheckpointer, IncompatibleCheckpointError
from rotated_det.modeling import FPN, LastLevelMaxPool, build_resnet_backbone


def _randomise_bn_stats(model):
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def _torchvision_features(tv, x):
    x = tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))
    out = {}
    for i in range(1, 5):
        x = getattr(tv, f"layer{i}")(x)
        out[f"res{i + 1}"] = x
    return out


def _load(model, path, **kw):
    ckpt = DetectionCheckpointer(model, **kw)
    ckpt.resume_or_load(str(path), resume=False)
    return ckpt.load_report


@pytest.mark.parametrize("depth", [18, 50])
def test_torchvision_checkpoint_gives_same_features(depth, tmp_path):
    torch.manual_seed(0)
    tv = getattr(torchvision.models, f"resnet{depth}")(weights=None)
    _randomise_bn_stats(tv)
    tv.eval()
    path = tmp_path / f"resnet{depth}.pth"
    torch.save(tv.state_dict(), path)

    ours = build_resnet_backbone(depth, norm="FrozenBN", freeze_at=0, stride_in_1x1=False)
    report = _load(ours, path)
    assert report.source_format == "torchvision" and report.resnet_prefix == ""
    assert report.missing == [] and report.unmatched == [] and not report.incompatible_shapes
    assert len(report.matched) == len(ours.state_dict())
    assert report.renamed["res2.0.conv1.norm.running_var"] == "layer1.0.bn1.running_var"
    assert report.ignored[:2] == ["fc.weight", "fc.bias"]
    assert any(k.endswith("num_batches_tracked") for k in report.ignored)
    assert not report.adapted  # a bare backbone states no input normalisation: copied as is

    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        expected = _torchvision_features(tv, x)
        got = ours(x)
    for name in ("res2", "res3", "res4", "res5"):
        torch.testing.assert_close(got[name], expected[name], atol=1e-4, rtol=1e-4)


def test_openmmlab_checkpoint_with_torchvision_names_under_backbone(tmp_path):
    # mmpretrain / mmdet ResNets use torchvision names under "backbone." inside "state_dict"
    tv = torchvision.models.resnet18(weights=None)
    sd = {"backbone." + k: v for k, v in tv.state_dict().items() if not k.startswith("fc.")}
    sd["head.fc.weight"] = torch.zeros(1000, 512)
    torch.save({"state_dict": sd, "meta": {"epoch": 100}}, tmp_path / "mm.pth")
    ours = build_resnet_backbone(18, norm="FrozenBN", freeze_at=0, stride_in_1x1=False)
    report = _load(ours, tmp_path / "mm.pth")
    assert report.missing == [] and report.unmatched == ["head.fc.weight"]
    torch.testing.assert_close(ours.res5[1].conv2.weight, tv.layer4[1].conv2.weight)


def _to_msra_name(name: str) -> str:
    """Our parameter name -> the Caffe2 / MSRA blob name (independent of the library)."""
    param = {"weight": "w", "bias": "b"}
    norm = {"weight": "bn_s", "bias": "bn_b"}
    m = re.match(r"stem\.conv1\.(norm\.)?(weight|bias)$", name)
    if m:
        return "res_conv1_" + norm[m.group(2)] if m.group(1) else "conv1_" + param[m.group(2)]
    m = re.match(r"res(\d)\.(\d+)\.(conv1|conv2|conv3|shortcut)\.(norm\.)?(weight|bias)$", name)
    branch = {"conv1": "branch2a", "conv2": "branch2b", "conv3": "branch2c", "shortcut": "branch1"}
    s, b, conv, is_norm, p = m.groups()
    suffix = norm[p] if is_norm else param[p]
    return f"res{s}_{b}_{branch[conv]}_{suffix}"


@pytest.mark.parametrize("depth", [18, 50])
def test_msra_pkl_loads_with_name_conversion_and_report(depth, tmp_path):
    source = build_resnet_backbone(depth, norm="FrozenBN", freeze_at=0, stride_in_1x1=True)
    blobs = {}
    g = np.random.default_rng(0)
    for k, v in source.state_dict().items():
        if k.endswith("running_mean") or k.endswith("running_var"):
            continue  # MSRA files fold the statistics into scale / bias
        blobs[_to_msra_name(k)] = g.standard_normal(tuple(v.shape)).astype(np.float32)
    blobs["conv1_w_momentum"] = np.zeros(1, dtype=np.float32)
    blobs["fc1000_w"] = np.zeros((1000, 2048), dtype=np.float32)
    blobs["res9_0_branch2a_w"] = np.zeros((3, 3), dtype=np.float32)  # matches nothing
    blobs["res2_0_branch2a_bn_s"] = np.ones(7, dtype=np.float32)  # wrong shape
    path = tmp_path / f"R-{depth}.pkl"
    with open(path, "wb") as f:
        pickle.dump({"blobs": blobs, "__author__": "test"}, f)

    backbone = FPN(
        bottom_up=build_resnet_backbone(depth, norm="FrozenBN", freeze_at=2),
        in_features=["res2", "res3", "res4", "res5"],
        out_channels=32,
        top_block=LastLevelMaxPool(),
    )
    report = _load(backbone, path)
    assert report.source_format == "msra" and report.resnet_prefix == "bottom_up."
    assert report.unmatched == ["bottom_up.res9.0.conv1.weight"]
    assert [k for k, _, _ in report.incompatible_shapes] == ["bottom_up.res2.0.conv1.norm.weight"]
    # the bad scale is not loaded, nor are that layer's (implied identity) statistics
    assert [k for k in report.missing if k.startswith("bottom_up.")] == [
        "bottom_up.res2.0.conv1.norm.running_mean",
        "bottom_up.res2.0.conv1.norm.running_var",
    ]
    assert set(report.ignored) == {"conv1_w_momentum", "fc1000_w"}
    state = backbone.bottom_up.state_dict()
    torch.testing.assert_close(state["stem.conv1.weight"], torch.from_numpy(blobs["conv1_w"]))
    torch.testing.assert_close(
        state["res3.0.shortcut.norm.bias"], torch.from_numpy(blobs["res3_0_branch1_bn_b"])
    )
    last = "res5.1.conv2.weight" if depth == 18 else "res5.2.conv3.weight"
    msra_last = "res5_1_branch2b_w" if depth == 18 else "res5_2_branch2c_w"
    torch.testing.assert_close(state[last], torch.from_numpy(blobs[msra_last]))
    # frozen BN of a file with only scale / bias computes exactly x * scale + bias
    norm = backbone.bottom_up.res4[0].conv1.norm
    assert torch.all(norm.running_mean == 0)
    assert torch.all(norm.running_var == 1 - norm.eps)
    x = torch.randn(2, norm.num_features, 3, 3)
    expected = x * norm.weight.view(1, -1, 1, 1) + norm.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(norm(x), expected)


def test_detectron2_named_pickle_round_trip(tmp_path):
    # a full detector's file (names under backbone.bottom_up.) into a bare ResNet
    torch.manual_seed(2)
    src = build_resnet_backbone(18, norm="FrozenBN", freeze_at=0)
    for p in src.parameters():
        p.data.normal_()
    model_dict = {"backbone.bottom_up." + k: v.numpy() for k, v in src.state_dict().items()}
    model_dict["backbone.fpn_lateral2.weight"] = np.zeros((4, 64, 1, 1), dtype=np.float32)
    path = tmp_path / "model.pkl"
    with open(path, "wb") as f:
        pickle.dump({"model": model_dict, "__author__": "test"}, f)
    dst = build_resnet_backbone(18, norm="FrozenBN", freeze_at=0)
    report = _load(dst, path)
    assert report.source_format == "detectron2"
    assert report.missing == [] and report.unmatched == ["backbone.fpn_lateral2.weight"]
    for k, v in src.state_dict().items():
        torch.testing.assert_close(dst.state_dict()[k], v)


def test_stride_layout_mismatch_is_reported(tmp_path, capture_logs):
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), tmp_path / "tv.pth")
    ours = build_resnet_backbone(50, norm="FrozenBN", freeze_at=0, stride_in_1x1=True)
    with capture_logs("rotated_det.checkpoint") as logs:
        report = _load(ours, tmp_path / "tv.pth")
    assert any("stride_in_1x1=False" in w for w in report.warnings)
    assert "stride_in_1x1=False" in logs.text


def test_resnet_weights_into_a_model_without_resnet_is_an_error(tmp_path):
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "tv.pth")
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    with pytest.raises(IncompatibleCheckpointError, match="no ResNet") as e:
        _load(model, tmp_path / "tv.pth")
    assert "tv.pth" in str(e.value) and "torchvision" in str(e.value)


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    """An empty torch.hub cache and no network."""
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "_hub_dir", str(hub))

    def offline(url, dst, *args, **kwargs):
        raise urllib.error.URLError("no network in this test")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return hub


@pytest.mark.parametrize("name", ["resnet18", "ResNet18_Weights.IMAGENET1K_V1"])
def test_torchvision_name_without_network_says_where_to_put_the_file(hub_dir, name):
    expected = hub_dir / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(FileNotFoundError) as e:
        _load(build_resnet_backbone(18), f"torchvision://{name}")
    msg = str(e.value)
    assert str(expected) in msg and "https://download.pytorch.org/models/resnet18" in msg
    assert "no network in this test" in msg


def test_torchvision_name_loads_from_the_hub_cache(hub_dir):
    tv = torchvision.models.resnet18(weights=None)
    (hub_dir / "checkpoints").mkdir(parents=True)
    torch.save(tv.state_dict(), hub_dir / "checkpoints" / "resnet18-f37072fd.pth")
    ours = build_resnet_backbone(18, norm="FrozenBN", freeze_at=0, stride_in_1x1=False)
    report = _load(ours, "torchvision://ResNet18_Weights.IMAGENET1K_V1")
    assert report.source_format == "torchvision" and report.missing == []
    torch.testing.assert_close(ours.stem.conv1.weight, tv.conv1.weight)


def test_unknown_torchvision_name_is_an_error(hub_dir):
    with pytest.raises(ValueError, match="torchvision://resnet5:.*ResNet50_Weights"):
        _load(build_resnet_backbone(18), "torchvision://resnet5")

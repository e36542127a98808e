"""ResNet weight loading from torchvision and Detectron2 / MSRA checkpoint formats."""

import pickle
import re

import numpy as np
import pytest
import torch
import torchvision

from rotated_det.modeling import FPN, LastLevelMaxPool, build_resnet_backbone, load_resnet_weights


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


@pytest.mark.parametrize("depth", [18, 50])
def test_torchvision_checkpoint_gives_same_features(depth, tmp_path):
    torch.manual_seed(0)
    tv = getattr(torchvision.models, f"resnet{depth}")(weights=None)
    _randomise_bn_stats(tv)
    tv.eval()
    path = tmp_path / f"resnet{depth}.pth"
    torch.save(tv.state_dict(), path)

    ours = build_resnet_backbone(depth, norm="FrozenBN", freeze_at=0, stride_in_1x1=False)
    report = load_resnet_weights(ours, str(path))
    assert report.missing == [] and report.unexpected == [] and not report.shape_mismatch
    assert "fc.weight" in report.ignored and "fc.bias" in report.ignored
    assert any(k.endswith("num_batches_tracked") for k in report.ignored)

    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        expected = _torchvision_features(tv, x)
        got = ours(x)
    for name in ("res2", "res3", "res4", "res5"):
        torch.testing.assert_close(got[name], expected[name], atol=1e-4, rtol=1e-4)


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
    torch.manual_seed(1)
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
    report = load_resnet_weights(backbone, str(path))
    assert report.unexpected == ["res9.0.conv1.weight"]
    assert list(report.shape_mismatch) == ["res2.0.conv1.norm.weight"]
    # the bad scale is not loaded, nor are that layer's (implied identity) statistics
    assert report.missing == [
        "res2.0.conv1.norm.running_mean",
        "res2.0.conv1.norm.running_var",
        "res2.0.conv1.norm.weight",
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
    # statistics of frozen BN are identity when the file has only scale / bias
    assert torch.all(state["res4.0.conv1.norm.running_mean"] == 0)
    with pytest.raises(ValueError, match="res9.0.conv1.weight"):
        load_resnet_weights(backbone, str(path), strict=True)


def test_detectron2_named_pickle_round_trip(tmp_path):
    torch.manual_seed(2)
    src = build_resnet_backbone(18, norm="FrozenBN", freeze_at=0)
    for p in src.parameters():
        p.data.normal_()
    model_dict = {"backbone.bottom_up." + k: v.numpy() for k, v in src.state_dict().items()}
    path = tmp_path / "model.pkl"
    with open(path, "wb") as f:
        pickle.dump({"model": model_dict, "__author__": "test"}, f)
    dst = build_resnet_backbone(18, norm="FrozenBN", freeze_at=0)
    report = load_resnet_weights(dst, str(path))
    assert report.missing == [] and report.unexpected == []
    for k, v in src.state_dict().items():
        torch.testing.assert_close(dst.state_dict()[k], v)


def test_stride_layout_mismatch_is_reported(tmp_path, caplog):
    tv = torchvision.models.resnet50(weights=None)
    ours = build_resnet_backbone(50, norm="FrozenBN", freeze_at=0, stride_in_1x1=True)
    with caplog.at_level("WARNING"):
        load_resnet_weights(ours, tv.state_dict())
    assert "stride_in_1x1=False" in caplog.text


def test_unknown_format_is_an_error():
    with pytest.raises(ValueError, match="Cannot tell the format"):
        load_resnet_weights(build_resnet_backbone(18), {"foo.weight": torch.zeros(1)})

"""Rotated RTMDet's parts: CSPNeXt (SPPF against parallel pooling, sizes, MMDetection's parameter
names), the PAFPN's outputs, the head's shared convs and per-level norms, and the model sizes
against MMRotate's published parameter counts."""

import importlib.util
import os

import pytest
import torch
from torch.nn import functional as F

from rotated_det.config import instantiate
from rotated_det.modeling import CSPNeXt, CSPNeXtPAFPN, RotatedRTMDetHead
from rotated_det.modeling.backbone.cspnext import SPPFBottleneck

from ._helpers import MODEL_CONFIGS, single_thread


def _config_module():
    path = os.path.join(MODEL_CONFIGS, "rotated_rtmdet.py")
    spec = importlib.util.spec_from_file_location("rotated_rtmdet_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sppf_equals_parallel_5_9_13_pooling():
    """MMDetection's SPPBottleneck pools the same map with 5, 9 and 13 windows side by side;
    the chained 5x5 pools give the same maps (max over a 5-window of 5-windows is a 9-window)."""
    torch.manual_seed(0)
    block = SPPFBottleneck(8, 6).eval()
    x = torch.randn(2, 8, 11, 13)
    mid = block.conv1(x)
    pools = [F.max_pool2d(mid, k, stride=1, padding=k // 2) for k in (5, 9, 13)]
    expected = block.conv2(torch.cat([mid, *pools], dim=1))
    torch.testing.assert_close(block(x), expected, rtol=0, atol=0)


@pytest.mark.parametrize(
    "size, channels, blocks",
    [("tiny", (96, 192, 384), 1), ("s", (128, 256, 512), 1), ("m", (192, 384, 768), 2)],
)
def test_cspnext_sizes(size, channels, blocks):
    deepen, widen = {"tiny": (0.167, 0.375), "s": (0.33, 0.5), "m": (0.67, 0.75)}[size]
    net = CSPNeXt(deepen_factor=deepen, widen_factor=widen)
    shapes = net.output_shape()
    assert [shapes[f].channels for f in ("res3", "res4", "res5")] == list(channels)
    assert [shapes[f].stride for f in ("res3", "res4", "res5")] == [8, 16, 32]
    # blocks of the first stage's CSP layer: max(round(3 * deepen), 1)
    assert len(net.stage1[1].blocks) == blocks
    with single_thread(), torch.no_grad():
        out = net.eval()(torch.zeros(1, 3, 64, 96))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "res3": (1, channels[0], 8, 12),
        "res4": (1, channels[1], 4, 6),
        "res5": (1, channels[2], 2, 3),
    }


def test_cspnext_parameter_names_follow_mmdetection():
    """So that MMDetection's ImageNet checkpoints (cspnext-*_imagenet) load by name."""
    names = set(CSPNeXt(deepen_factor=0.167, widen_factor=0.375).state_dict())
    for name in (
        "stem.0.conv.weight",
        "stem.2.bn.running_var",
        "stage1.0.conv.weight",
        "stage1.1.main_conv.conv.weight",
        "stage1.1.blocks.0.conv1.conv.weight",
        "stage1.1.blocks.0.conv2.depthwise_conv.conv.weight",
        "stage1.1.blocks.0.conv2.pointwise_conv.bn.weight",
        "stage1.1.attention.fc.bias",
        "stage4.1.conv1.conv.weight",  # SPPF
        "stage4.2.final_conv.conv.weight",
    ):
        assert name in names, name
    with pytest.raises(ValueError, match="out_features"):
        CSPNeXt(out_features=["res2"])


def test_pafpn_outputs_and_errors():
    bottom_up = CSPNeXt(deepen_factor=0.167, widen_factor=0.375)
    neck = CSPNeXtPAFPN(
        bottom_up=bottom_up, in_features=["res3", "res4", "res5"], out_channels=32, num_csp_blocks=1
    )
    assert neck.size_divisibility == 32
    with single_thread(), torch.no_grad():
        out = neck.eval()(torch.zeros(1, 3, 64, 64))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "p3": (1, 32, 8, 8),
        "p4": (1, 32, 4, 4),
        "p5": (1, 32, 2, 2),
    }
    with pytest.raises(ValueError, match="in_features"):
        CSPNeXtPAFPN(bottom_up=bottom_up, in_features=["res3", "res6"], out_channels=32)


def test_head_shares_convs_but_not_norms():
    head = RotatedRTMDetHead(in_channels=16, num_classes=3, strides=[8, 16, 32], feat_channels=16)
    for towers in (head.cls_convs, head.reg_convs):
        for level in (1, 2):
            for unit, first in zip(towers[level], towers[0]):
                assert unit.conv is first.conv
                assert unit.bn is not first.bn
    # one set of conv weights, three sets of norms, per tower
    conv_params = 2 * 2 * (16 * 16 * 9)
    norm_params = 2 * 2 * 3 * (2 * 16)
    predictors = 3 * ((16 + 1) * 3 + (16 + 1) * 4 + (16 + 1) * 1)
    assert sum(p.numel() for p in head.parameters()) == conv_params + norm_params + predictors
    # every point starts out predicting one stride to each side (linear and exp forms alike)
    feats = [torch.randn(1, 16, s, s) for s in (8, 4, 2)]
    for exp_on_reg in (False, True):
        torch.manual_seed(0)
        head = RotatedRTMDetHead(
            in_channels=16,
            num_classes=3,
            strides=[8, 16, 32],
            feat_channels=16,
            exp_on_reg=exp_on_reg,
        ).eval()
        with torch.no_grad():
            logits, distances, angles = head(feats)
        for d, stride in zip(distances, (8, 16, 32)):
            assert d.shape[1] == 4
            torch.testing.assert_close(d, torch.full_like(d, float(stride)), rtol=0.1, atol=0)
        assert [a.shape[1] for a in angles] == [1, 1, 1]
        assert all(torch.allclose(x.sigmoid(), torch.tensor(0.01), atol=5e-3) for x in logits)


def test_model_sizes_match_mmrotate_parameter_counts():
    """MMRotate's table (15 DOTA classes): tiny 4.88 M, s 8.86 M, m 24.67 M, l 52.27 M."""
    config = _config_module()
    for size, millions in (("tiny", 4.88), ("s", 8.86), ("m", 24.67), ("l", 52.27)):
        model = instantiate(config.rotated_rtmdet_model(size, num_classes=15))
        count = sum(p.numel() for p in model.parameters()) / 1e6
        assert count == pytest.approx(millions, abs=0.005), size
    with pytest.raises(ValueError, match="size must be one of"):
        config.rotated_rtmdet_model("xl")

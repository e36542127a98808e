"""fuse_conv_bn (rotated_det.layers.conv_bn_fusion): a hand-worked fold, and whole models whose
outputs are unchanged by folding (the tiny RTMDet: CSPNeXt, PAFPN and a head that shares its
convolutions between levels with separate norms; Faster R-CNN's ResNet with frozen norms)."""

import pytest
import torch
from torch import nn

from rotated_det.layers import Conv2d, FrozenBatchNorm2d, fuse_conv_bn, get_norm
from rotated_det.modeling.backbone.cspnext import ConvNormAct

from ._helpers import build_small_model, make_batch, single_thread


def randomise_norms(model: nn.Module, seed: int) -> int:
    """Give every batch norm random statistics and affine parameters; return how many there are."""
    gen = torch.Generator().manual_seed(seed)
    count = 0
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d)):
            c = m.running_mean.numel()
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.5)
            m.running_var.copy_(torch.rand(c, generator=gen) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=gen) * 0.2)
            count += 1
    return count


@torch.no_grad()
def test_hand_worked_fold():
    """conv weight 2, no bias; norm mean 1, variance 3, eps 1, weight 3, bias 0.5:
    (2x - 1) / sqrt(3 + 1) * 3 + 0.5 = 3x - 1."""
    unit = ConvNormAct(1, 1, 1)
    unit.conv.weight.fill_(2.0)
    bn = unit.bn
    assert isinstance(bn, nn.BatchNorm2d)
    bn.eps = 1.0
    bn.running_mean.fill_(1.0)
    bn.running_var.fill_(3.0)
    bn.weight.fill_(3.0)
    bn.bias.fill_(0.5)
    unit.eval()
    assert fuse_conv_bn(unit) == 1
    assert isinstance(unit.bn, nn.Identity)
    assert unit.conv.weight.item() == 3.0 and unit.conv.bias.item() == -1.0
    x = torch.tensor([-2.0, 0.0, 1.5]).view(1, 1, 3, 1)
    assert torch.equal(unit(x), nn.functional.silu(3 * x - 1))


@torch.no_grad()
def test_detectron2_style_conv_with_frozen_norm_and_grouped_conv():
    conv = Conv2d(6, 4, 3, padding=1, groups=2, bias=False, norm=FrozenBatchNorm2d(4))
    randomise_norms(conv, seed=1)
    x = torch.randn(2, 6, 9, 7, dtype=torch.float64)
    conv.double()
    expected = conv(x)
    assert fuse_conv_bn(conv) == 1 and conv.norm is None
    torch.testing.assert_close(conv(x), expected, rtol=1e-12, atol=1e-12)


def test_training_norm_is_refused_and_group_norm_left_alone():
    unit = ConvNormAct(3, 4, 3)
    with pytest.raises(ValueError, match=r"training mode.*'bn'.*model.eval\(\)"):
        fuse_conv_bn(unit)
    grouped = ConvNormAct(3, 32, 3, norm="GN").eval()
    no_stats = Conv2d(3, 4, 1, norm=nn.BatchNorm2d(4, track_running_stats=False)).eval()
    assert fuse_conv_bn(grouped) == 0 and fuse_conv_bn(no_stats) == 0
    assert isinstance(grouped.bn, nn.GroupNorm) and no_stats.norm is not None


@pytest.mark.parametrize("seed", [0, 1])
@torch.no_grad()
def test_rtmdet_head_outputs_unchanged_in_float64(seed):
    """Every norm of the tiny RTMDet folds, and the raw head outputs of all levels stay equal to
    1e-9 in float64 although the head's convolutions were shared between levels."""
    model = build_small_model("rotated_rtmdet").eval().double()
    norms = randomise_norms(model, seed)
    shared = model.head.cls_convs[0][0].conv is model.head.cls_convs[1][0].conv
    assert shared  # the case the per-level copies are for
    image = make_batch(128, with_gt=False)[0]["image"][None].double() / 255
    features = model.backbone(image)
    expected = model.head([features[f] for f in model.head_in_features])
    assert fuse_conv_bn(model) == norms > 50
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    features = model.backbone(image)
    actual = model.head([features[f] for f in model.head_in_features])
    for a, e in zip(actual, expected):
        for level_a, level_e in zip(a, e):
            torch.testing.assert_close(level_a, level_e, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ["rotated_rtmdet", "rotated_faster_rcnn"])
@torch.no_grad()
def test_detections_unchanged(name):
    """The same detections before and after folding, in float64 (in float32 the fold's rounding
    flips the order of near-tied candidates of random weights in the NMS)."""
    with single_thread():
        model = build_small_model(name).eval().double()
        # a low threshold, so that there are detections to compare from random weights
        holder = model.roi_heads.box_predictor if hasattr(model, "roi_heads") else model
        holder.test_score_thresh = 0.0
        randomise_norms(model, seed=2)
        batch = make_batch(128, with_gt=False)
        for d in batch:
            d["image"] = d["image"].double()
        expected = [o["instances"] for o in model(batch)]
        assert fuse_conv_bn(model) > 0
        actual = [o["instances"] for o in model(batch)]
    for a, e in zip(actual, expected):
        assert len(e) > 10 and len(a) == len(e)
        torch.testing.assert_close(a.scores, e.scores, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(a.pred_boxes.tensor, e.pred_boxes.tensor, rtol=1e-9, atol=1e-7)
        assert torch.equal(a.pred_classes, e.pred_classes)


def test_get_norm_bn_units_fold_in_resnet_style_model():
    """A get_norm("BN") Conv2d in eval mode folds like a frozen one."""
    conv = Conv2d(3, 5, 3, padding=1, norm=get_norm("BN", 5)).eval()
    randomise_norms(conv, seed=3)
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        expected = conv(x)
        assert fuse_conv_bn(conv) == 1
        torch.testing.assert_close(conv(x), expected, rtol=1e-5, atol=1e-5)

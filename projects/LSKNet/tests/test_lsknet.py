"""LSKNet: stage shapes and strides, the paper's sizes, the LSK module's receptive field and
selection weights worked by hand, stochastic depth, the authors' parameter names."""

import math
import sys
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:  # `projects` is a folder of the repository, not an installed package
    sys.path.insert(0, str(REPO))

from projects.LSKNet.lsknet import LSKNET_S, LSKNET_T, LSKBlock, LSKModule, LSKNet  # noqa: E402


@pytest.mark.parametrize("variant", [LSKNET_T, LSKNET_S], ids=["T", "S"])
@pytest.mark.parametrize("size", [(64, 96), (100, 72)])
def test_stage_shapes_and_strides(variant, size):
    torch.manual_seed(0)
    net = LSKNet(**variant).eval()
    shapes = net.output_shape()
    assert list(shapes) == ["res2", "res3", "res4", "res5"]
    assert [s.stride for s in shapes.values()] == [4, 8, 16, 32]
    assert [s.channels for s in shapes.values()] == list(variant["embed_dims"])
    with torch.no_grad():
        out = net(torch.randn(2, 3, *size))
    for name, feature in out.items():
        s = shapes[name].stride  # padded convolutions: sizes round up
        expected = (2, shapes[name].channels, math.ceil(size[0] / s), math.ceil(size[1] / s))
        assert tuple(feature.shape) == expected, name


def test_parameter_counts_match_the_paper():
    # the paper's Table: LSKNet-T 4.3 M, LSKNet-S 14.4 M parameters (ImageNet models, whose
    # classifier is a linear layer from the last stage to 1000 classes); within 2 %
    for variant, paper in ((LSKNET_T, 4.3e6), (LSKNET_S, 14.4e6)):
        net = LSKNet(**variant)
        classifier = (variant["embed_dims"][-1] + 1) * 1000
        count = sum(p.numel() for p in net.parameters()) + classifier
        assert abs(count - paper) / paper < 0.02, (variant, count)


def test_parameter_names_follow_the_authors_release():
    state = LSKNet(**LSKNET_T).state_dict()
    block = "block3.4."  # stage 3 has 5 blocks in LSKNet-T
    expected = [
        "patch_embed1.proj.weight",
        "patch_embed4.norm.running_var",
        block + "layer_scale_1",
        block + "norm1.weight",
        block + "attn.proj_1.weight",
        block + "attn.spatial_gating_unit.conv0.weight",
        block + "attn.spatial_gating_unit.conv_spatial.weight",
        block + "attn.spatial_gating_unit.conv1.weight",
        block + "attn.spatial_gating_unit.conv2.weight",
        block + "attn.spatial_gating_unit.conv_squeeze.weight",
        block + "attn.spatial_gating_unit.conv.weight",
        block + "attn.proj_2.weight",
        block + "mlp.fc1.weight",
        block + "mlp.dwconv.dwconv.weight",
        block + "mlp.fc2.weight",
        "norm4.bias",
    ]
    assert not [k for k in expected if k not in state]
    assert "block3.5.norm1.weight" not in state and "block4.1.norm1.weight" in state
    assert tuple(state["block1.0.attn.spatial_gating_unit.conv_spatial.weight"].shape) == (
        32,
        1,
        7,
        7,
    )


def test_large_kernel_receptive_field_is_23_pixels():
    # 5x5 depthwise then 7x7 depthwise with dilation 3: 5 + (7 - 1) * 3 = 23, centred
    lsk = LSKModule(2)
    with torch.no_grad():
        for conv in (lsk.conv0, lsk.conv_spatial):
            conv.weight.fill_(1.0)
            conv.bias.zero_()
        impulse = torch.zeros(1, 2, 41, 41)
        impulse[:, :, 20, 20] = 1.0
        small = lsk.conv0(impulse)
        large = lsk.conv_spatial(small)
    rows, cols = torch.nonzero(small[0, 0], as_tuple=True)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (18, 22, 18, 22)
    rows, cols = torch.nonzero(large[0, 0], as_tuple=True)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (9, 31, 9, 31)  # 23 wide


def test_selection_weights_worked_by_hand():
    torch.manual_seed(0)
    lsk = LSKModule(4)
    with torch.no_grad():  # the 7x7 squeeze passes mean -> weight 1, max -> weight 2
        lsk.conv_squeeze.weight.zero_()
        lsk.conv_squeeze.bias.zero_()
        lsk.conv_squeeze.weight[0, 0, 3, 3] = 1.0
        lsk.conv_squeeze.weight[1, 1, 3, 3] = 1.0
    x = torch.randn(2, 4, 9, 11)
    with torch.no_grad():
        u1 = lsk.conv1(lsk.conv0(x))
        u2 = lsk.conv2(lsk.conv_spatial(lsk.conv0(x)))
        both = torch.cat([u1, u2], dim=1)  # [N, 4, H, W]
        weights = lsk.selection_weights(u1, u2)
        expected = torch.stack(
            [both.mean(1).sigmoid(), both.max(1).values.sigmoid()], dim=1
        )  # SA_1 = sigmoid(channel mean), SA_2 = sigmoid(channel max)
        torch.testing.assert_close(weights, expected)
        output = lsk(x)
        by_hand = x * lsk.conv(u1 * expected[:, :1] + u2 * expected[:, 1:])
        torch.testing.assert_close(output, by_hand)
    # independent sigmoids, not a softmax over the two kernels: each in (0, 1), and their sum is
    # not 1 (the max of the channels is at least their mean, so SA_2 >= SA_1 everywhere)
    assert bool(((weights > 0) & (weights < 1)).all())
    assert bool((weights[:, 1] >= weights[:, 0]).all())
    sums = weights.sum(1)
    assert (sums - 1).abs().max() > 0.1


def test_stochastic_depth_drops_whole_branches_in_training_only():
    torch.manual_seed(0)
    block = LSKBlock(8, mlp_ratio=4, drop_path=1.0)
    x = torch.randn(3, 8, 6, 6)
    block.train()
    torch.testing.assert_close(block(x), x)  # both residual branches dropped
    block.eval()
    assert (block(x) - x).abs().max() > 1e-4


def test_bgr_input_reverses_channels():
    torch.manual_seed(0)
    rgb = LSKNet(**LSKNET_T).eval()
    bgr = LSKNet(**LSKNET_T, input_format="BGR").eval()
    bgr.load_state_dict(rgb.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(bgr(x.flip(1))["res4"], rgb(x)["res4"])


def test_gn_norm_and_out_features():
    net = LSKNet(**LSKNET_T, norm="GN", out_features=["res3", "res4"])
    assert isinstance(net.block1[0].norm1, torch.nn.GroupNorm)
    assert list(net.output_shape()) == ["res3", "res4"]
    out = net(torch.randn(1, 3, 64, 64))
    assert list(out) == ["res3", "res4"]
    # the unused last stage is built (for checkpoints) but never run
    assert net.block4[0].mlp.fc1.weight.grad is None
    F.mse_loss(out["res4"], torch.zeros_like(out["res4"])).backward()
    assert (
        net.block4[0].mlp.fc1.weight.grad is None and net.block3[0].mlp.fc1.weight.grad is not None
    )


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="even channel count"):
        LSKModule(3)
    with pytest.raises(ValueError, match="4 stages"):
        LSKNet(embed_dims=(8, 16, 32), depths=(1, 1, 1))
    with pytest.raises(ValueError, match="out_features"):
        LSKNet(out_features=["p3"])
    with pytest.raises(ValueError, match="norm=''"):
        LSKNet(norm="")

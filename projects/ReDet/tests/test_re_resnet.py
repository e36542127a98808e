"""ReDet's equivariant layers and backbone: the convolution and batch norm equal e2cnn's modules,
the group norm keeps whole fields together, and ReResNet + ReFPN commute with quarter turns
(turned maps, orientation channels rolled by 2 of 8)."""

import sys
import warnings
from pathlib import Path

import pytest
import torch

pytest.importorskip("e2cnn", reason="ReDet needs the redet extra: pip install -e '.[redet]'")

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:  # `projects` is a folder of the repository, not an installed package
    sys.path.insert(0, str(REPO))

from e2cnn import gspaces  # noqa: E402
from e2cnn import nn as enn  # noqa: E402
from e2cnn.nn.init import generalized_he_init  # noqa: E402

from projects.ReDet.re_fpn import ReFPN  # noqa: E402
from projects.ReDet.re_resnet import ReResNet  # noqa: E402
from projects.ReDet.regular_layers import FieldNorm, RegularConv2d  # noqa: E402
from rotated_det.layers import FrozenBatchNorm2d  # noqa: E402
from rotated_det.modeling import BasicStem, LastLevelMaxPool, ResNet  # noqa: E402

N = 8
SPACE = gspaces.Rot2dOnR2(N=N)


def _field_type(fields: int, trivial: bool = False):
    return enn.FieldType(SPACE, fields * [SPACE.trivial_repr if trivial else SPACE.regular_repr])


def _e2cnn_conv(in_type, out_type, kernel_size, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return enn.R2Conv(
            in_type,
            out_type,
            kernel_size,
            sigma=None,
            frequencies_cutoff=lambda r: 3 * r,  # ReDet's
            **kwargs,
        )


def turn(x: torch.Tensor, k: int) -> torch.Tensor:
    """``k`` quarter turns counter-clockwise on screen of the regular fields ``x``: the maps
    turn and each field's orientations roll by ``k * N / 4``."""
    b, c, h, w = x.shape
    turned = torch.rot90(x, k, dims=(2, 3))
    return (
        turned.reshape(b, c // N, N, w if k % 2 else h, h if k % 2 else w)
        .roll(k * N // 4, dims=2)
        .reshape(turned.shape)
    )


@pytest.mark.parametrize(
    "trivial,in_fields,kernel_size,stride,dilation,bias",
    [
        (False, 3, 3, 1, 1, True),
        (False, 2, 1, 2, 1, False),
        (False, 2, 3, 1, 2, True),
        (True, 3, 7, 2, 1, False),  # the stem: RGB scalars to regular fields
    ],
)
def test_regular_conv_equals_e2cnn_r2conv(trivial, in_fields, kernel_size, stride, dilation, bias):
    in_type, out_type = _field_type(in_fields, trivial), _field_type(4)
    padding = kernel_size // 2 * dilation
    reference = _e2cnn_conv(
        in_type, out_type, kernel_size, padding=padding, stride=stride, dilation=dilation, bias=bias
    )
    torch.manual_seed(0)
    if bias:
        reference.bias.data.normal_()
    ours = RegularConv2d(
        in_type.size,
        out_type.size,
        kernel_size,
        stride=stride,
        padding=padding,
        dilation=dilation,
        bias=bias,
        trivial_input=trivial,
    )
    assert ours.weights.shape == reference.weights.shape  # e2cnn's coefficient layout
    ours.weights.data.copy_(reference.weights.data)
    if bias:
        ours.bias.data.copy_(reference.bias.data)
    reference.eval()
    x = torch.randn(2, in_type.size, 15, 17)
    expected = reference(enn.GeometricTensor(x, in_type)).tensor
    torch.testing.assert_close(ours(x), expected, rtol=1e-5, atol=1e-5)


def test_initialisation_is_e2cnns_generalized_he():
    in_type, out_type = _field_type(3), _field_type(4)
    reference = _e2cnn_conv(in_type, out_type, 3, initialize=False)
    RegularConv2d(24, 32, 3)  # builds and caches the basis: the next one draws only its weights
    torch.manual_seed(5)
    ours = RegularConv2d(24, 32, 3)
    torch.manual_seed(5)
    generalized_he_init(reference.weights.data, reference.basisexpansion)
    torch.testing.assert_close(ours.weights.data, reference.weights.data, rtol=0, atol=0)


def test_field_batch_norm_is_e2cnns_inner_batch_norm():
    torch.manual_seed(0)
    reference, ours = enn.InnerBatchNorm(_field_type(4)), FieldNorm("BN", 32, N)
    with torch.no_grad():
        ours.norm.weight.uniform_(0.5, 2.0)
        ours.norm.bias.normal_()
        reference.load_state_dict(ours.state_dict(), strict=False)  # same keys, less indices_8
    for _ in range(2):
        x = torch.randn(2, 32, 5, 6) * 3 + 1
        expected = reference(enn.GeometricTensor(x, _field_type(4))).tensor
        torch.testing.assert_close(ours(x), expected, rtol=1e-5, atol=1e-5)
    for key, value in ours.state_dict().items():
        torch.testing.assert_close(value, reference.state_dict()[key], rtol=1e-6, atol=1e-6)
    ours.eval(), reference.eval()
    x = torch.randn(1, 32, 4, 4)
    expected = reference(enn.GeometricTensor(x, _field_type(4))).tensor
    torch.testing.assert_close(ours(x), expected, rtol=1e-5, atol=1e-5)


def test_field_group_norm_keeps_whole_fields_and_commutes_with_the_roll():
    torch.manual_seed(0)
    norm = FieldNorm("GN", 12 * N, N)  # 12 fields: gcd(32, 12) = 4 groups of 3 fields
    assert norm.norm.num_groups == 4 and norm.norm.weight.shape == (12,)
    with torch.no_grad():
        norm.norm.weight.uniform_(0.5, 2.0)
        norm.norm.bias.normal_()
    x = torch.randn(2, 12 * N, 5, 7) * 2 + 0.5
    y = norm(x)
    # by hand: statistics over 3 fields x 8 orientations x pixels, scale and shift per field
    groups = x.reshape(2, 4, 3 * N * 35)
    mean, var = groups.mean(-1, keepdim=True), groups.var(-1, unbiased=False, keepdim=True)
    normalised = ((groups - mean) / torch.sqrt(var + 1e-5)).reshape(2, 12, N, 5, 7)
    by_hand = (
        normalised * norm.norm.weight[:, None, None, None] + norm.norm.bias[:, None, None, None]
    )
    torch.testing.assert_close(y, by_hand.reshape(y.shape), rtol=1e-5, atol=1e-5)
    for k in (1, 2, 3):
        torch.testing.assert_close(norm(turn(x, k)), turn(y, k), rtol=1e-5, atol=1e-5)


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("depth,norm,width", [(18, "GN", 64), (50, "BN", 256)])
def test_backbone_commutes_with_quarter_turns(depth, norm, width):
    """Measured (one thread, float32): relative error 2e-6 - 5e-6 for ReResNet-18 (GN) + ReFPN
    and 1e-6 for ReResNet-50 (BN) + ReFPN, against 0.5 - 1.5 without the orientation roll."""
    torch.manual_seed(0)
    backbone = ReFPN(
        ReResNet(depth, norm=norm), ["res2", "res3", "res4", "res5"], width, LastLevelMaxPool()
    ).eval()
    # 65 px: every strided layer (stem, max pool, stages 3-5, P6) samples an odd-sized map from
    # its first row and column, a grid that the quarter turn maps onto itself
    x = torch.randn(1, 3, 65, 65)
    with torch.no_grad():
        features = backbone(x)
        for k in (1, 2, 3):
            turned = backbone(torch.rot90(x, k, dims=(2, 3)))
            for name, f in features.items():
                assert f.shape[1] == width
                assert _relative_error(turned[name], turn(f, k)) < 1e-4, (name, k)
                # the roll matters: without it the maps differ
                spatial_only = torch.rot90(f, k, dims=(2, 3))
                assert _relative_error(turned[name], spatial_only) > 0.05, (name, k)


def test_resnet50_layout_and_size():
    net = ReResNet(50)
    shapes = net.output_shape()
    assert {k: (s.channels, s.stride) for k, s in shapes.items()} == {
        "res2": (256, 4),
        "res3": (512, 8),
        "res4": (1024, 16),
        "res5": (2048, 32),
    }
    with torch.no_grad():
        out = net.eval()(torch.randn(1, 3, 96, 128))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "res2": (1, 256, 24, 32),
        "res3": (1, 512, 12, 16),
        "res4": (1, 1024, 6, 8),
        "res5": (1, 2048, 3, 4),
    }
    ours = sum(p.numel() for p in net.parameters())
    plain = sum(p.numel() for p in _resnet(50).parameters())
    # the C8 filters share their weights across orientations: 2.78 M against ResNet-50's
    # 23.5 M with the same channel counts, 8.5 times fewer
    assert 8.0 < plain / ours < 9.0, (plain, ours)
    state = net.state_dict()
    for key in (  # the authors' names
        "conv1.weights",
        "bn1.batch_norm_[8].running_var",
        "layer1.0.downsample.0.weights",
        "layer1.0.downsample.1.batch_norm_[8].weight",
        "layer4.2.conv3.weights",
        "layer4.2.bn3.batch_norm_[8].bias",
    ):
        assert key in state, key


def _resnet(depth: int) -> ResNet:
    return ResNet(
        stem=BasicStem(norm="BN"),
        stages=ResNet.make_default_stages(depth=depth, norm="BN"),
        out_features=["res2", "res3", "res4", "res5"],
    )


def test_freeze_bgr_and_bad_arguments():
    net = ReResNet(18, base_channels=32, stem_channels=32, freeze_at=2)
    frozen = [net.conv1, net.bn1, net.layer1]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for p in net.layer2.parameters())
    assert isinstance(net.layer1[0].bn1.norm, FrozenBatchNorm2d)
    assert isinstance(net.layer2[0].bn1.norm, torch.nn.BatchNorm2d)

    torch.manual_seed(0)
    rgb = ReResNet(18, base_channels=32, stem_channels=32).eval()
    bgr = ReResNet(18, base_channels=32, stem_channels=32, input_format="BGR").eval()
    bgr.load_state_dict(rgb.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(bgr(x.flip(1))["res4"], rgb(x)["res4"])

    with pytest.raises(ValueError, match="out_channels=36 is not a positive multiple of"):
        RegularConv2d(16, 36, 3)
    with pytest.raises(ValueError, match="depth=42"):
        ReResNet(42)
    with pytest.raises(ValueError, match="ReFPN out_channels=100"):
        ReFPN(ReResNet(18, base_channels=32, stem_channels=32), ["res2", "res3"], 100)
    with pytest.raises(ValueError, match="num_orientations attribute"):
        ReFPN(_resnet(18), ["res2", "res3"], 64)


def test_inference_filter_cache_follows_the_weights():
    """Eval mode without autograd reuses the expanded filter until the weights change: in place
    (an optimizer step, load_state_dict) or by replacement (``.to``)."""
    torch.manual_seed(0)
    conv = RegularConv2d(16, 16, 3, padding=1, bias=True).eval()
    x = torch.randn(1, 16, 9, 9)

    def fresh():
        return torch.nn.functional.conv2d(
            x, conv.expanded_filter(), conv.expanded_bias(), padding=1
        )

    with torch.no_grad():
        first = conv(x)
        assert conv._cache is not None
        conv.weights.mul_(-1.5)
        conv.bias.add_(1.0)
        torch.testing.assert_close(conv(x), fresh(), rtol=0, atol=0)
        assert (conv(x) - first).abs().max() > 0.1
        conv.load_state_dict({"weights": torch.randn_like(conv.weights), "bias": conv.bias})
        torch.testing.assert_close(conv(x), fresh(), rtol=0, atol=0)
        conv.double()
        assert conv(x.double()).dtype == torch.float64

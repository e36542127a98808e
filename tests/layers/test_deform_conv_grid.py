"""The grid_sample formulation of deformable convolution (ONNX export of S2A-Net's alignment
convolution) against torchvision's kernel, and its swap by StandardOpsMode."""

import pytest
import torch
from torchvision.ops import deform_conv2d

from rotated_det.export.standard_ops import StandardOpsMode
from rotated_det.layers import AlignConv
from rotated_det.layers.deform_conv_grid import deform_conv2d_grid


@pytest.mark.parametrize(
    "stride, padding, dilation, size",
    [(1, 1, 1, (7, 9)), (2, 1, 1, (8, 6)), (1, 2, 2, (6, 7)), (1, 1, 1, (1, 5))],
)
def test_grid_formulation_equals_torchvision(stride, padding, dilation, size):
    """Random offsets of up to +-6 pixels (many samples partly or wholly outside the map), a
    mask and a bias: equal to torchvision's kernel within 1e-5."""
    g = torch.Generator().manual_seed(stride + 10 * padding + 100 * size[0])
    x = torch.randn(2, 4, *size, generator=g)
    weight = torch.randn(3, 4, 3, 3, generator=g)
    bias = torch.randn(3, generator=g)
    h_out = (size[0] + 2 * padding - dilation * 2 - 1) // stride + 1
    w_out = (size[1] + 2 * padding - dilation * 2 - 1) // stride + 1
    offset = (torch.rand(2, 18, h_out, w_out, generator=g) - 0.5) * 12
    mask = torch.rand(2, 9, h_out, w_out, generator=g)
    for m in (None, mask):
        expected = deform_conv2d(
            x, offset, weight, bias, stride=stride, padding=padding, dilation=dilation, mask=m
        )
        actual = deform_conv2d_grid(
            x,
            weight,
            offset,
            mask if m is not None else torch.zeros(0),
            bias,
            stride,
            stride,
            padding,
            padding,
            dilation,
            dilation,
            1,
            1,
            m is not None,
        )
        assert actual.shape == expected.shape
        assert expected.abs().max() > 1.0  # not a comparison of zeros
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def test_standard_ops_mode_swaps_the_alignment_convolution():
    torch.manual_seed(0)
    conv = AlignConv(3, 2, implementation="deform_conv2d")  # the torchvision op, swapped
    x = torch.randn(1, 3, 5, 6)
    anchors = torch.rand(1, 30, 5) * torch.tensor([48.0, 40.0, 30.0, 30.0, 360.0])
    expected = conv(x, anchors, 8.0)
    calls = []
    original = deform_conv2d_grid

    def spy(*args):
        calls.append(1)
        return original(*args)

    import rotated_det.export.standard_ops as standard_ops

    standard_ops.deform_conv2d_grid = spy
    try:
        with StandardOpsMode():
            actual = conv(x, anchors, 8.0)
    finally:
        standard_ops.deform_conv2d_grid = original
    assert calls == [1]
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)

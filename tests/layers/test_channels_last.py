"""to_channels_last: 4-d parameters and buffers become channels-last, other ranks keep their
layout (a 5-d active-rotating-filter weight made ``model.to(memory_format=...)`` fail, and with
it DefaultPredictor on S2A-Net), and the network computes the same values."""

import copy

import pytest
import torch
from torch import nn

from rotated_det.layers import ORConv2d, to_channels_last


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.or_conv = ORConv2d(8, 4, kernel_size=3, num_orientations=8)  # weight [4, 8, 8, 3, 3]
        self.register_buffer("scale", torch.rand(1, 32, 1, 1) + 0.5)  # 4-d buffer

    def forward(self, x):
        return self.or_conv(torch.relu(self.conv(x))) * self.scale


def test_converts_four_d_tensors_keeps_others_and_the_values():
    torch.manual_seed(0)
    net = _Net().eval()
    plain = copy.deepcopy(net)
    with pytest.raises(RuntimeError, match="rank 4"):
        copy.deepcopy(net).to(memory_format=torch.channels_last)
    assert net.or_conv.weight.dim() == 5
    assert to_channels_last(net) == 2  # conv.weight and the buffer
    assert net.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not net.conv.weight.is_contiguous()
    assert net.scale.is_contiguous(memory_format=torch.channels_last)
    assert net.or_conv.weight.is_contiguous()  # 5-d: as it was
    for a, b in zip(net.state_dict().values(), plain.state_dict().values()):
        assert torch.equal(a, b)
    x = torch.rand(2, 3, 20, 24)
    with torch.no_grad():
        out, ref = net(x), plain(x)
    assert out.shape == ref.shape == (2, 32, 20, 24)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)

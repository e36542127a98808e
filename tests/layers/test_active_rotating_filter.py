"""Active rotating filters (ORConv2d) and orientation pooling: filters turned by index gather
against torch.rot90 and ORN's 45-degree table, the equivariance theory (a 90-degree turn of the
input turns the responses and rolls each filter's orientation channels by N / 4), and the
invariance of the pooled responses."""

import pytest
import torch

from rotated_det.layers import ORConv2d, RotationInvariantPooling
from rotated_det.layers.active_rotating_filter import rotated_filter_indices


def rot(x, k=1):
    """Turn CCW on screen (y down) by k x 90 degrees."""
    return torch.rot90(x, k, dims=(-2, -1))


def roll_orientations(y, n, shift):
    """Roll the orientation index r of channels c * n + r by ``shift``."""
    b, c, h, w = y.shape
    return y.view(b, c // n, n, h, w).roll(shift, dims=2).view(b, c, h, w)


def test_45_degree_turn_of_a_3x3_filter_is_orns_table():
    idx = rotated_filter_indices(3, 8, 1)
    taps = torch.arange(1, 10)
    # ORN's 45-degree index table for 3 x 3 filters (1-based): each border tap moves one place
    # counter-clockwise
    assert taps[idx[1]].tolist() == [2, 3, 6, 1, 5, 9, 4, 7, 8]
    # two 45-degree steps are the exact 90-degree turn, eight are the identity
    for r in range(8):
        turned = taps.view(3, 3)
        for _ in range(r // 2):
            turned = rot(turned)
        if r % 2 == 0:
            assert taps[idx[r]].view(3, 3).tolist() == turned.tolist(), r


@pytest.mark.parametrize("k", [1, 3, 5])
def test_four_orientations_are_exact_quarter_turns(k):
    torch.manual_seed(0)
    conv = ORConv2d(3, 2, kernel_size=k, num_orientations=4)
    bank = conv.rotated_weight().view(2, 4, 3, k, k)
    w = conv.weight[:, :, 0]
    for r in range(4):
        torch.testing.assert_close(bank[:, r], rot(w, r), rtol=0, atol=0)


@pytest.mark.parametrize("n", [4, 8])
def test_quarter_turn_of_input_rolls_orientation_channels(n):
    """ORConv(rot(x)) = roll_{N/4}(rot(ORConv(x))): a 90-degree turn of the image is a turn of
    the responses and a cyclic shift of every filter's N orientation channels by N / 4."""
    torch.manual_seed(1)
    conv = ORConv2d(4, 3, 3, num_orientations=n).double()
    torch.nn.init.normal_(conv.bias)
    x = torch.randn(2, 4, 11, 11, dtype=torch.float64)
    y, y_turned = conv(x), conv(rot(x))
    assert y.shape == (2, 3 * n, 11, 11)
    torch.testing.assert_close(y_turned, roll_orientations(rot(y), n, n // 4))
    # the theory is not trivially true: other shifts do not match
    assert not torch.allclose(y_turned, roll_orientations(rot(y), n, n // 4 + 1))
    # pooling over orientations: the pooled features simply turn with the image
    pool = RotationInvariantPooling(n)
    torch.testing.assert_close(pool(y_turned), rot(pool(y)))
    torch.testing.assert_close(pool(roll_orientations(y, n, 3)), pool(y))


@pytest.mark.parametrize("n", [4, 8])
def test_stacked_layers_stay_equivariant(n):
    """A second ARF layer takes the first one's orientation channels (in_orientations = N): the
    two-layer response of a turned image is the turned response, orientations rolled by N / 4."""
    torch.manual_seed(2)
    first = ORConv2d(2, 3, 3, num_orientations=n).double()
    second = ORConv2d(3, 2, 3, num_orientations=n, in_orientations=n).double()
    x = torch.randn(1, 2, 9, 9, dtype=torch.float64)

    def net(t):
        return second(torch.relu(first(t)))

    torch.testing.assert_close(net(rot(x)), roll_orientations(rot(net(x)), n, n // 4))
    torch.testing.assert_close(net(rot(x, 2)), roll_orientations(rot(net(x), 2), n, n // 2))


def test_orientation_pooling_is_the_max_over_orientations():
    y = torch.tensor([1.0, -2, 5, 0, 3, 3, -1, 4]).view(1, 8, 1, 1)
    out = RotationInvariantPooling(4)(y)
    assert out.view(-1).tolist() == [5.0, 4.0]


def test_gradients_reach_the_shared_filter():
    """gradcheck through the gather: every orientation's gradient flows into the one filter."""
    torch.manual_seed(3)
    conv = ORConv2d(2, 2, 3, num_orientations=8).double()
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    weight = conv.weight.detach().clone().requires_grad_(True)
    bias = torch.randn(2, dtype=torch.float64, requires_grad=True)

    def run(inp, w, b):
        return torch.func.functional_call(conv, {"weight": w, "bias": b}, (inp,))

    assert torch.autograd.gradcheck(run, (x, weight, bias))


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="num_orientations must be 1, 2, 4 or 8"):
        ORConv2d(2, 2, num_orientations=6)
    with pytest.raises(ValueError, match="kernel_size 1 or 3"):
        ORConv2d(2, 2, kernel_size=5, num_orientations=8)
    with pytest.raises(ValueError, match="in_orientations must be 1 or num_orientations=8"):
        ORConv2d(2, 2, in_orientations=4)
    with pytest.raises(ValueError, match="in_channels \\* in_orientations = 2 channels"):
        ORConv2d(2, 2)(torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match="multiple of num_orientations=8"):
        RotationInvariantPooling(8)(torch.zeros(1, 12, 2, 2))

import math

import pytest
import torch

from rotated_det.modeling import DefaultAnchorGenerator, RotatedAnchorGenerator


def test_rotated_cell_anchors_hand_worked():
    cell = RotatedAnchorGenerator.generate_cell_anchors([32], [0.5, 1.0, 2.0], [0, 45])
    s = math.sqrt(2) * 32  # area 1024 with h / w = 0.5: w = sqrt(2048), h = w / 2
    expected = torch.tensor(
        [
            [0, 0, s, s / 2, 0],
            [0, 0, s, s / 2, 45],
            [0, 0, 32, 32, 0],
            [0, 0, 32, 32, 45],
            [0, 0, s / 2, s, 0],
            [0, 0, s / 2, s, 45],
        ]
    )
    torch.testing.assert_close(cell, expected)


def test_rotated_anchor_grid_order_and_offset():
    gen = RotatedAnchorGenerator(
        sizes=[[32]], aspect_ratios=[[0.5, 1.0, 2.0]], strides=[4], angles=[[0, 45]], offset=0.5
    )
    feat = torch.zeros(1, 8, 2, 3)  # H = 2, W = 3
    (anchors,) = gen([feat])
    assert anchors.tensor.shape == (2 * 3 * 6, 5)
    assert gen.num_anchors == [6]
    # index (y * W + x) * A + a: cell y = 1, x = 2 (center (10, 6)), a = 3 = (size 32, ratio 1, 45)
    torch.testing.assert_close(
        anchors.tensor[(1 * 3 + 2) * 6 + 3], torch.tensor([10.0, 6, 32, 32, 45])
    )
    # first anchor: cell (0, 0), center (2, 2)
    torch.testing.assert_close(anchors.tensor[0, :2], torch.tensor([2.0, 2.0]))


def test_rotated_anchor_per_level_params_and_errors():
    gen = RotatedAnchorGenerator(
        sizes=[[16], [32, 48]], aspect_ratios=[1.0], strides=[8, 16], angles=[0, 90]
    )
    assert gen.num_anchors == [2, 4]
    a0, a1 = gen([torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 2, 2)])
    assert len(a0) == 16 * 2 and len(a1) == 4 * 4
    torch.testing.assert_close(a1.tensor[:4, 2], torch.tensor([32.0, 32, 48, 48]))
    with pytest.raises(ValueError, match="strides"):
        gen([torch.zeros(1, 1, 4, 4)])
    with pytest.raises(ValueError, match="sizes"):
        RotatedAnchorGenerator(sizes=[[1], [2], [3]], aspect_ratios=[1.0], strides=[8, 16])


def test_default_anchor_generator_hand_worked():
    gen = DefaultAnchorGenerator(sizes=[[32]], aspect_ratios=[[0.5, 2.0]], strides=[16], offset=0.0)
    (anchors,) = gen([torch.zeros(1, 1, 1, 2)])
    s = math.sqrt(2) * 32
    expected = torch.tensor(
        [
            [-s / 2, -s / 4, s / 2, s / 4],
            [-s / 4, -s / 2, s / 4, s / 2],
            [16 - s / 2, -s / 4, 16 + s / 2, s / 4],
            [16 - s / 4, -s / 2, 16 + s / 4, s / 2],
        ]
    )
    torch.testing.assert_close(anchors.tensor, expected)

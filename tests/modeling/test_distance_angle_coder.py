"""DistanceAnglePointCoder, PointGenerator and the distance-box IoU loss against hand-worked
examples and round trips."""

import math

import pytest
import torch

from rotated_det.modeling import DistanceAnglePointCoder, PointGenerator
from rotated_det.modeling.losses.distance_iou_loss import distance_iou_loss
from rotated_det.modeling.meta_arch.dense_detection import flatten_levels
from rotated_det.structures import normalize_rbox_angles


def test_encode_hand_worked_example():
    """The module docstring's example: box (50, 40, 20, 10, -90), point (52, 37)."""
    coder = DistanceAnglePointCoder("le90")
    point = torch.tensor([[52.0, 37.0]])
    dist, angle = coder.encode(point, torch.tensor([[50, 40, 20, 10, -90.0]]))
    torch.testing.assert_close(dist, torch.tensor([[7.0, 3.0, 13.0, 7.0]]))
    assert angle.item() == -90.0
    # The same rectangle written as (h, w, a + 90) encodes identically: targets are normalised.
    dist2, angle2 = coder.encode(point, torch.tensor([[50, 40, 10, 20, 0.0]]))
    torch.testing.assert_close(dist2, dist)
    assert angle2.item() == -90.0


def test_axis_aligned_box_gives_image_sides():
    coder = DistanceAnglePointCoder("le90")
    dist, _ = coder.encode(torch.tensor([[12.0, 23.0]]), torch.tensor([[10, 20, 30, 10, 0.0]]))
    # x in [-5, 25], y in [15, 25]
    torch.testing.assert_close(dist, torch.tensor([[17.0, 8.0, 13.0, 2.0]]))


@pytest.mark.parametrize("version", ["le90", "le135", "oc"])
def test_round_trip_random_boxes(version):
    g = torch.Generator().manual_seed(0)
    n = 2000
    boxes = torch.cat(
        [
            torch.rand(n, 2, generator=g) * 500,
            torch.rand(n, 2, generator=g) * 100 + 2,
            torch.rand(n, 1, generator=g) * 360 - 180,
        ],
        dim=1,
    ).double()
    points = boxes[:, :2] + (torch.rand(n, 2, generator=g).double() - 0.5) * 60
    coder = DistanceAnglePointCoder(version)
    dist, angle = coder.encode(points, boxes)
    decoded = coder.decode(points, dist, angle)
    torch.testing.assert_close(decoded, normalize_rbox_angles(boxes, version), atol=1e-9, rtol=0)
    # points inside their box have four positive distances and nothing else does
    inside = (dist > 0).all(dim=1)
    from rotated_det.structures import points_in_rotated_boxes

    expected = points_in_rotated_boxes(points, boxes).diagonal()
    assert (inside == expected).float().mean() > 0.999  # border cases differ only at equality


def test_point_generator_order_matches_flattened_head_outputs():
    gen = PointGenerator(strides=[8, 16], offset=0.5)
    feats = [torch.zeros(1, 3, 2, 3), torch.zeros(1, 3, 1, 2)]
    points = gen(feats)
    torch.testing.assert_close(
        points[0],
        torch.tensor([[4, 4], [12, 4], [20, 4], [4, 12], [12, 12], [20, 12.0]]),
    )
    torch.testing.assert_close(points[1], torch.tensor([[8.0, 8], [24, 8]]))
    # A map whose value is the x index flattens in the same order as the points.
    x_index = torch.arange(3.0).expand(1, 1, 2, 3)
    flat = flatten_levels(x_index, 1)[0, :, 0]
    torch.testing.assert_close(flat * 8 + 4, points[0][:, 0])
    with pytest.raises(ValueError, match="2 strides but got 1"):
        gen(feats[:1])


def test_distance_iou_loss_hand_worked():
    pred = torch.tensor([[1.0, 1, 1, 1]])
    target = torch.tensor([[1.0, 1, 3, 1]])  # 2x2 inside 4x2: IoU 1/2
    assert distance_iou_loss(pred, target, "linear").item() == pytest.approx(0.5, abs=1e-5)
    assert distance_iou_loss(pred, target, "log").item() == pytest.approx(math.log(2), abs=1e-5)
    # nested boxes: the enclosing box is the target, GIoU = IoU
    assert distance_iou_loss(pred, target, "giou").item() == pytest.approx(0.5, abs=1e-5)
    # crossed boxes: pred 4 wide x 2 high, target 2 wide x 4 high around the same point:
    # intersection 4, union 12, enclosing 16 -> GIoU = 1/3 - 4/16
    pred2, target2 = torch.tensor([[2.0, 1, 2, 1]]), torch.tensor([[1.0, 2, 1, 2]])
    expected = 1 - (1 / 3 - 4 / 16)
    assert distance_iou_loss(pred2, target2, "giou").item() == pytest.approx(expected, abs=1e-5)
    with pytest.raises(ValueError, match="mode"):
        distance_iou_loss(pred, target, "l2")

"""H2RBox-v2's losses: the symmetry (flip / rotation consistency, snap) losses and the
circumscribed-box IoU loss, against hand-worked values."""

import math

import pytest
import torch

from rotated_det.modeling.losses.circum_iou_loss import circum_iou, circum_iou_loss
from rotated_det.modeling.losses.symmetry_loss import snap_angle_difference, symmetry_losses
from rotated_det.structures import rbox_to_hbox


def test_snap_maps_differences_into_half_open_period():
    d = torch.tensor([0.0, 89.0, 90.0, -90.0, 179.0, -180.0, 270.0, -91.0, 360.0])
    expected = torch.tensor([0.0, 89.0, -90.0, -90.0, -1.0, 0.0, -90.0, 89.0, 0.0])
    torch.testing.assert_close(snap_angle_difference(d), expected)


def test_flip_and_rotation_consistent_predictions_have_zero_loss():
    orig = torch.tensor([10.0, 80.0, -60.0])
    rotation = torch.tensor([90.0, 60.0, 130.0])
    # rotated views written in any representation modulo 180: 100, 140 -> -40, 70 -> -110 + 180
    rot = torch.tensor([100.0, -40.0, 70.0])
    flip = torch.tensor([-10.0, -80.0 + 180.0, 60.0])
    loss_rot, loss_flip = symmetry_losses(orig, rot, flip, rotation)
    torch.testing.assert_close(loss_rot, torch.zeros(3), atol=1e-6, rtol=0)
    torch.testing.assert_close(loss_flip, torch.zeros(3), atol=1e-6, rtol=0)


def test_hand_worked_values():
    # flip: 10 + 8 = 18 degrees = 0.31416 rad > beta 0.1: |d| - beta / 2
    # rotation: 100 - 10 - 87 = 3 degrees = 0.05236 rad < beta: d^2 / (2 beta)
    loss_rot, loss_flip = symmetry_losses(
        torch.tensor([10.0]), torch.tensor([100.0]), torch.tensor([8.0]), torch.tensor([87.0])
    )
    assert loss_flip.item() == pytest.approx(math.radians(18) - 0.05, abs=1e-6)
    assert loss_rot.item() == pytest.approx(math.radians(3) ** 2 / 0.2, abs=1e-7)
    # beta 0: plain L1
    loss_rot, _ = symmetry_losses(
        torch.tensor([10.0]), torch.tensor([100.0]), torch.tensor([8.0]), torch.tensor(87.0), 0.0
    )
    assert loss_rot.item() == pytest.approx(math.radians(3), abs=1e-6)


def test_snap_at_the_period_boundary():
    """One orientation written 180 degrees apart costs nothing with the snap loss and a half
    turn without it; the loss is continuous where the snapped difference jumps from +90 to -90."""
    orig, rotation = torch.tensor([80.0]), torch.tensor([60.0])
    rot = torch.tensor([-40.0])  # = 140 modulo 180, the consistent answer
    flip = torch.tensor([-80.0])
    snapped, _ = symmetry_losses(orig, rot, flip, rotation)
    raw, _ = symmetry_losses(orig, rot, flip, rotation, snap=False)
    assert snapped.item() == pytest.approx(0.0, abs=1e-6)
    assert raw.item() == pytest.approx(math.pi - 0.05, abs=1e-5)
    # differences of 89.9 and 90.1 degrees: 90.1 snaps to -89.9, the same distance
    below, _ = symmetry_losses(torch.tensor([0.0]), torch.tensor([89.9]), flip, torch.tensor(0.0))
    above, _ = symmetry_losses(torch.tensor([0.0]), torch.tensor([90.1]), flip, torch.tensor(0.0))
    assert below.item() == pytest.approx(above.item(), abs=1e-5)
    assert below.item() == pytest.approx(math.radians(89.9) - 0.05, abs=1e-5)


def test_gradients_point_towards_consistency():
    orig = torch.tensor([10.0], requires_grad=True)
    rot = torch.tensor([110.0], requires_grad=True)  # 10 degrees too far
    flip = torch.tensor([-4.0], requires_grad=True)  # 6 degrees off: -10 expected
    loss_rot, loss_flip = symmetry_losses(orig, rot, flip, torch.tensor([90.0]))
    (loss_rot + loss_flip).sum().backward()
    assert rot.grad.item() > 0  # lowering a_rot reduces the loss
    assert flip.grad.item() > 0  # a_flip + a_orig = 6 > 0: lower a_flip
    # past the boundary (difference 100 -> snapped -80) the gradient changes sign
    rot2 = torch.tensor([200.0], requires_grad=True)
    symmetry_losses(torch.tensor([10.0]), rot2, torch.tensor([-10.0]), torch.tensor([90.0]))[
        0
    ].sum().backward()
    assert rot2.grad.item() < 0


def test_circum_iou_hand_worked():
    pred = torch.tensor(
        [
            [10.0, 10.0, 4.0, 2.0, 90.0],  # turned a quarter: exactly the 2 x 4 target
            [0.0, 0.0, 2.0, 2.0, 45.0],  # enclosing square of side 2 sqrt(2): IoU 4 / 8
            [1.0, 0.0, 2.0, 2.0, 0.0],  # shifted by 1: IoU 2 / 6
            [0.0, -1.0, 2.0, 2.0, 90.0],  # shifted by 1 along the target's w-axis (up)
            [5.0, 5.0, 4.0, 2.0, 30.0],  # the target itself, rotated
        ]
    )
    target = torch.tensor(
        [
            [10.0, 10.0, 2.0, 4.0, 0.0],
            [0.0, 0.0, 2.0, 2.0, 0.0],
            [0.0, 0.0, 2.0, 2.0, 0.0],
            [0.0, 0.0, 2.0, 2.0, 90.0],
            [5.0, 5.0, 4.0, 2.0, 30.0],
        ]
    )
    iou, _ = circum_iou(pred, target)
    torch.testing.assert_close(iou, torch.tensor([1.0, 0.5, 1 / 3, 1 / 3, 1.0]), atol=1e-5, rtol=0)
    losses = circum_iou_loss(pred, target, mode="linear")
    torch.testing.assert_close(losses, 1 - iou)
    torch.testing.assert_close(circum_iou_loss(pred, target, mode="log"), -torch.log(iou))


def test_circum_iou_of_horizontal_target_is_iou_of_enclosing_horizontal_box():
    """For angle-0 targets the loss compares the prediction's enclosing horizontal box (the
    paper's formulation), computed here by ``rbox_to_hbox``."""
    g = torch.Generator().manual_seed(0)
    pred = torch.cat(
        [
            torch.rand(50, 2, generator=g) * 20,
            torch.rand(50, 2, generator=g) * 20 + 2,
            torch.rand(50, 1, generator=g) * 360 - 180,
        ],
        dim=1,
    ).double()
    target = torch.cat(
        [torch.rand(50, 2, generator=g) * 20, torch.rand(50, 2, generator=g) * 20 + 2], dim=1
    ).double()
    target = torch.cat([target, torch.zeros(50, 1, dtype=torch.float64)], dim=1)
    hp, ht = rbox_to_hbox(pred), rbox_to_hbox(target)
    lo, hi = torch.maximum(hp[:, :2], ht[:, :2]), torch.minimum(hp[:, 2:], ht[:, 2:])
    inter = (hi - lo).clamp(min=0).prod(1)
    area = lambda b: (b[:, 2:] - b[:, :2]).prod(1)  # noqa: E731
    expected = inter / (area(hp) + area(ht) - inter)
    iou, _ = circum_iou(pred, target, eps=0.0)
    torch.testing.assert_close(iou, expected, atol=1e-9, rtol=0)


def test_circum_giou_of_disjoint_boxes_and_gradients():
    pred = torch.tensor([[3.0, 0.0, 2.0, 2.0, 0.0]], requires_grad=True)
    target = torch.tensor([[0.0, 0.0, 2.0, 2.0, 0.0]])
    # IoU 0, enclosing 5 x 2 = 10, union 8: 1 - 0 + 2 / 10
    loss = circum_iou_loss(pred, target, mode="giou")
    assert loss.item() == pytest.approx(1.2, abs=1e-5)
    loss.sum().backward()
    assert pred.grad[0, 0] > 0  # moving left (towards the target) lowers the loss
    # the angle learns through the loss unless the caller detaches it
    pred2 = torch.tensor([[0.0, 0.0, 4.0, 2.0, 10.0]], requires_grad=True)
    circum_iou_loss(pred2, torch.tensor([[0.0, 0.0, 4.0, 2.0, 0.0]])).sum().backward()
    assert pred2.grad[0, 4] > 0 and torch.isfinite(pred2.grad).all()
    with pytest.raises(ValueError, match="mode"):
        circum_iou_loss(pred2, pred2, mode="l2")
    with pytest.raises(ValueError, match=r"\[F, 5\]"):
        circum_iou(pred2[:, :4], pred2[:, :4])

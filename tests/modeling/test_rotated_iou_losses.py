"""Rotated IoU losses (linear / log / GIoU) and KFIoU: hand-worked values, properties, training a
box by gradient descent, and selection by name in box_regression_loss."""

import math

import pytest
import torch

from rotated_det.layers import diff_iou_rotated
from rotated_det.modeling.box_regression import Box2BoxTransformRotated
from rotated_det.modeling.losses import (
    BOX_REG_LOSS_TYPES,
    box_regression_loss,
    kfiou,
    kfiou_loss,
    rotated_iou_loss,
)
from rotated_det.modeling.losses.box_regression_loss import check_box_reg_loss_type

SQUARE = [0.0, 0.0, 2.0, 2.0, 0.0]


def _t(*boxes, dtype=torch.float64):
    return torch.tensor(boxes, dtype=dtype)


def test_iou_losses_hand_worked():
    target = _t(SQUARE, SQUARE, SQUARE, SQUARE)
    pred = _t(
        SQUARE,  # identical: every loss 0
        [1.0, 0, 2, 2, 0],  # unit offset: I = 2, U = 6, IoU = 1/3; enclosing 3 x 2 = U
        [1.0, 1, 2, 2, 0],  # diagonal offset: I = 1, U = 7, IoU = 1/7; enclosing 3 x 3 = 9
        [3.0, 0, 2, 2, 0],  # apart: IoU 0, U = 8, enclosing 5 x 2 = 10
    )
    linear = rotated_iou_loss(pred, target, "linear")
    torch.testing.assert_close(linear, _t(0.0, 2 / 3, 6 / 7, 1.0))
    log = rotated_iou_loss(pred, target, "log")
    torch.testing.assert_close(log[:3], _t(0.0, math.log(3), math.log(7)))
    assert log[3] == pytest.approx(-math.log(1e-6))  # IoU clamped at eps
    giou = rotated_iou_loss(pred, target, "giou")
    torch.testing.assert_close(giou, _t(0.0, 2 / 3, 6 / 7 + 2 / 9, 1 + 2 / 10))


def test_giou_with_a_rotated_enclosing_rectangle():
    # The square and itself turned 45 degrees: intersection a regular octagon of apothem 1
    # (area I = 8 (sqrt 2 - 1)), U = 8 - I; the 8 corners form a regular octagon of circumradius
    # sqrt 2 whose smallest enclosing rectangle is the square across its flats,
    # (2 sqrt 2 cos 22.5)**2 = 4 + 2 sqrt 2 (the axis-aligned bounding box would be 8).
    inter = 8 * (math.sqrt(2) - 1)
    union = 8 - inter
    enclosing = 4 + 2 * math.sqrt(2)
    expected = 1 - inter / union + (enclosing - union) / enclosing
    got = rotated_iou_loss(_t([0.0, 0, 2, 2, 45]), _t(SQUARE), "giou")
    torch.testing.assert_close(got, _t(expected))


@pytest.mark.parametrize("mode", ["linear", "log", "giou"])
def test_iou_losses_invariant_under_rigid_motion_and_rewriting(mode):
    g = torch.Generator().manual_seed(0)
    n = 100
    target = torch.cat(
        [
            torch.rand(n, 2, generator=g) * 50,
            torch.rand(n, 2, generator=g) * 30 + 5,
            torch.rand(n, 1, generator=g) * 360,
        ],
        1,
    ).double()
    pred = target + torch.randn(n, 5, generator=g, dtype=torch.float64) * torch.tensor(
        [3.0, 3, 2, 2, 15]
    )
    ref = rotated_iou_loss(pred, target, mode)
    # the same rectangles written as (h, w, angle + 90) and (w, h, angle - 180)
    rewritten = pred.clone()
    rewritten[:, 2], rewritten[:, 3] = pred[:, 3], pred[:, 2]
    rewritten[:, 4] += 90
    flipped = target.clone()
    flipped[:, 4] -= 180
    torch.testing.assert_close(rotated_iou_loss(rewritten, flipped, mode), ref)
    # translated and turned together about the origin by 30 degrees (counter-clockwise on
    # screen, y down: x' = c x + s y, y' = -s x + c y)
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))

    def move(b):
        out = b.clone()
        out[:, 0] = c * b[:, 0] + s * b[:, 1] + 100
        out[:, 1] = -s * b[:, 0] + c * b[:, 1] - 40
        out[:, 4] += 30
        return out

    torch.testing.assert_close(rotated_iou_loss(move(pred), move(target), mode), ref)


def test_iou_loss_nan_prediction_gives_nan_and_bad_mode_raises():
    pred = _t([float("nan"), 0, 2, 2, 0], SQUARE)
    for mode in ("linear", "log", "giou"):
        loss = rotated_iou_loss(pred, _t(SQUARE, SQUARE), mode)
        assert torch.isnan(loss[0]) and loss[1] == 0
    with pytest.raises(ValueError, match="mode must be one of"):
        rotated_iou_loss(pred, pred, "diou")


def test_kfiou_hand_worked():
    g = torch.Generator().manual_seed(1)
    boxes = torch.cat(
        [torch.rand(20, 2, generator=g) * 50, torch.rand(20, 2, generator=g) * 30 + 1],
        1,
    )
    boxes = torch.cat([boxes, torch.rand(20, 1, generator=g) * 360], 1).double()
    # identical boxes: V_o = V / 2, KFIoU = (V / 2) / (2 V - V / 2) = 1/3 for any box
    torch.testing.assert_close(kfiou(boxes, boxes), torch.full((20,), 1 / 3, dtype=torch.float64))
    same = kfiou_loss(boxes[:1], boxes[:1], fun="none")
    torch.testing.assert_close(same, _t(2 / 3))
    torch.testing.assert_close(kfiou_loss(boxes[:1], boxes[:1], fun="ln", eps=0.0), _t(math.log(3)))
    torch.testing.assert_close(kfiou_loss(boxes[:1], boxes[:1], fun="exp"), _t(math.exp(2 / 3) - 1))
    # target 2 x 2, prediction 4 x 2 at angle 0: Sigma_t = I, Sigma_p = diag(4, 1),
    # det(Sigma_p + Sigma_t) = 10, V_o = 4 sqrt(4 / 10), KFIoU = V_o / (8 + 4 - V_o)
    v_o = 4 * math.sqrt(0.4)
    k = v_o / (12 - v_o)
    assert k == pytest.approx(0.26713, abs=1e-5)
    torch.testing.assert_close(kfiou(_t([0.0, 0, 4, 2, 0]), _t(SQUARE)), _t(k))
    # moved by 0.5 px along the target's w-axis: offset 0.5 / w = 0.25 > beta = 1/9, so the
    # centre term is 0.25 - 0.5 / 9; KFIoU does not depend on the centres
    moved = kfiou_loss(_t([0.5, 0, 4, 2, 0]), _t(SQUARE))
    torch.testing.assert_close(moved, _t(1 - k + 0.25 - 0.5 / 9))
    # the target's axes are used: a target turned 90 degrees sees the same offset along its h-axis
    turned = kfiou_loss(_t([0.5, 0, 2, 4, 90]), _t([0.0, 0, 2, 2, 90]))
    torch.testing.assert_close(turned, _t(1 - k + 0.25 - 0.5 / 9))
    # explicit centre offsets replace the default
    explicit = kfiou_loss(_t([0.5, 0, 4, 2, 0]), _t(SQUARE), center_offsets=_t([0.05, 0.0]))
    torch.testing.assert_close(explicit, _t(1 - k + 0.5 * 0.05**2 * 9))


def test_kfiou_symmetric_and_rewriting_invariant():
    g = torch.Generator().manual_seed(2)
    a = torch.cat([torch.rand(50, 2, generator=g) * 9 + 1, torch.rand(50, 1, generator=g) * 360], 1)
    a = torch.cat([torch.zeros(50, 2), a], 1).double()
    b = a + torch.randn(50, 5, generator=g, dtype=torch.float64) * torch.tensor(
        [0, 0, 0.5, 0.5, 20]
    )
    ref = kfiou(a, b)
    assert ((ref > 0) & (ref < 1 / 3)).all()
    torch.testing.assert_close(kfiou(b, a), ref)
    rewritten = a[:, [0, 1, 3, 2, 4]].clone()
    rewritten[:, 4] += 90
    torch.testing.assert_close(kfiou(rewritten, b), ref)
    with pytest.raises(ValueError, match="fun must be one of"):
        kfiou_loss(a, b, fun="log1p")


def _box_from_params(params):
    """``params``: (cx, cy, log w, log h, angle in radians) -> ``[1, 5]`` box (degrees)."""
    cx, cy, lw, lh, a = params
    return torch.stack([cx, cy, lw.exp(), lh.exp(), torch.rad2deg(a)])[None]


LOSSES = {
    "iou": lambda p, t: rotated_iou_loss(p, t, "linear"),
    "log_iou": lambda p, t: rotated_iou_loss(p, t, "log"),
    "giou": lambda p, t: rotated_iou_loss(p, t, "giou"),
    "kfiou": lambda p, t: kfiou_loss(p, t),
}


def _fit(name, first, target, steps, lr0, lr1):
    """Adam on (cx, cy, log w, log h, angle) from box ``first``, lr decaying from lr0 to lr1.
    Returns the IoU of the final box with ``target``."""
    cx, cy, w, h, a = first
    params = torch.tensor([cx, cy, math.log(w), math.log(h), math.radians(a)], requires_grad=True)
    opt = torch.optim.Adam([params], lr=lr0)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, (lr1 / lr0) ** (1 / steps))
    for _ in range(steps):
        opt.zero_grad()
        LOSSES[name](_box_from_params(params), target).sum().backward()
        opt.step()
        sched.step()
    return diff_iou_rotated(_box_from_params(params.detach()), target).item()


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradient_descent_on_each_loss_fits_a_box(name):
    # IoU 0.37 at the start (measured 0.998-0.9999 at the end on one CPU for every loss)
    target = torch.tensor([[20.0, 10.0, 12.0, 4.0, 30.0]])
    first = [23.0, 8.0, 6.0, 6.0, 0.0]
    assert 0.3 < diff_iou_rotated(torch.tensor([first]), target).item() < 0.4
    assert _fit(name, first, target, steps=150, lr0=0.2, lr1=0.005) > 0.95


def test_giou_and_kfiou_pull_disjoint_boxes_together_and_iou_cannot():
    target = torch.tensor([[20.0, 10.0, 12.0, 4.0, 30.0]])
    first = [30.0, 18.0, 5.0, 5.0, -20.0]
    box = torch.tensor([first], requires_grad=True)
    assert diff_iou_rotated(box, target).item() == 0
    for name in ("iou", "log_iou"):
        (grad,) = torch.autograd.grad(LOSSES[name](box, target).sum(), box)
        assert (grad == 0).all()
    # IoU after 100 steps, measured on one CPU: giou 0.16, kfiou 0.75
    assert _fit("giou", first, target, steps=100, lr0=0.1, lr1=0.1) > 0.05
    assert _fit("kfiou", first, target, steps=100, lr0=0.1, lr1=0.1) > 0.3


@pytest.mark.parametrize("loss_type", ["iou", "log_iou", "giou", "kfiou"])
def test_box_regression_loss_selects_the_new_losses_by_name(loss_type):
    assert loss_type in BOX_REG_LOSS_TYPES
    assert check_box_reg_loss_type(loss_type, "head") == loss_type
    coder = Box2BoxTransformRotated(weights=(10, 10, 5, 5, 1), angle_version="le90")
    g = torch.Generator().manual_seed(3)
    n = 30
    src = torch.cat(
        [
            torch.rand(n, 2, generator=g) * 100,
            torch.rand(n, 2, generator=g) * 40 + 10,
            torch.rand(n, 1, generator=g) * 180 - 90,
        ],
        1,
    )
    gt = src + torch.randn(n, 5, generator=g) * torch.tensor([4.0, 4, 3, 3, 10])
    # predicting the target's own deltas decodes to the target: the IoU losses are 0, KFIoU's
    # is 2/3 per box (its minimum; the centre term is 0)
    exact = coder.get_deltas(src, gt)
    at_target = box_regression_loss(loss_type, coder, exact, src, gt)
    expected = 2 / 3 * n if loss_type == "kfiou" else 0.0
    assert at_target.item() == pytest.approx(expected, abs=1e-3)
    # elsewhere: the sum of the per-box loss on the decoded boxes, differentiable in the deltas
    deltas = (exact + torch.randn(n, 5, generator=g) * 0.3).requires_grad_()
    got = box_regression_loss(loss_type, coder, deltas, src, gt)
    decoded = coder.apply_deltas(deltas, src)
    if loss_type == "kfiou":
        offsets = deltas[:, :2] - exact[:, :2]
        direct = kfiou_loss(decoded, gt, center_offsets=offsets).sum()
    else:
        mode = {"iou": "linear", "log_iou": "log", "giou": "giou"}[loss_type]
        direct = rotated_iou_loss(decoded, gt, mode).sum()
    torch.testing.assert_close(got, direct)
    assert got.item() > expected + 0.1
    got.backward()
    assert torch.isfinite(deltas.grad).all() and deltas.grad.abs().sum() > 0

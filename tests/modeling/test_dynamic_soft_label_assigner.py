"""Dynamic soft-label assigner: hand-worked cost matrices and dynamic k, conflicts, and a literal
reference (the cost with a [V, G, K] class term, a loop per gt for the dynamic k) on random
scenes."""

import math

import pytest
import torch
from torch.nn import functional as F

from rotated_det.layers import box_iou_rotated
from rotated_det.modeling import DynamicSoftLabelAssigner
from rotated_det.structures import points_in_rotated_boxes


def _reference(points, strides, logits, boxes, gts, classes, topk=13, iou_w=3.0, radius=3.0):
    """The RTMDet assignment written out as stated (float64)."""
    num_points, k = logits.shape
    assigned = torch.full((num_points,), -1, dtype=torch.long)
    soft = torch.zeros(num_points, dtype=torch.float64)
    if gts.shape[0] == 0:
        return assigned, soft
    valid = points_in_rotated_boxes(points, gts).any(1).nonzero()[:, 0]
    if valid.numel() == 0:
        return assigned, soft
    ious = box_iou_rotated(boxes[valid], gts)  # [V, G]
    onehot = F.one_hot(classes, k).double()[None].expand(len(valid), -1, -1)  # [V, G, K]
    target = onehot * ious[..., None]
    x = logits[valid][:, None, :].expand_as(target)
    cls = F.binary_cross_entropy_with_logits(x, target, reduction="none")
    cls = (cls * (target - x.sigmoid()).abs().pow(2)).sum(-1)
    dist = (points[valid][:, None] - gts[None, :, :2]).pow(2).sum(-1).sqrt()
    cost = cls - iou_w * torch.log(ious + 1e-7) + 10 ** (dist / strides[valid][:, None] - radius)
    match = torch.zeros_like(cost, dtype=torch.bool)
    for g in range(gts.shape[0]):
        top = sorted(ious[:, g].tolist(), reverse=True)[: min(topk, len(valid))]
        dyn = max(int(sum(top)), 1)
        order = torch.sort(cost[:, g], stable=True).indices  # cheapest first, ties by index
        match[order[:dyn], g] = True
    for v in range(len(valid)):
        if match[v].sum() == 0:
            continue
        g = int(cost[v].argmin()) if match[v].sum() > 1 else int(match[v].nonzero()[0, 0])
        assigned[valid[v]] = g
        soft[valid[v]] = ious[v, g]
    return assigned, soft


def test_hand_worked_cost_and_dynamic_k():
    """One class, gt the 16 x 16 square centred at (16, 16). Point 0 at its centre predicts it
    exactly (IoU 1), point 1 on its left side (x = 8) predicts its left half (IoU 1/2), point 2
    lies outside (not a candidate). Logits 0 (probability 1/2):

    - point 0: class BCE(1/2, 1) * (1 - 1/2)^2 = ln 2 / 4, IoU -3 ln(1 + 1e-7) ~ 0, centre
      prior 10^(0 - 3) = 0.001;
    - point 1: class BCE(1/2, 1/2) * 0 = 0, IoU -3 ln(1/2) = 2.0794, prior 10^(8/8 - 3) = 0.01.

    dynamic k = floor(1 + 1/2) = 1: point 0 alone, soft label 1."""
    points = torch.tensor([[16.0, 16.0], [8.0, 16.0], [40.0, 16.0]], dtype=torch.float64)
    strides = torch.full((3,), 8.0, dtype=torch.float64)
    logits = torch.zeros(3, 1, dtype=torch.float64)
    gt = torch.tensor([[16.0, 16.0, 16.0, 16.0, 0.0]], dtype=torch.float64)
    boxes = torch.tensor(
        [[16.0, 16.0, 16.0, 16.0, 0.0], [12.0, 16.0, 8.0, 16.0, 0.0], [40.0, 16, 8, 8, 0]],
        dtype=torch.float64,
    )
    assigner = DynamicSoftLabelAssigner()
    cost, ious = assigner.cost_matrix(points[:2], strides[:2], logits[:2], boxes[:2], gt, [0])
    torch.testing.assert_close(ious[:, 0], torch.tensor([1.0, 0.5], dtype=torch.float64))
    expected = torch.tensor(
        [math.log(2) / 4 - 3 * math.log(1 + 1e-7) + 1e-3, -3 * math.log(0.5 + 1e-7) + 1e-2],
        dtype=torch.float64,
    )
    torch.testing.assert_close(cost[:, 0], expected)
    assigned, soft = assigner(points, strides, logits, boxes, gt, torch.tensor([0]))
    assert assigned.tolist() == [0, -1, -1]
    assert soft.tolist() == pytest.approx([1.0, 0.0, 0.0])
    # better boxes raise k: three points predicting the gt exactly (IoU sum 3) -> all three
    pts = torch.tensor([[16.0, 16.0], [12.0, 16.0], [20.0, 16.0]], dtype=torch.float64)
    exact = gt.expand(3, 5).clone()
    assigned, soft = assigner(pts, strides, logits, exact, gt, torch.tensor([0]))
    assert assigned.tolist() == [0, 0, 0] and soft.tolist() == pytest.approx([1.0] * 3)
    # topk bounds the sum: with topk=2 the same scene gives k = 2, the two nearest the centre
    assigned, _ = DynamicSoftLabelAssigner(topk=2)(
        pts, strides, logits, exact, gt, torch.tensor([0])
    )
    assert assigned.tolist() == [0, 0, -1]  # (20, 16) ties (12, 16): the lower index wins


def test_point_chosen_by_two_gts_keeps_the_cheaper():
    """Two overlapping gts each take their single cheapest point, the same one: it goes to the gt
    of lower cost, here the one its predicted box matches (IoU 1 against 1/4)."""
    points = torch.tensor([[16.0, 16.0]], dtype=torch.float64)
    strides = torch.tensor([8.0], dtype=torch.float64)
    logits = torch.zeros(1, 2, dtype=torch.float64)
    gts = torch.tensor(
        [[16.0, 16.0, 16.0, 16.0, 0.0], [16.0, 16.0, 32.0, 32.0, 0.0]], dtype=torch.float64
    )
    for pred, winner in ((gts[0], 0), (gts[1], 1)):
        assigned, soft = DynamicSoftLabelAssigner()(
            points, strides, logits, pred[None], gts, torch.tensor([0, 1])
        )
        assert assigned.tolist() == [winner] and soft.item() == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(4))
def test_matches_the_literal_reference(seed):
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(0, 128, 8.0), torch.arange(0, 128, 8.0), indexing="ij")
    coarse = torch.stack([xs[::2, ::2].flatten(), ys[::2, ::2].flatten()], 1)
    points = torch.cat([torch.stack([xs.flatten(), ys.flatten()], 1), coarse]).double()
    strides = torch.cat([torch.full((256,), 8.0), torch.full((64,), 16.0)]).double()
    num_gt, k = 5, 3
    gts = torch.cat(
        [
            torch.rand(num_gt, 2, generator=g) * 100 + 14,
            torch.rand(num_gt, 2, generator=g) * 40 + 8,
            torch.rand(num_gt, 1, generator=g) * 180 - 90,
        ],
        1,
    ).double()
    classes = torch.randint(0, k, (num_gt,), generator=g)
    # predictions: jittered copies of a random gt near each point, some of them poor
    near = torch.cdist(points, gts[:, :2]).argmin(1)
    boxes = gts[near] + torch.randn(len(points), 5, generator=g).double() * torch.tensor(
        [4.0, 4.0, 6.0, 6.0, 20.0], dtype=torch.float64
    )
    boxes[:, 2:4] = boxes[:, 2:4].abs() + 1
    logits = torch.randn(len(points), k, generator=g).double() * 2
    assigned, soft = DynamicSoftLabelAssigner()(points, strides, logits, boxes, gts, classes)
    ref_assigned, ref_soft = _reference(points, strides, logits, boxes, gts, classes)
    assert torch.equal(assigned, ref_assigned)
    torch.testing.assert_close(soft, ref_soft)
    assert (assigned >= 0).sum() >= num_gt  # every gt has at least one positive
    fg = assigned >= 0
    assert points_in_rotated_boxes(points[fg], gts).any(1).all()  # positives lie in some gt


def test_empty_and_bad_inputs():
    assigner = DynamicSoftLabelAssigner()
    points = torch.tensor([[0.0, 0.0], [8.0, 0.0]])
    strides = torch.tensor([8.0, 8.0])
    logits = torch.zeros(2, 2)
    boxes = torch.tensor([[0.0, 0.0, 8, 8, 0], [8.0, 0.0, 8, 8, 0]])
    assigned, soft = assigner(
        points, strides, logits, boxes, torch.zeros(0, 5), torch.zeros(0).long()
    )
    assert assigned.tolist() == [-1, -1] and soft.tolist() == [0.0, 0.0]
    far = torch.tensor([[500.0, 500.0, 10.0, 10.0, 0.0]])  # contains no point
    assigned, _ = assigner(points, strides, logits, boxes, far, torch.tensor([1]))
    assert assigned.tolist() == [-1, -1]
    with pytest.raises(ValueError, match=r"gt_classes must lie in \[0, 2\)"):
        assigner(points, strides, logits, boxes, far, torch.tensor([2]))
    with pytest.raises(ValueError, match="pred_boxes must have shape"):
        assigner(points, strides, logits, boxes[:1], far, torch.tensor([0]))
    with pytest.raises(ValueError, match="topk"):
        DynamicSoftLabelAssigner(topk=0)

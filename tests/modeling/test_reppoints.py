"""The point-set detectors' parts (RepPoints family): assigners, candidate selections, losses and
the head's deformable convolution, on small examples worked out by hand."""

import math

import pytest
import torch
from torch.nn import functional as F

from rotated_det.layers.deform_conv import DeformConv2d
from rotated_det.modeling import (
    AdaptivePointsAssignment,
    ConvexAssigner,
    MaxConvexIoUAssigner,
    SASAssigner,
    ShapeAdaptiveMeasurement,
)
from rotated_det.modeling.assigners.convex_hull_feature_adaptation import cfa_split
from rotated_det.modeling.assigners.max_convex_iou_assigner import IGNORED
from rotated_det.modeling.assigners.point_set_candidates import rank_within_groups
from rotated_det.modeling.dense_heads.reppoints_head import points_to_deform_offsets
from rotated_det.modeling.losses import (
    bc_convex_giou_loss,
    convex_giou_loss,
    spatial_border_loss,
)
from rotated_det.structures import rbox_to_poly


def rect_points(x0, y0, x1, y1):
    """[9, 2]: corners, edge midpoints and centre of an axis-aligned rectangle (centroid = its
    centre, hull = the rectangle)."""
    xs = torch.tensor([x0, (x0 + x1) / 2, x1])
    ys = torch.tensor([y0, (y0 + y1) / 2, y1])
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)


def grid_points(stride, width, height):
    """Cell centres of one level, row-major: [H * W, 2]."""
    ys, xs = torch.meshgrid(
        (torch.arange(height) + 0.5) * stride, (torch.arange(width) + 0.5) * stride, indexing="ij"
    )
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1).float()


# ----------------------------------------------------------------------------------------------
# initial assigner


def test_convex_assigner_worked_example():
    """The module docstring's example: (13, 5, 32, 32, 0) on stride 8 takes (12, 4) and (20, 4)
    (normalised distances 1/32 and 7/32 in x; (4, 4) is 9/32 away)."""
    points = torch.tensor([[4.0, 4], [12, 4], [20, 4], [28, 4]])
    gt = torch.tensor([[13.0, 5, 32, 32, 0]])
    assigned = ConvexAssigner(scale=4, pos_num=2)(points, [4], [8], gt)
    assert assigned.tolist() == [-1, 0, 0, -1]
    assert ConvexAssigner(scale=4, pos_num=1)(points, [4], [8], gt).tolist() == [-1, 0, -1, -1]


def test_convex_assigner_levels_by_size_and_nearer_object_wins():
    assigner = ConvexAssigner(scale=4, pos_num=1)
    # 32 x 32 -> stride 8 (log2 8 = 3); 64 x 64 -> 16; 64 x 16 -> (4 + 2) / 2 = 3 -> 8;
    # 8 x 8 (1) and 1024 x 1024 (8) clamp to the finest / coarsest level
    boxes = torch.tensor(
        [
            [50.0, 50, 32, 32, 0],
            [50.0, 50, 64, 64, 0],
            [50.0, 50, 64, 16, 0],
            [50.0, 50, 8, 8, 0],
            [50.0, 50, 1024, 1024, 0],
            [50.0, 50, 64, 64, 90],  # a quarter turn keeps the extent
        ]
    )
    assert assigner.object_levels(boxes, [8, 16]).tolist() == [0, 1, 0, 0, 1, 1]
    # 45 degrees: a 32 x 32 square spans 45.25 px: (log2(11.3) * 2) / 2 = 3.5 -> 3 -> stride 8
    assert assigner.object_levels(torch.tensor([[0.0, 0, 32, 32, 45]]), [8, 16]).tolist() == [0]

    points = torch.cat([grid_points(8, 8, 8), grid_points(16, 4, 4)])
    # two 32 px objects whose nearest stride-8 point is the same, (28, 28): object 1 (centre
    # (29, 29), 1 px away) is nearer than object 0 (centre (26, 26), 2 px away) in normalised
    # distance; object 0 then gets nothing (pos_num = 1), as in MMRotate
    gt = torch.tensor([[26.0, 26, 32, 32, 0], [29.0, 29, 32, 32, 0]])
    assigned = assigner(points, [64, 16], [8, 16], gt)
    idx = (assigned >= 0).nonzero()[:, 0]
    assert idx.tolist() == [3 * 8 + 3] and assigned[idx].tolist() == [1]
    # a 64 px object goes to its nearest stride-16 point (offset 64 in the concatenation)
    assigned = assigner(points, [64, 16], [8, 16], torch.tensor([[40.0, 40, 64, 64, 0]]))
    assert (assigned >= 0).nonzero()[:, 0].tolist() == [64 + 2 * 4 + 2]


def test_convex_assigner_empty_and_bad_input():
    points = grid_points(8, 4, 4)
    assert (ConvexAssigner()(points, [16], [8], torch.zeros(0, 5)) == -1).all()
    with pytest.raises(ValueError, match="num_points_per_level"):
        ConvexAssigner()(points, [15], [8], torch.zeros(0, 5))
    with pytest.raises(ValueError, match="pos_num"):
        ConvexAssigner(pos_num=0)


# ----------------------------------------------------------------------------------------------
# refine assigners


def test_max_convex_iou_assigner_thresholds():
    """Hulls [0, 10] x [0, h] inside the object (5, 5, 10, 10, 0) have IoU h / 10: 0.5 is
    foreground, 0.35 ignored (between 0.3 and 0.4), 0.1 background."""
    sets = torch.stack([rect_points(0, 0, 10, h) for h in (5.0, 3.5, 1.0)])
    gt = torch.tensor([[5.0, 5, 10, 10, 0]])
    assigned = MaxConvexIoUAssigner(0.4, 0.3)(sets, [3], gt)
    assert assigned.tolist() == [0, IGNORED, -1]
    # the best set of an object is foreground even below pos_iou_thr (low-quality match), the
    # others between the thresholds are ignored ...
    assigned = MaxConvexIoUAssigner(0.6, 0.3)(sets, [3], gt)
    assert assigned.tolist() == [0, IGNORED, -1]
    # ... unless disabled; Oriented RepPoints' / CFA's 0.1 / 0.1: everything overlapping >= 0.1
    assert MaxConvexIoUAssigner(0.6, 0.3, False)(sets, [3], gt).tolist() == [IGNORED] * 2 + [-1]
    assert MaxConvexIoUAssigner(0.1, 0.1)(sets, [3], gt).tolist() == [0, 0, 0]
    assert (MaxConvexIoUAssigner()(sets, [3], torch.zeros(0, 5)) == -1).all()
    with pytest.raises(ValueError, match="neg_iou_thr"):
        MaxConvexIoUAssigner(0.3, 0.4)


@pytest.mark.parametrize(
    "gt, expected",
    [
        # square (r = 1): threshold (0.4 + 0.2) * exp(-1/4) = 0.467: IoU 0.6 only
        ([5.0, 5, 10, 10, 0], [-1, -1, 0]),
        # 4:1 (r = 4): 0.6 * exp(-1) = 0.221: IoU 0.4 and 0.6
        ([20.0, 5, 40, 10, 0], [-1, 0, 0]),
    ],
)
def test_sas_assigner_shape_adaptive_threshold(gt, expected):
    """Three candidates with hull IoUs 0.2, 0.4, 0.6 (mean 0.4, unbiased std 0.2), centroids
    inside the object (the module docstring's example)."""
    x1 = 2 * gt[0]
    sets = torch.stack([rect_points(0, 0, x1, h) for h in (2.0, 4.0, 6.0)])
    assigned = SASAssigner(topk=3)(sets, [3], torch.tensor([gt]))
    assert assigned.tolist() == expected


def test_sas_assigner_needs_centroid_inside():
    gt = torch.tensor([[20.0, 5, 40, 10, 0]])
    sets = torch.stack([rect_points(0, 0, 40, h) for h in (2.0, 4.0, 6.0)])
    sets[2] += torch.tensor([0.0, 8.0])  # centroid (20, 11): outside, IoU 2 / 10 = 0.2 ...
    # ... IoUs 0.2, 0.4, 0.2: threshold (0.267 + 0.115) * exp(-1) = 0.141: the two first pass
    # the IoU test, the third is outside
    assert SASAssigner(topk=3)(sets, [3], gt).tolist() == [0, 0, -1]


# ----------------------------------------------------------------------------------------------
# refine selections


def test_rank_within_groups():
    groups = torch.tensor([1, 0, 1, 0, 1])
    cost = torch.tensor([0.5, 0.3, 0.1, 0.3, 0.2])
    assert rank_within_groups(groups, cost).tolist() == [2, 0, 0, 1, 1]


def test_apaa_selection_worked_example():
    """Costs 0.9, 0.2, 0.5, 0.7, 0.3 of one object on one level: ceil(0.4 * 5) = 2 stay (0.2,
    0.3). With candidates_per_level = 2 per level over two levels: (0.9, 0.2, 0.5 | 0.7, 0.3)
    keeps (0.2, 0.5 | 0.3, 0.7), then ceil(0.4 * 4) = 2 of those: 0.2 and 0.3."""
    cost = torch.tensor([0.9, 0.2, 0.5, 0.7, 0.3])
    one = torch.zeros(5, dtype=torch.int64)
    apaa = AdaptivePointsAssignment(top_ratio=0.4)
    assert apaa.select(cost, one, one).tolist() == [0, 1, 0, 0, 1]
    level = torch.tensor([0, 0, 0, 1, 1])
    apaa = AdaptivePointsAssignment(top_ratio=0.4, candidates_per_level=2)
    assert apaa.select(cost, one, level).tolist() == [0, 1, 0, 0, 1]
    # top_ratio 0.75: ceil(3) of the 4 considered: 0.2, 0.3, 0.5 (0.9 was never considered)
    apaa = AdaptivePointsAssignment(top_ratio=0.75, candidates_per_level=2)
    assert apaa.select(cost, one, level).tolist() == [0, 1, 1, 0, 1]
    # two objects are selected separately, each keeps ceil(0.4 * n): (0.9, 0.2) keeps 0.2,
    # (0.5, 0.7, 0.3) keeps 0.3 and 0.5
    objects = torch.tensor([0, 0, 1, 1, 1])
    apaa = AdaptivePointsAssignment(top_ratio=0.4)
    assert apaa.select(cost, objects, one).tolist() == [0, 1, 1, 0, 1]


def test_cfa_split_hand_worked():
    """Costs 0.1, 0.2, 0.9: mean 0.4, variance 0.19; densities exp(-(c - m)^2 / 0.19) / 0.4359 =
    1.4286, 1.8588, 0.6155; tail sums 3.9029, 2.4743, 0.6155, normalised 1, 0.5654, 0; cost x
    tail 0.1, 0.1131, 0: split after the second. Weights 0.75 x (1, 0.5654) rescaled to sum 2:
    1.2776, 0.7224."""
    costs = torch.tensor([0.1, 0.2, 0.9], dtype=torch.float64)
    w = cfa_split(costs, torch.ones(3, dtype=torch.float64), anti_factor=0.75)
    torch.testing.assert_close(
        w, torch.tensor([1.2776, 0.7224, 0.0], dtype=torch.float64), atol=2e-4, rtol=0
    )
    # aliasing halves the first weight's share: 0.375 and 0.4241 -> 0.9387, 1.0613
    w = cfa_split(costs, torch.tensor([0.5, 1.0, 1.0], dtype=torch.float64), anti_factor=0.75)
    torch.testing.assert_close(
        w, torch.tensor([0.9387, 1.0613, 0.0], dtype=torch.float64), atol=2e-4, rtol=0
    )
    # one candidate, or equal costs: all stay with weight 1
    assert cfa_split(torch.tensor([0.3]), torch.ones(1), 0.75).tolist() == [1.0]
    assert cfa_split(torch.full((3,), 0.3), torch.ones(3), 0.75).tolist() == [1.0, 1.0, 1.0]


def test_shape_adaptive_measurement_worked_example_and_rotation():
    sam = ShapeAdaptiveMeasurement()
    # d = sqrt(16 / 16 + 1 / 4) = 1.118, exp(1 / 2.118) = 1.604
    w = sam(torch.tensor([[4.0, 1.0]]), torch.tensor([[0.0, 0, 16, 4, 0]]))
    torch.testing.assert_close(w, torch.tensor([math.exp(1 / (1 + math.sqrt(1.25)))]))
    # the object turned by 90 degrees (CCW on screen: its w-axis points up, (0, -1)) and the
    # point turned with it: (4, 1) -> (1, -4)
    w90 = sam(torch.tensor([[1.0, -4.0]]), torch.tensor([[0.0, 0, 16, 4, 90]]))
    torch.testing.assert_close(w90, w)
    # at the centre: e
    torch.testing.assert_close(
        sam(torch.tensor([[3.0, 2.0]]), torch.tensor([[3.0, 2, 10, 5, 30]])),
        torch.tensor([math.e]),
    )


# ----------------------------------------------------------------------------------------------
# losses


def test_convex_giou_loss_hand_worked():
    gt = torch.tensor([[5.0, 5, 10, 10, 0]])
    exact = rect_points(0, 0, 10, 10)[None]
    torch.testing.assert_close(convex_giou_loss(exact, gt), torch.zeros(1), atol=1e-5, rtol=0)
    # shifted by half a side: IoU 50 / 150 = 1/3, hull of the union = the union (15 x 10):
    # GIoU 1/3, loss 2/3; far apart (gap 10): IoU 0, hull 30 x 10 = 300, union 200: GIoU -1/3
    shifted = rect_points(5, 0, 15, 10)[None]
    torch.testing.assert_close(convex_giou_loss(shifted, gt), torch.tensor([2 / 3]))
    far = rect_points(20, 0, 30, 10)[None]
    torch.testing.assert_close(convex_giou_loss(far, gt), torch.tensor([4 / 3]))
    # the loss pulls the shifted set back: its gradient in x is positive (move left)
    pts = shifted.clone().requires_grad_()
    convex_giou_loss(pts, gt).sum().backward()
    assert pts.grad[..., 0].sum() > 0


def test_bc_convex_giou_loss_hand_worked():
    """A set made of its square object's corners and centre (x5; the object turned by 30 degrees:
    unique extreme points): GIoU 1, smooth L1 terms 0: loss 0. Moved right by 0.5 units (scale 4,
    2 px): w x (mean term 0.125 + extremes 4 x 0.125) with ``w = exp(-1/4)``, plus the convex
    GIoU loss of the moved set."""
    gt = torch.tensor([[5.0, 5, 10, 10, 30]])
    corners = rbox_to_poly(gt).view(1, 4, 2)
    exact = torch.cat([corners, gt[:, None, :2].expand(1, 5, 2)], dim=1)
    w = math.exp(-0.25)
    scale = torch.tensor([4.0])
    torch.testing.assert_close(
        bc_convex_giou_loss(exact, gt, scale), torch.zeros(1), atol=1e-5, rtol=0
    )
    moved = exact + torch.tensor([2.0, 0.0])
    expected = w * (0.125 + 4 * 0.125) + convex_giou_loss(moved, gt)
    torch.testing.assert_close(bc_convex_giou_loss(moved, gt, scale), expected)
    # a 1:4 object: w = exp(-1) (weaker smooth L1 terms for elongated objects)
    long_gt = torch.tensor([[20.0, 5, 40, 10, 30]])
    corners = rbox_to_poly(long_gt).view(1, 4, 2)
    long_set = torch.cat([corners, long_gt[:, None, :2].expand(1, 5, 2)], dim=1)
    torch.testing.assert_close(
        bc_convex_giou_loss(long_set, long_gt, scale), torch.zeros(1), atol=1e-5, rtol=0
    )
    moved_long = long_set + torch.tensor([2.0, 0.0])
    expected = math.exp(-1) * (0.125 + 4 * 0.125) + convex_giou_loss(moved_long, long_gt)
    torch.testing.assert_close(bc_convex_giou_loss(moved_long, long_gt, scale), expected)
    # the loss pulls the moved set back (positive x gradient: move left)
    pts = moved.clone().requires_grad_()
    bc_convex_giou_loss(pts, gt, scale).sum().backward()
    assert pts.grad[..., 0].sum() > 0


def test_bc_convex_giou_loss_pulls_squat_hulls_onto_their_object():
    """For a square (w = 0.78 > 1/2) a hull that grows onto its object lowers the loss, and with
    negligible smooth L1 terms (unit 1000 px) the gradient is the convex GIoU loss's. MMRotate's
    reported value ``... + 1 - (1 - 2 w) GIoU``, differentiated, would rise instead (its GIoU
    term has the weight 1 - 2 w = -0.56 there)."""
    gt = torch.tensor([[5.0, 5, 10, 10, 30]])
    corners = rbox_to_poly(gt).view(1, 4, 2)
    centre = gt[:, None, :2]

    def scaled(s: float) -> torch.Tensor:  # corners shrunk towards the centre, and the centre
        return torch.cat([centre + s * (corners - centre), centre.expand(1, 5, 2)], dim=1)

    unit = torch.tensor([1000.0])
    losses = [bc_convex_giou_loss(scaled(s), gt, unit).item() for s in (0.5, 0.75, 0.9, 1.0)]
    assert all(a > b + 0.05 for a, b in zip(losses, losses[1:])), losses
    pts = scaled(0.7).requires_grad_()
    bc_convex_giou_loss(pts, gt, unit).sum().backward()
    reference = scaled(0.7).requires_grad_()
    convex_giou_loss(reference, gt).sum().backward()
    torch.testing.assert_close(pts.grad, reference.grad, atol=1e-5, rtol=1e-3)
    # and the gradient moves the corners outwards, onto the object
    outward = ((pts.grad[0, :4] * (corners[0] - centre[0])).sum(dim=1) < 0).all()
    assert outward, pts.grad


def test_spatial_border_loss_hand_worked():
    """One point of nine outside the object (5, 5, 10, 10, 0) at (20, 5): 15 px from the centre,
    scale 3: 15 / 3 / 9; points on the border cost nothing."""
    gt = torch.tensor([[5.0, 5, 10, 10, 0]])
    pts = rect_points(0, 0, 10, 10)[None].clone()  # all inside or on the border
    torch.testing.assert_close(spatial_border_loss(pts, gt, torch.tensor([3.0])), torch.zeros(1))
    pts[0, 4] = torch.tensor([20.0, 5.0])
    torch.testing.assert_close(
        spatial_border_loss(pts, gt, torch.tensor([3.0])), torch.tensor([15 / 3 / 9])
    )
    # rotated object: (0, 0, 20, 4, 90) spans |x| <= 2, |y| <= 10: (0, 8) inside, (8, 0) outside
    rot = torch.tensor([[0.0, 0, 20, 4, 90]])
    inside = torch.tensor([[[0.0, 8.0]] * 9])
    outside = torch.tensor([[[8.0, 0.0]] * 9])
    assert spatial_border_loss(inside, rot, torch.ones(1)).item() == 0
    torch.testing.assert_close(
        spatial_border_loss(outside, rot, torch.ones(1)), torch.tensor([8.0])
    )


# ----------------------------------------------------------------------------------------------
# the head's deformable convolution


def test_points_on_the_plain_taps_give_zero_offsets():
    radius = torch.arange(-1, 2, dtype=torch.float32)
    ky, kx = torch.meshgrid(radius, radius, indexing="ij")
    taps = torch.stack([kx.reshape(-1), ky.reshape(-1)], dim=1).reshape(1, 18, 1, 1)
    points = taps.expand(2, 18, 4, 5)
    assert (points_to_deform_offsets(points, 3) == 0).all()
    # a point moved by (dx, dy) = (0.5, -2) gives the offset (dy, dx) = (-2, 0.5) of its tap
    moved = points.clone()
    moved[:, 2 * 5] += 0.5
    moved[:, 2 * 5 + 1] -= 2
    offsets = points_to_deform_offsets(moved, 3)
    assert offsets[:, 2 * 5].eq(-2).all() and offsets[:, 2 * 5 + 1].eq(0.5).all()


@pytest.mark.parametrize("implementation", ["grid_sample", "deform_conv2d"])
def test_deform_conv_with_plain_taps_is_a_convolution(implementation):
    torch.manual_seed(0)
    conv = DeformConv2d(4, 6, 3, implementation=implementation)
    x = torch.randn(2, 4, 7, 9)
    zero = torch.zeros(2, 18, 7, 9)
    torch.testing.assert_close(
        conv(x, zero), F.conv2d(x, conv.weight, padding=1), atol=1e-5, rtol=0
    )
    # a whole-pixel shift of every tap by (dy, dx) = (0, 1) reads the input shifted left by one
    shift = torch.zeros(2, 18, 7, 9)
    shift[:, 1::2] = 1.0
    expected = F.conv2d(F.pad(x[..., 1:], (0, 1)), conv.weight, padding=1)
    # (column 0 differs: its left tap reads x[0] where the shifted, padded input has 0)
    torch.testing.assert_close(conv(x, shift)[..., 1:], expected[..., 1:], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="offset must be"):
        conv(x, torch.zeros(2, 9, 7, 9))

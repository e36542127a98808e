"""RotatedCenterSamplingAssigner (Rotated FCOS) and RotatedATSSAssigner against hand-worked
scenes, per-gt loop references (below; dev/bench_assigners.py times them as its baselines) and
invariances."""

import math
from fractions import Fraction

import pytest
import torch

from rotated_det.layers import pairwise_iou_rotated
from rotated_det.modeling import DistanceAnglePointCoder
from rotated_det.modeling.assigners import (
    FCOS_REGRESS_RANGES,
    RotatedATSSAssigner,
    RotatedCenterSamplingAssigner,
    per_point_strides_and_ranges,
)

# ---------------------------------------------------------------------------------------------
# Per-gt loop references (straight from the definitions; float64 geometry with math.cos/sin)


def reference_center_sampling(points, strides, regress_ranges, gt_boxes, radius=1.5, sampling=True):
    """[P] gt index or -1, one gt at a time over all points: strictly inside, (centre region),
    largest side distance in the range, smallest area wins (first index among equal areas).
    Computes in the dtype of ``points``."""
    assigned = torch.full((points.shape[0],), -1, dtype=torch.long)
    best_area = torch.full((points.shape[0],), math.inf, dtype=points.dtype)
    p = points
    for g, (cx, cy, w, h, a) in enumerate(gt_boxes.tolist()):
        r = math.radians(a)
        dx, dy = p[:, 0] - cx, p[:, 1] - cy
        ou = dx * math.cos(r) - dy * math.sin(r)
        ov = dx * math.sin(r) + dy * math.cos(r)
        dist = torch.stack([w / 2 + ou, h / 2 + ov, w / 2 - ou, h / 2 - ov], dim=1)
        ok = dist.min(dim=1).values > 0
        if sampling:
            ok &= (ou.abs() < radius * strides) & (ov.abs() < radius * strides)
        largest = dist.max(dim=1).values
        ok &= (largest >= regress_ranges[:, 0]) & (largest <= regress_ranges[:, 1])
        better = ok & (w * h < best_area)
        best_area = torch.where(better, torch.tensor(w * h, dtype=p.dtype), best_area)
        assigned = torch.where(better, torch.tensor(g), assigned)
    return assigned


def reference_inside(points, box):
    """[P] bool: the point is inside the rotated box or on its border (polygon half-planes)."""
    cx, cy, w, h, a = box.double().tolist()
    r = math.radians(a)
    u, v = (math.cos(r), -math.sin(r)), (math.sin(r), math.cos(r))
    corners = [
        (cx + su * w / 2 * u[0] + sv * h / 2 * v[0], cy + su * w / 2 * u[1] + sv * h / 2 * v[1])
        for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1))
    ]
    p = points.double()
    crosses = []
    for i in range(4):
        (x0, y0), (x1, y1) = corners[i], corners[(i + 1) % 4]
        crosses.append((x1 - x0) * (p[:, 1] - y0) - (y1 - y0) * (p[:, 0] - x0))
    c = torch.stack(crosses, dim=1)
    return (c >= 0).all(dim=1) | (c <= 0).all(dim=1)


def reference_atss(anchors, num_anchors_per_level, gt_boxes, topk=9):
    """([A] gt index or -1, [A] IoU with it or 0), one gt at a time: per level the topk nearest
    centres (the lower index first among equidistant ones), threshold mean + std (Bessel) of
    their IoUs, centre inside the gt; an anchor keeps the gt of highest IoU (the first among
    equal IoUs)."""
    num_anchors = anchors.shape[0]
    assigned = torch.full((num_anchors,), -1, dtype=torch.long)
    best = torch.full((num_anchors,), -1.0, dtype=torch.float64)
    centres = anchors[:, :2]
    for g in range(gt_boxes.shape[0]):
        candidates, start = [], 0
        for n in num_anchors_per_level:
            if n > 0:
                dx = centres[start : start + n, 0] - gt_boxes[g, 0]
                dy = centres[start : start + n, 1] - gt_boxes[g, 1]
                d2 = dx * dx + dy * dy
                candidates.append(torch.argsort(d2, stable=True)[: min(topk, n)] + start)
            start += n
        cand = torch.cat(candidates)
        iou = pairwise_iou_rotated(anchors[cand], gt_boxes[g : g + 1])[:, 0].double()
        threshold = iou.mean() + (iou.std() if len(cand) > 1 else 0.0)
        positive = (iou >= threshold) & reference_inside(centres[cand], gt_boxes[g])
        cand, iou = cand[positive], iou[positive]
        better = iou > best[cand]
        best[cand[better]] = iou[better]
        assigned[cand[better]] = g
    return assigned, best.clamp(min=0)


# ---------------------------------------------------------------------------------------------
# Scenes


def grid_points(size, strides):
    """Cell centres of each level (row-major), concatenated, and the count per level."""
    points, counts = [], []
    for s in strides:
        n = math.ceil(size / s)
        y, x = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        points.append(torch.stack([x.flatten(), y.flatten()], dim=1) * float(s) + s / 2)
        counts.append(n * n)
    return torch.cat(points), counts


def random_gt(n, size, gen, min_side=4.0, max_side=200.0, dtype=torch.float32):
    """Boxes anywhere in the image (partly outside too), log-uniform sides, any angle; a quarter
    of them at angles that are multiples of 90 degrees."""
    log = torch.rand(n, 2, generator=gen, dtype=torch.float64)
    sides = min_side * (max_side / min_side) ** log
    angles = torch.rand(n, generator=gen, dtype=torch.float64) * 360 - 180
    quarter = torch.rand(n, generator=gen) < 0.25
    angles[quarter] = 90.0 * torch.randint(-2, 3, (int(quarter.sum()),), generator=gen).double()
    centres = torch.rand(n, 2, generator=gen, dtype=torch.float64) * (size + 40) - 20
    return torch.cat([centres, sides, angles[:, None]], dim=1).to(dtype)


# ---------------------------------------------------------------------------------------------
# RotatedCenterSamplingAssigner


def test_fcos_hand_worked_scene():
    # gt (100, 100, 40, 20, 90): u = (0, -1), v = (1, 0); x in [90, 110], y in [80, 120].
    # ou = 100 - y, ov = x - 100; largest side distance max(20 + |ou|, 10 + |ov|).
    gt = torch.tensor([[100.0, 100.0, 40.0, 20.0, 90.0]])
    points = torch.tensor(
        [
            [104.0, 92.0],  # ou 8, ov 4: inside, |.| < 1.5 * 8 = 12, largest 28 in [-1, 64]
            [100.0, 113.0],  # ou -13: inside, outside the centre square (13 >= 12)
            [108.0, 100.0],  # ov 8: inside, in the square, largest 20
            [111.0, 100.0],  # ov 11 > 10: outside the box (inside the square)
            [100.0, 120.0],  # ou -20: on the border: not strictly inside
            [100.0, 100.0],  # stride 8: the centre, largest 20
            [100.0, 100.0],  # stride 16: range [64, 128] misses 20
        ]
    )
    strides = torch.tensor([8.0] * 6 + [16.0])
    ranges = torch.tensor([FCOS_REGRESS_RANGES[0]] * 6 + [FCOS_REGRESS_RANGES[1]])
    sampled = RotatedCenterSamplingAssigner()(points, strides, ranges, gt)
    assert sampled.tolist() == [0, -1, 0, -1, -1, 0, -1]
    plain = RotatedCenterSamplingAssigner(center_sampling=False)(points, strides, ranges, gt)
    assert plain.tolist() == [0, 0, 0, -1, -1, 0, -1]
    # a radius of 1.7 strides (13.6 px) takes in the point at ou -13
    wide = RotatedCenterSamplingAssigner(center_sample_radius=1.7)(points, strides, ranges, gt)
    assert wide.tolist() == plain.tolist()

    fg = sampled >= 0
    # The targets of the assigned points (rows 0, 2, 5) come from the coder, which writes the gt
    # in le90 first: (100, 100, 40, 20, -90), u = (0, 1) (down), v = (-1, 0) (left). (104, 92)
    # is at (4, -8): ou = -8, ov = -4, so left 20 - 8 = 12 (to y = 80), top 10 - 4 = 6 (to
    # x = 110), right 20 + 8 = 28 (to y = 120), bottom 10 + 4 = 14 (to x = 90).
    fg = sampled >= 0
    distances, angles = DistanceAnglePointCoder("le90").encode(points[fg], gt[sampled[fg]])
    assert distances[0].tolist() == [12.0, 6.0, 28.0, 14.0]
    assert distances[1].tolist() == [20.0, 2.0, 20.0, 18.0]
    assert distances[2].tolist() == [20.0, 10.0, 20.0, 10.0]
    assert angles.tolist() == [-90.0, -90.0, -90.0]


def test_fcos_targets_thirty_degrees():
    """The point c + 3 u + 1 v of a (w 16, h 6, 30 degrees) box is 8 + 3 from the left side,
    3 + 1 from the top, 8 - 3 from the right and 3 - 1 from the bottom."""
    box = torch.tensor([[50.0, 40.0, 16.0, 6.0, 30.0]], dtype=torch.float64)
    u = torch.tensor([math.cos(math.pi / 6), -math.sin(math.pi / 6)], dtype=torch.float64)
    v = torch.tensor([math.sin(math.pi / 6), math.cos(math.pi / 6)], dtype=torch.float64)
    point = box[:, :2] + 3 * u + 1 * v
    distances, angles = DistanceAnglePointCoder("le90").encode(point, box)
    torch.testing.assert_close(distances[0], torch.tensor([11.0, 4.0, 5.0, 2.0]).double())
    assert angles.tolist() == [30.0]
    # the rectangle rebuilt from the distances: width left + right, height top + bottom, and
    # centre p + (right - left) / 2 u + (bottom - top) / 2 v
    left, top, right, bottom = distances[0]
    centre = point[0] + (right - left) / 2 * u + (bottom - top) / 2 * v
    torch.testing.assert_close(centre, box[0, :2])
    assert (left + right, top + bottom) == (16.0, 6.0)


def test_fcos_level_ranges():
    """A 300 x 100 gt at 20 degrees: at its centre the largest side distance is 150, in
    [128, 256]: only the stride-32 point there is assigned. A 128 x 40 axis-aligned gt has 64 at
    its centre, the shared end of the first two ranges (both included)."""
    strides_l = [8, 16, 32, 64, 128]
    gt = torch.tensor([[500.0, 400.0, 300.0, 100.0, 20.0], [200.0, 200.0, 128.0, 40.0, 0.0]])
    points = torch.tensor([[500.0, 400.0]] * 5 + [[200.0, 200.0]] * 5)
    strides, ranges = per_point_strides_and_ranges([1] * 5, strides_l, FCOS_REGRESS_RANGES)
    strides, ranges = strides.repeat(2), ranges.repeat(2, 1)
    out = RotatedCenterSamplingAssigner()(points, strides, ranges, gt)
    assert out.tolist() == [-1, -1, 0, -1, -1, 1, 1, -1, -1, -1]
    # ranges moved: the same points follow them
    shifted = ranges.clone()
    shifted[:5] = torch.tensor([160.0, 320.0])
    out = RotatedCenterSamplingAssigner()(points, strides, shifted, gt)
    assert out[:5].tolist() == [-1, -1, -1, -1, -1]  # 150 < 160
    shifted[:5] = torch.tensor([100.0, 150.0])
    out = RotatedCenterSamplingAssigner()(points, strides, shifted, gt)
    assert out[:5].tolist() == [0, 0, 0, 0, 0]  # 150 in [100, 150]


def test_fcos_smallest_area_wins():
    # three gts containing the point (10, 10): areas 400, 96 (rotated 45 degrees), 96
    gt = torch.tensor(
        [
            [10.0, 10.0, 20.0, 20.0, 0.0],
            [11.0, 10.0, 12.0, 8.0, 45.0],
            [10.0, 11.0, 8.0, 12.0, -30.0],
        ]
    )
    points = torch.tensor([[10.0, 10.0], [17.0, 17.0]])  # the second is only in gt 0
    strides = torch.tensor([8.0, 8.0])
    ranges = torch.tensor([[-1.0, 64.0]] * 2)
    assigner = RotatedCenterSamplingAssigner(center_sampling=False)
    assert assigner(points, strides, ranges, gt).tolist() == [1, 0]  # equal areas: lower index
    assert assigner(points, strides, ranges, gt[[2, 0, 1]]).tolist() == [0, 1]
    assert assigner(points, strides, ranges, gt[[0, 2]]).tolist() == [1, 0]


def test_fcos_empty():
    points, counts = grid_points(64, [8, 16])
    strides, ranges = per_point_strides_and_ranges(counts, [8, 16], FCOS_REGRESS_RANGES[:2])
    out = RotatedCenterSamplingAssigner()(points, strides, ranges, torch.zeros(0, 5))
    assert out.shape == (points.shape[0],) and (out == -1).all()
    gt = torch.tensor([[10.0, 10.0, 20.0, 20.0, 0.0]])
    assert RotatedCenterSamplingAssigner()(points[:0], strides[:0], ranges[:0], gt).shape == (0,)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("sampling", [True, False])
def test_fcos_matches_loop_reference(seed, sampling):
    gen = torch.Generator().manual_seed(seed)
    strides_l = [8, 16, 32, 64, 128]
    points, counts = grid_points(512, strides_l)
    strides, ranges = per_point_strides_and_ranges(counts, strides_l, dtype=torch.float64)
    gt = random_gt(80, 512, gen, max_side=400.0, dtype=torch.float64)
    ref = reference_center_sampling(points.double(), strides, ranges, gt, sampling=sampling)
    assert (ref >= 0).sum() > 200 and len(set(ref.tolist())) > 40  # a real test
    for chunk in (2**21, 500, 1):
        assigner = RotatedCenterSamplingAssigner(
            center_sampling=sampling, max_pairs_per_chunk=chunk
        )
        assert torch.equal(assigner(points.double(), strides, ranges, gt), ref)
    # float32 inputs: the same but for points within rounding of a side
    out32 = RotatedCenterSamplingAssigner(center_sampling=sampling)(
        points, strides.float(), ranges.float(), gt.float()
    )
    assert (out32 != ref).sum() <= 2


def test_fcos_scattered_points_match_loop_reference():
    """Points anywhere (not a grid, duplicates included) with mixed strides."""
    gen = torch.Generator().manual_seed(5)
    points = torch.rand(3000, 2, generator=gen, dtype=torch.float64) * 300
    points[1000:1100] = points[:100]
    level = torch.randint(0, 3, (3000,), generator=gen)
    strides = torch.tensor([8.0, 16.0, 32.0], dtype=torch.float64)[level]
    ranges = torch.tensor(FCOS_REGRESS_RANGES[:3], dtype=torch.float64)[level]
    gt = random_gt(40, 300, gen, max_side=250.0, dtype=torch.float64)
    ref = reference_center_sampling(points, strides, ranges, gt)
    assert (ref >= 0).sum() > 100
    out = RotatedCenterSamplingAssigner(max_pairs_per_chunk=97)(points, strides, ranges, gt)
    assert torch.equal(out, ref)


def test_fcos_same_rectangle_any_representation():
    gen = torch.Generator().manual_seed(3)
    strides_l = [8, 16, 32]
    points, counts = grid_points(256, strides_l)
    strides, ranges = per_point_strides_and_ranges(counts, strides_l, FCOS_REGRESS_RANGES[:3])
    gt = random_gt(40, 256, gen, dtype=torch.float64)
    cx, cy, w, h, a = gt.unbind(1)
    assigner = RotatedCenterSamplingAssigner()
    base = assigner(points.double(), strides, ranges, gt)
    for other in (
        torch.stack([cx, cy, h, w, a + 90], dim=1),
        torch.stack([cx, cy, h, w, a - 90], dim=1),
        torch.stack([cx, cy, w, h, a + 180], dim=1),
    ):
        assert (assigner(points.double(), strides, ranges, other) != base).sum() <= 1


def test_fcos_bad_input():
    points = torch.zeros(4, 2)
    strides, ranges = torch.full((4,), 8.0), torch.zeros(4, 2)
    assigner = RotatedCenterSamplingAssigner()
    gt = torch.tensor([[1.0, 2.0, 3.0, 4.0, 0.0], [1.0, 2.0, math.nan, 4.0, 0.0]])
    with pytest.raises(ValueError, match=r"gt_boxes\[1\] = \[1.0, 2.0, nan, 4.0, 0.0\]"):
        assigner(points, strides, ranges, gt)
    with pytest.raises(ValueError, match=r"strides must have shape \[4\]"):
        assigner(points, strides[:3], ranges, gt[:1])
    with pytest.raises(ValueError, match=r"regress_ranges must have shape \[4, 2\]"):
        assigner(points, strides, ranges[:, :1], gt[:1])
    with pytest.raises(ValueError, match=r"points\[2\] = \[inf, 0.0\] is not finite"):
        assigner(torch.tensor([[0.0, 0], [1, 1], [math.inf, 0], [2, 2]]), strides, ranges, gt[:1])
    with pytest.raises(ValueError, match="center_sample_radius must be > 0"):
        RotatedCenterSamplingAssigner(center_sample_radius=0)
    with pytest.raises(ValueError, match="3 levels of points but 2 strides"):
        per_point_strides_and_ranges([1, 2, 3], [8, 16], FCOS_REGRESS_RANGES[:3])


# ---------------------------------------------------------------------------------------------
# RotatedATSSAssigner


def test_atss_hand_worked_threshold():
    """topk 3, four 10 x 10 anchors at x = 0, 10, 20, 30 and the gt (9, 0, 20, 10, 0): the
    nearest three (10, 0, 20) overlap it 10, 6 and 4 px wide: IoUs 1/2, 1/4, 2/13. Mean
    0.30128, std (Bessel) 0.17868, threshold 0.47997: only the anchor at 10 (IoU 0.5)."""
    ious = [Fraction(1, 2), Fraction(1, 4), Fraction(2, 13)]
    mean = sum(ious) / 3
    std = math.sqrt(float(sum((i - mean) ** 2 for i in ious) / 2))
    assert float(mean) + std == pytest.approx(0.47997, abs=1e-5)

    anchors = torch.tensor([[x, 0.0, 10.0, 10.0, 0.0] for x in (0.0, 10.0, 20.0, 30.0)])
    gt = torch.tensor([[9.0, 0.0, 20.0, 10.0, 0.0]])
    assigned, max_iou = RotatedATSSAssigner(topk=3)(anchors, [4], gt)
    assert assigned.tolist() == [-1, 0, -1, -1]
    assert max_iou.tolist() == pytest.approx([0.0, 0.5, 0.0, 0.0], abs=1e-6)
    # the same rectangle written as (10 wide, 20 tall, 90 degrees): same assignment
    turned = torch.tensor([[9.0, 0.0, 10.0, 20.0, 90.0]])
    assert RotatedATSSAssigner(topk=3)(anchors, [4], turned)[0].tolist() == [-1, 0, -1, -1]
    # topk 4 adds the anchor at 30 (IoU 0): threshold 0.22596 + 0.20971 = 0.43567, same result;
    # topk 2 can never assign: mean + |a - b| / sqrt(2) > max(a, b)
    assert RotatedATSSAssigner(topk=4)(anchors, [4], gt)[0].tolist() == [-1, 0, -1, -1]
    assert RotatedATSSAssigner(topk=2)(anchors, [4], gt)[0].tolist() == [-1, -1, -1, -1]


def test_atss_centre_must_be_inside():
    """topk 4, gt (0, 0, 20, 4, 0) (x in [-10, 10]); anchors A0 (-8, 0, 4, 4) IoU 16/80 = 0.2,
    A1 (11, 0, 20, 4) IoU 36/124 = 0.2903 (centre outside), A2 (0, 10, 4, 4) and
    A3 (0, -10, 4, 4) IoU 0. Threshold 0.1226 + 0.1463 = 0.2689: A1 passes it but its centre
    is outside, A0 does not: nothing assigned. Widened to 22.2 (x in [-11.1, 11.1]) the gt
    contains A1's centre: IoUs 0.1802, 0.3146, 0, 0; threshold 0.2767: A1 is positive."""
    anchors = torch.tensor(
        [
            [-8.0, 0.0, 4.0, 4.0, 0.0],
            [11.0, 0.0, 20.0, 4.0, 0.0],
            [0.0, 10.0, 4.0, 4.0, 0.0],
            [0.0, -10.0, 4.0, 4.0, 0.0],
        ]
    )
    for width, ious in ((20.0, [0.2, 36 / 124]), (22.2, [16 / 88.8, 40.4 / 128.4])):
        ref = torch.tensor(ious + [0.0, 0.0], dtype=torch.float64)
        threshold = ref.mean() + ref.std()
        assert ref[1] >= threshold > ref[0]
        gt = torch.tensor([[0.0, 0.0, width, 4.0, 0.0]])
        assigned, max_iou = RotatedATSSAssigner(topk=4)(anchors, [4], gt)
        expected = [-1, -1, -1, -1] if width == 20.0 else [-1, 0, -1, -1]
        assert assigned.tolist() == expected
        assert max_iou[1].item() == pytest.approx(0.0 if width == 20.0 else ious[1], abs=1e-6)


def test_atss_anchor_goes_to_highest_iou():
    """10 x 10 anchors at x = 0, 10, ..., 60, topk 3. gt A (20, 0, 12, 10, 0): candidates at
    20, 10, 30 with IoUs 100/120, 10/210, 10/210, threshold 0.3095 + 0.4536 = 0.7631: the
    anchor at 20 (0.8333). gt B (21, 0, 10, 14, 0): candidates 20, 30, 10 with IoUs 90/150,
    10/230, 0, threshold 0.2145 + 0.3346 = 0.5491: the anchor at 20 (0.6). Both want it: A wins
    by IoU, whatever the order; two copies of A: the first."""
    anchors = torch.tensor([[x, 0.0, 10.0, 10.0, 0.0] for x in range(0, 70, 10)])
    a = [20.0, 0.0, 12.0, 10.0, 0.0]
    b = [21.0, 0.0, 10.0, 14.0, 0.0]
    atss = RotatedATSSAssigner(topk=3)
    for gts, winner in (([a], 0), ([b], 0), ([a, b], 0), ([b, a], 1), ([a, a], 0), ([b, b], 0)):
        assigned, max_iou = atss(anchors, [7], torch.tensor(gts))
        assert assigned.tolist() == [-1, -1, winner, -1, -1, -1, -1], gts
        best = 0.6 if gts == [b] or gts == [b, b] else 100 / 120
        assert max_iou.tolist() == pytest.approx([0, 0, best, 0, 0, 0, 0], abs=1e-6)


def test_atss_equidistant_anchors_lower_index_first():
    """The gt centre (8, 8) is the corner shared by four 8 px cells of an 8 x 8 grid: the
    anchors at (4, 4), (12, 4), (4, 12), (12, 12) (indices 0, 1, 8, 9) are equidistant; topk 2
    takes 0 and 1, topk 3 adds 8. Far off to the left, (-500, 3) is nearest to the column x = 4:
    indices 0, 8, 16 (another column costs >= 8000 px^2, another row 288)."""
    grid = [[x * 8.0 + 4, y * 8.0 + 4, 16.0, 16.0, 0.0] for y in range(8) for x in range(8)]
    anchors = torch.tensor(grid)
    gt = torch.tensor([[8.0, 8.0, 16.0, 16.0, 0.0]])
    atss = RotatedATSSAssigner(topk=2)
    assert atss._candidates(anchors[:, :2], [64], gt[:, :2]).tolist() == [[0, 1]]
    atss = RotatedATSSAssigner(topk=3, max_pairs_per_chunk=5)
    assert atss._candidates(anchors[:, :2], [64], gt[:, :2]).tolist() == [[0, 1, 8]]
    # the far query falls back to all anchors (its window holds fewer than 3)
    near_far = atss._nearest(anchors[:, :2], torch.tensor([[8.0, 8.0], [-500.0, 3.0]]), 3)
    assert near_far.tolist() == [[0, 1, 8], [0, 8, 16]]
    for topk in (2, 3, 4, 5):
        got = RotatedATSSAssigner(topk=topk)(anchors, [64], gt)
        ref = reference_atss(anchors, [64], gt, topk=topk)
        assert torch.equal(got[0], ref[0])


def test_atss_short_and_empty_levels():
    """Levels with fewer anchors than topk use them all, an empty level is skipped."""
    gen = torch.Generator().manual_seed(4)
    anchors = torch.cat(
        [
            torch.tensor(
                [[x * 8.0 + 4, y * 8.0 + 4, 32.0, 32.0, 0.0] for y in range(8) for x in range(8)]
            ),
            torch.tensor([[20.0, 20.0, 64.0, 64.0, 0.0], [44.0, 44.0, 64.0, 64.0, 0.0]]),
        ]
    )
    counts = [64, 0, 2]
    gts = random_gt(6, 64, gen, min_side=10, max_side=60)
    for topk in (9, 1, 70):
        got = RotatedATSSAssigner(topk=topk)(anchors, counts, gts)
        ref = reference_atss(anchors, counts, gts, topk=topk)
        assert torch.equal(got[0], ref[0])
        torch.testing.assert_close(got[1].double(), ref[1], rtol=0, atol=1e-6)
    assert (RotatedATSSAssigner(topk=9)(anchors, counts, gts)[0] >= 0).any()


def test_atss_empty():
    anchors = torch.tensor([[4.0, 4.0, 32.0, 32.0, 0.0]] * 3)
    assigned, max_iou = RotatedATSSAssigner()(anchors, [3], torch.zeros(0, 5))
    assert assigned.tolist() == [-1, -1, -1] and max_iou.tolist() == [0.0, 0.0, 0.0]
    assigned, max_iou = RotatedATSSAssigner()(anchors[:0], [0, 0], torch.ones(2, 5))
    assert assigned.shape == (0,) and max_iou.shape == (0,)


@pytest.mark.parametrize("seed", [0, 1])
def test_atss_matches_loop_reference(seed):
    gen = torch.Generator().manual_seed(seed)
    strides_l = [8, 16, 32, 64]
    points, counts = grid_points(384, strides_l)
    sizes = torch.tensor([4.0 * s for s in strides_l]).repeat_interleave(torch.tensor(counts))
    anchors = torch.cat([points, sizes[:, None], sizes[:, None], torch.zeros(len(sizes), 1)], 1)
    gts = random_gt(60, 384, gen, min_side=6.0, max_side=250.0)
    ref_assigned, ref_iou = reference_atss(anchors, counts, gts)
    assert (ref_assigned >= 0).sum() > 100 and len(set(ref_assigned.tolist())) > 40
    for chunk in (2**22, 1000, 1):
        assigned, max_iou = RotatedATSSAssigner(max_pairs_per_chunk=chunk)(anchors, counts, gts)
        assert torch.equal(assigned, ref_assigned)
        torch.testing.assert_close(max_iou.double(), ref_iou, rtol=0, atol=1e-6)


def test_atss_circumscribed_horizontal_boxes():
    """assign_by_circumhbbox=True equals the default on the enclosing horizontal boxes; on
    axis-aligned gts the two agree."""
    gen = torch.Generator().manual_seed(6)
    strides_l = [8, 16, 32]
    points, counts = grid_points(256, strides_l)
    sizes = torch.tensor([4.0 * s for s in strides_l]).repeat_interleave(torch.tensor(counts))
    anchors = torch.cat([points, sizes[:, None], sizes[:, None], torch.zeros(len(sizes), 1)], 1)
    gts = random_gt(30, 256, gen, min_side=8.0)
    r = torch.deg2rad(gts[:, 4].double())
    c, s = r.cos().abs(), r.sin().abs()
    w, h = gts[:, 2].double(), gts[:, 3].double()
    hboxes = torch.stack([gts[:, 0], gts[:, 1], c * w + s * h, s * w + c * h, 0 * w], 1).float()
    by_hbox = RotatedATSSAssigner(assign_by_circumhbbox=True)(anchors, counts, gts)
    plain = RotatedATSSAssigner()(anchors, counts, hboxes)
    assert torch.equal(by_hbox[0], plain[0])
    torch.testing.assert_close(by_hbox[1], plain[1], rtol=0, atol=1e-5)
    assert not torch.equal(by_hbox[0], RotatedATSSAssigner()(anchors, counts, gts)[0])
    axis = gts.clone()
    axis[:, 4] = 90.0
    assert torch.equal(
        RotatedATSSAssigner(assign_by_circumhbbox=True)(anchors, counts, axis)[0],
        RotatedATSSAssigner()(anchors, counts, axis)[0],
    )


def test_atss_bad_input():
    anchors = torch.zeros(5, 5)
    with pytest.raises(ValueError, match=r"num_anchors_per_level \[2, 2\] must be >= 0 and sum"):
        RotatedATSSAssigner()(anchors, [2, 2], torch.ones(1, 5))
    with pytest.raises(ValueError, match=r"gt_boxes\[0\] = \[1.0, 1.0, -1.0, 1.0, 1.0\]"):
        RotatedATSSAssigner()(anchors, [5], torch.tensor([[1.0, 1.0, -1.0, 1.0, 1.0]]))
    with pytest.raises(ValueError, match=r"anchors must have shape \[A, 5\]"):
        RotatedATSSAssigner()(torch.zeros(5, 4), [5], torch.ones(1, 5))
    anchors[3, 2] = math.nan
    with pytest.raises(
        ValueError, match=r"anchors\[3\] = \[0.0, 0.0, nan, 0.0, 0.0\] is not finite"
    ):
        RotatedATSSAssigner()(anchors, [5], torch.ones(1, 5))
    with pytest.raises(ValueError, match="topk must be >= 1"):
        RotatedATSSAssigner(topk=0)


# ---------------------------------------------------------------------------------------------
# The shared search for points near boxes


@pytest.mark.parametrize("seed", [0, 1])
def test_window_runs_hold_each_point_in_the_window_once(seed):
    from rotated_det.modeling.assigners._common import run_chunks, window_runs

    gen = torch.Generator().manual_seed(seed)
    points = torch.cat(
        [
            torch.rand(400, 2, generator=gen) * 100,
            torch.randint(0, 10, (200, 2), generator=gen).float() * 10,  # a grid, repeated points
        ]
    )
    centre = torch.rand(50, 2, generator=gen) * 140 - 20
    half = torch.rand(50, 2, generator=gen) * 30
    lower, upper = centre - half, centre + half
    order, start, length, window = window_runs(points, lower, upper)
    pairs = list(run_chunks(length, 64))
    run = torch.cat([p[0] for p in pairs])
    pt = order[start[run] + torch.cat([p[1] for p in pairs])]
    for g in range(50):
        listed = pt[window[run] == g].tolist()
        assert len(listed) == len(set(listed))  # no point twice
        inside = ((points >= lower[g]) & (points <= upper[g])).all(dim=1).nonzero()[:, 0]
        assert set(inside.tolist()) <= set(listed)
        assert len(listed) <= 3 * len(inside) + 40  # a superset, but not all points


def test_nearest_matches_brute_force():
    """Grid, clustered and scattered points (the cluster makes most windows too small, so both
    the window and the all-points path run): the k nearest, lower index first among ties."""
    gen = torch.Generator().manual_seed(7)
    grid = torch.stack(torch.meshgrid(torch.arange(20), torch.arange(20), indexing="ij"), -1)
    points = torch.cat(
        [
            grid.reshape(-1, 2).float() * 8 + 4,
            torch.randn(300, 2, generator=gen) * 3 + 500,
            torch.rand(50, 2, generator=gen) * 600,
        ]
    )
    queries = torch.cat([torch.rand(200, 2, generator=gen) * 640 - 20, grid[:5, 0].float() * 8])
    for k in (1, 9, 40):
        got = RotatedATSSAssigner(topk=k, max_pairs_per_chunk=3000)._nearest(points, queries, k)
        d2 = (points[None, :, 0] - queries[:, None, 0]) ** 2
        d2 = d2 + (points[None, :, 1] - queries[:, None, 1]) ** 2
        assert torch.equal(got, torch.argsort(d2, dim=1, stable=True)[:, :k])

"""box_iou_rotated / pairwise_iou_rotated against shapely polygons and hand-worked cases."""

import math

import numpy as np
import pytest
import shapely
import torch

from rotated_det.layers import box_iou_rotated, pairwise_iou_rotated


def _corners(box):
    """4 corners of (cx, cy, w, h, angle_deg), computed in float64 from the box convention."""
    cx, cy, w, h, a = (float(v) for v in box)
    t = math.radians(a)
    u = (w / 2 * math.cos(t), -w / 2 * math.sin(t))
    v = (h / 2 * math.sin(t), h / 2 * math.cos(t))
    return [
        (cx + u[0] + v[0], cy + u[1] + v[1]),
        (cx - u[0] + v[0], cy - u[1] + v[1]),
        (cx - u[0] - v[0], cy - u[1] - v[1]),
        (cx + u[0] - v[0], cy + u[1] - v[1]),
    ]


def _shapely_overlap(b1, b2, mode="iou"):
    """Reference IoU (or IoF) of two boxes given as float64 sequences, with shapely.

    Both boxes are translated by the first one's centre first, so shapely works on small
    coordinates (the translation is exact for the float32 inputs used here).
    """
    b1 = [float(v) for v in b1]
    b2 = [float(v) for v in b2]
    ox, oy = b1[0], b1[1]
    b1 = [0.0, 0.0] + b1[2:]
    b2 = [b2[0] - ox, b2[1] - oy] + b2[2:]
    if min(b1[2], b1[3], b2[2], b2[3]) <= 0:
        return 0.0
    p1, p2 = shapely.Polygon(_corners(b1)), shapely.Polygon(_corners(b2))
    inter = p1.intersection(p2).area
    if mode == "iof":
        return inter / p1.area
    return inter / (p1.area + p2.area - inter)


def _random_boxes(n, gen, extent=100.0, smin=1.0, smax=60.0, dtype=torch.float64):
    xy = torch.rand(n, 2, generator=gen, dtype=torch.float64) * extent
    wh = torch.rand(n, 2, generator=gen, dtype=torch.float64) * (smax - smin) + smin
    a = torch.rand(n, 1, generator=gen, dtype=torch.float64) * 720 - 360
    return torch.cat([xy, wh, a], 1).to(dtype)


def _overlapping_pairs(n, gen, dtype=torch.float64):
    """Pairs of boxes that mostly overlap: the second box is a perturbed copy of the first."""
    b1 = _random_boxes(n, gen, extent=50.0, dtype=torch.float64)
    scale = torch.rand(n, 1, generator=gen, dtype=torch.float64) * 1.5 + 0.25
    b2 = b1.clone()
    b2[:, :2] += (torch.rand(n, 2, generator=gen, dtype=torch.float64) - 0.5) * b1[:, 2:4]
    b2[:, 2:4] *= scale
    b2[:, 4] += (torch.rand(n, generator=gen, dtype=torch.float64) - 0.5) * 120
    return b1.to(dtype), b2.to(dtype)


def test_random_pairs_match_shapely_float64():
    gen = torch.Generator().manual_seed(0)
    b1, b2 = _overlapping_pairs(3000, gen)
    got = box_iou_rotated(b1, b2, aligned=True).numpy()
    ref = np.array([_shapely_overlap(x, y) for x, y in zip(b1.tolist(), b2.tolist())])
    assert (ref > 0).mean() > 0.8  # the workload really exercises the clipping
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)


def test_random_pairs_match_shapely_float32_to_float32_precision():
    gen = torch.Generator().manual_seed(1)
    b1, b2 = _overlapping_pairs(3000, gen, dtype=torch.float32)
    got = box_iou_rotated(b1, b2, aligned=True)
    assert got.dtype == torch.float32
    # The reference sees exactly the float32 inputs; the result must be the correctly rounded
    # float32 value up to one unit in the last place.
    ref = np.array([_shapely_overlap(x, y) for x, y in zip(b1.double(), b2.double())])
    err = np.abs(got.double().numpy() - ref)
    assert err.max() <= 2.0**-24 * 1.01, err.max()


def test_pairwise_matrix_matches_shapely():
    gen = torch.Generator().manual_seed(2)
    b1 = _random_boxes(70, gen, extent=80.0)
    b2 = _random_boxes(50, gen, extent=80.0)
    got = pairwise_iou_rotated(b1, b2)
    assert got.shape == (70, 50)
    ref = np.array([[_shapely_overlap(x, y) for y in b2.tolist()] for x in b1.tolist()])
    assert (ref > 0).mean() > 0.2
    np.testing.assert_allclose(got.numpy(), ref, rtol=0, atol=1e-12)
    # The float32 path (bounding-circle rejection with float inputs) gives the same matrix.
    got32 = pairwise_iou_rotated(b1.float(), b2.float())
    ref32 = np.array(
        [[_shapely_overlap(x, y) for y in b2.float().double()] for x in b1.float().double()]
    )
    np.testing.assert_allclose(got32.double().numpy(), ref32, rtol=0, atol=2.0**-24 * 1.01)


def test_iof_and_aligned_modes():
    gen = torch.Generator().manual_seed(3)
    b1 = _random_boxes(40, gen, extent=40.0)
    b2 = _random_boxes(30, gen, extent=40.0)
    iof = box_iou_rotated(b1, b2, mode="iof")
    ref = np.array([[_shapely_overlap(x, y, "iof") for y in b2.tolist()] for x in b1.tolist()])
    np.testing.assert_allclose(iof.numpy(), ref, rtol=0, atol=1e-12)
    # aligned = the diagonal of the pairwise matrix, in both modes
    full = pairwise_iou_rotated(b1, b1)
    torch.testing.assert_close(box_iou_rotated(b1, b1, aligned=True), full.diagonal())
    full_iof = box_iou_rotated(b1[:30], b2, mode="iof")
    torch.testing.assert_close(
        box_iou_rotated(b1[:30], b2, mode="iof", aligned=True), full_iof.diagonal()
    )


# Hand-made hard cases: (box1, box2, expected IoU). Expected values are worked out by hand.
HARD_CASES = {
    "identical": ([10, 20, 30, 40, 33.0], [10, 20, 30, 40, 33.0], 1.0),
    "identical_axis_aligned": ([0, 0, 4, 2, 0], [0, 0, 4, 2, 0], 1.0),
    "nested_same_angle": ([5, 5, 10, 10, 17], [5, 5, 5, 5, 17], 0.25),
    "nested_rotated_inside": ([0, 0, 100, 100, 0], [0, 0, 10, 10, 45], 0.01),
    "shared_edge_outside": ([0, 0, 2, 2, 0], [2, 0, 2, 2, 0], 0.0),
    "shared_edge_rotated": (
        [0, 0, 2, 2, 30],
        [2 * math.cos(math.radians(30)), -2 * math.sin(math.radians(30)), 2, 2, 30],
        0.0,
    ),
    "half_shift_collinear_edges": ([0, 0, 2, 2, 0], [1, 0, 2, 2, 0], 1 / 3),
    "collinear_edges_rotated_90": ([0, 0, 4, 2, 0], [0, 0, 2, 4, 90], 1.0),
    "cross": ([0, 0, 10, 2, 0], [0, 0, 10, 2, 90], 4 / 36),
    "corner_touch": ([0, 0, 2, 2, 0], [2, 2, 2, 2, 0], 0.0),
    "wrap_180": ([3, 4, 20, 10, 179.99], [3, 4, 20, 10, -180.01], 1.0),
    "wrap_360": ([3, 4, 20, 10, 30], [3, 4, 20, 10, 390], 1.0),
    "half_turn_symmetry": ([3, 4, 20, 10, 10], [3, 4, 20, 10, 190], 1.0),
    "tiny_sub_pixel": ([0.5, 0.5, 1e-3, 1e-3, 0], [0.5 + 5e-4, 0.5, 1e-3, 1e-3, 0], 1 / 3),
    "huge_1e5": ([5e4, 5e4, 1e5, 1e5, 0], [5e4 + 5e4, 5e4, 1e5, 1e5, 0], 1 / 3),
    "huge_1e5_rotated_nested": ([0, 0, 1e5, 1e5, 0], [0, 0, 1e4, 1e4, 45], 0.01),
    "zero_width": ([0, 0, 0, 5, 0], [0, 0, 0, 5, 0], 0.0),
    "zero_both": ([0, 0, 0, 0, 0], [0, 0, 3, 3, 0], 0.0),
    "far_apart": ([0, 0, 10, 10, 0], [1e5, 1e5, 10, 10, 0], 0.0),
}


@pytest.mark.parametrize("name", sorted(HARD_CASES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_hard_cases(name, dtype):
    b1, b2, expected = HARD_CASES[name]
    t1 = torch.tensor([b1], dtype=dtype)
    t2 = torch.tensor([b2], dtype=dtype)
    if dtype == torch.float64:
        tol = 1e-12
        assert abs(_shapely_overlap(b1, b2) - expected) < 1e-9  # the hand value is right
    else:
        # float32 inputs are rounded (e.g. 0.5005, 1e-3): the exact answer is that of the
        # rounded boxes, which must be close to the hand value anyway.
        exact = _shapely_overlap(t1[0].double(), t2[0].double())
        assert abs(exact - expected) < 1e-3
        expected, tol = exact, 2.0**-24 * 1.01
    for a, b in ((t1, t2), (t2, t1)):  # symmetric
        got = pairwise_iou_rotated(a, b)
        assert got.shape == (1, 1)
        assert abs(got.item() - expected) <= tol, (name, got.item(), expected)


def test_near_parallel_edges_match_shapely():
    # Edges that differ by tiny angles: the intersection points are ill-conditioned but the area
    # is not, and must match.
    b1 = [[50.0, 50.0, 40.0, 20.0, 30.0]] * 6
    b2 = [
        [50.0 + d, 50.0 - d, 40.0, 20.0, 30.0 + e]
        for d, e in [
            (0.3, 1e-7),
            (1.0, -1e-9),
            (5.0, 1e-5),
            (0.0, 1e-12),
            (13.0, 3e-4),
            (2.0, 1e-3),
        ]
    ]
    t1, t2 = torch.tensor(b1, dtype=torch.float64), torch.tensor(b2, dtype=torch.float64)
    got = box_iou_rotated(t1, t2, aligned=True).numpy()
    ref = np.array([_shapely_overlap(x, y) for x, y in zip(b1, b2)])
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)


def test_float32_precision_traps_large_coordinates():
    # Small boxes far from the origin: a kernel that forms corners in absolute float32
    # coordinates loses most digits of the intersection. We must match the exact value of the
    # float32 inputs.
    gen = torch.Generator().manual_seed(4)
    n = 500
    centre = 1e5 * torch.rand(n, 2, generator=gen, dtype=torch.float64) + 1e4
    b1 = torch.cat(
        [
            centre,
            0.5 + torch.rand(n, 2, generator=gen, dtype=torch.float64),
            360 * torch.rand(n, 1, generator=gen, dtype=torch.float64),
        ],
        1,
    ).float()
    b2 = b1.clone()
    b2[:, :2] += 0.25
    b2[:, 4] += 10.0
    got = box_iou_rotated(b1, b2, aligned=True).double().numpy()
    ref = np.array([_shapely_overlap(x, y) for x, y in zip(b1.double(), b2.double())])
    assert (ref > 0.05).all()
    assert np.abs(got - ref).max() <= 2.0**-24 * 1.01


def test_nan_inf_and_degenerate_boxes_give_zero():
    good = torch.tensor([[0.0, 0.0, 10.0, 10.0, 0.0]])
    bad = torch.tensor(
        [
            [float("nan"), 0, 10, 10, 0],
            [0, 0, float("inf"), 10, 0],
            [0, 0, 10, 10, float("nan")],
            [float("-inf"), 0, 10, 10, 0],
            [0, 0, -10, 10, 0],
            [0, 0, 10, 0, 0],
        ]
    )
    for mode in ("iou", "iof"):
        assert torch.equal(box_iou_rotated(bad, good, mode), torch.zeros(6, 1))
        assert torch.equal(box_iou_rotated(good, bad, mode), torch.zeros(1, 6))
        assert torch.equal(box_iou_rotated(bad, bad, mode, aligned=True), torch.zeros(6))
    # a good box next to the bad ones is unaffected
    both = torch.cat([good, bad])
    assert pairwise_iou_rotated(both, both)[0, 0].item() == 1.0


def test_empty_inputs():
    e = torch.zeros(0, 5)
    b = torch.tensor([[0.0, 0.0, 1.0, 1.0, 0.0]] * 3)
    assert pairwise_iou_rotated(e, b).shape == (0, 3)
    assert pairwise_iou_rotated(b, e).shape == (3, 0)
    assert box_iou_rotated(e, e, aligned=True).shape == (0,)
    assert box_iou_rotated(e.double(), e.double()).dtype == torch.float64


def test_bad_inputs_raise_value_error():
    b = torch.zeros(3, 5)
    with pytest.raises(ValueError, match=r"\[N, 5\]"):
        pairwise_iou_rotated(torch.zeros(3, 4), b)
    with pytest.raises(ValueError, match=r"\[N, 5\]"):
        pairwise_iou_rotated(b, torch.zeros(5))
    with pytest.raises(ValueError, match="float32 or float64"):
        pairwise_iou_rotated(b.long(), b.long())
    with pytest.raises(ValueError, match="mode"):
        box_iou_rotated(b, b, mode="giou")
    with pytest.raises(ValueError, match="aligned"):
        box_iou_rotated(b, torch.zeros(2, 5), aligned=True)
    with pytest.raises(ValueError, match="torch.Tensor"):
        pairwise_iou_rotated([[0, 0, 1, 1, 0]], b)


def test_non_contiguous_inputs():
    gen = torch.Generator().manual_seed(5)
    b = _random_boxes(20, gen, extent=30.0)
    wide = torch.zeros(20, 10, dtype=torch.float64)
    wide[:, ::2] = b
    strided = wide[:, ::2]
    assert not strided.is_contiguous()
    torch.testing.assert_close(pairwise_iou_rotated(strided, b), pairwise_iou_rotated(b, b))


def _bf16_exact_boxes(n, gen):
    """Boxes whose values float16 and bfloat16 hold exactly: integers below 256."""
    xy = torch.randint(0, 96, (n, 2), generator=gen)
    wh = torch.randint(4, 48, (n, 2), generator=gen)
    a = torch.randint(-180, 180, (n, 1), generator=gen)
    return torch.cat([xy, wh, a], 1).float()


def test_half_precision_and_mixed_dtypes():
    """float16/bfloat16 boxes are widened exactly to float32 for the kernel; the result comes
    back in the promoted input dtype. Mixed dtypes widen to the larger one."""
    gen = torch.Generator().manual_seed(12)
    b1, b2 = _bf16_exact_boxes(60, gen), _bf16_exact_boxes(50, gen)
    ref = box_iou_rotated(b1, b2)
    assert 0 < int((ref > 0).sum()) < ref.numel()  # some pairs overlap, some do not
    for dtype in (torch.bfloat16, torch.float16):
        got = box_iou_rotated(b1.to(dtype), b2.to(dtype))
        assert got.dtype == dtype and torch.equal(got, ref.to(dtype))
        iof = box_iou_rotated(b1[:50].to(dtype), b2.to(dtype), mode="iof", aligned=True)
        assert torch.equal(iof, box_iou_rotated(b1[:50], b2, mode="iof", aligned=True).to(dtype))
        got = box_iou_rotated(b1.to(dtype), b2)
        assert got.dtype == torch.float32 and torch.equal(got, ref)
    got = box_iou_rotated(b1.half(), b2.bfloat16())
    assert got.dtype == torch.float32 and torch.equal(got, ref)
    # float64 wins: the float32 boxes are widened, not the float64 ones rounded
    got = box_iou_rotated(b1, b2.double())
    assert got.dtype == torch.float64
    assert torch.equal(got, box_iou_rotated(b1.double(), b2.double()))


def test_torch_jit_script_matches_eager():
    scripted_iou = torch.jit.script(box_iou_rotated)
    scripted_pairwise = torch.jit.script(pairwise_iou_rotated)
    gen = torch.Generator().manual_seed(13)
    b1, b2 = _overlapping_pairs(40, gen, dtype=torch.float32)
    for mode in ("iou", "iof"):
        for aligned in (False, True):
            assert torch.equal(
                scripted_iou(b1, b2, mode, aligned), box_iou_rotated(b1, b2, mode, aligned)
            )
    assert torch.equal(scripted_pairwise(b1, b2.double()), pairwise_iou_rotated(b1, b2.double()))
    assert torch.equal(
        scripted_pairwise(b1.bfloat16(), b2), pairwise_iou_rotated(b1.bfloat16(), b2)
    )
    # the checks run in the scripted function too, with the eager messages
    with pytest.raises(torch.jit.Error, match="mode must be 'iou' or 'iof', got 'giou'"):
        scripted_iou(b1, b2, "giou", False)
    with pytest.raises(torch.jit.Error, match=r"boxes2 must have shape \[N, 5\].*got \(3, 4\)"):
        scripted_pairwise(b1, torch.zeros(3, 4))
    with pytest.raises(torch.jit.Error, match="boxes1 must be float16, .* got torch.int64"):
        scripted_pairwise(b1.long(), b2)

"""diff_iou_rotated / diff_enclosing_area_rotated: forward against the compiled op and OpenCV,
gradcheck, finite gradients on degenerate pairs, tracing."""

import math

import cv2
import numpy as np
import pytest
import torch

from rotated_det.layers import box_iou_rotated, diff_enclosing_area_rotated, diff_iou_rotated
from rotated_det.structures import rbox_to_poly


def _boxes(n, gen, extent=50.0, smin=1.0, smax=60.0):
    xy = torch.rand(n, 2, generator=gen, dtype=torch.float64) * extent
    wh = torch.rand(n, 2, generator=gen, dtype=torch.float64) * (smax - smin) + smin
    a = torch.rand(n, 1, generator=gen, dtype=torch.float64) * 720 - 360
    return torch.cat([xy, wh, a], 1)


def _perturbed(b, gen, shift=0.5, scale=0.75, turn=120.0):
    """A copy of each box moved by up to ``shift`` times its size, resized by a factor in
    [1 - scale / 2, 1 + scale / 2] and turned by up to ``turn / 2`` degrees either way."""
    n = len(b)
    out = b.clone()
    out[:, :2] += (torch.rand(n, 2, generator=gen, dtype=b.dtype) - 0.5) * 2 * shift * b[:, 2:4]
    out[:, 2:4] *= 1 + (torch.rand(n, 2, generator=gen, dtype=b.dtype) - 0.5) * scale
    out[:, 4] += (torch.rand(n, generator=gen, dtype=b.dtype) - 0.5) * turn
    return out


def _pair_workload(gen):
    """~9000 float64 pairs of every kind: overlapping, random (mostly disjoint), identical
    (also written as (h, w, a + 90) and (w, h, a + 180)), nested, and integer boxes at multiples
    of 45 degrees whose edges and corners coincide."""
    n = 1500
    base = _boxes(n, gen)
    same_hw = base.clone()
    same_hw[:, 2], same_hw[:, 3] = base[:, 3], base[:, 2]
    same_hw[:, 4] += 90
    half_turn = base.clone()
    half_turn[:, 4] += 180
    nested = base.clone()
    nested[:, 2:4] *= 0.2 + 0.6 * torch.rand(n, 1, generator=gen, dtype=torch.float64)
    nested[:, 4] += (torch.rand(n, generator=gen, dtype=torch.float64) - 0.5) * 10
    grid1 = torch.cat(
        [
            torch.randint(0, 6, (n, 4), generator=gen).double(),
            torch.randint(-4, 5, (n, 1), generator=gen).double() * 45,
        ],
        1,
    )
    grid2 = torch.cat(
        [
            torch.randint(0, 6, (n, 4), generator=gen).double(),
            torch.randint(-4, 5, (n, 1), generator=gen).double() * 45,
        ],
        1,
    )
    grid1[:, 2:4] += 1
    grid2[:, 2:4] += 1
    b1 = torch.cat([base, _boxes(n, gen, extent=100.0), base, base, base, base, grid1])
    b2 = torch.cat(
        [_perturbed(base, gen), _boxes(n, gen, extent=100.0), base, same_hw, half_turn]
        + [nested, grid2]
    )
    return b1, b2


def test_forward_matches_compiled_op_float32_and_float64():
    gen = torch.Generator().manual_seed(0)
    b1, b2 = _pair_workload(gen)
    ref64 = box_iou_rotated(b1, b2, aligned=True)
    # the workload has disjoint, partial, nested and identical pairs
    assert (ref64 == 0).float().mean() > 0.1
    assert ((ref64 > 0) & (ref64 < 0.999)).float().mean() > 0.3
    assert (ref64 > 0.999).float().mean() > 0.25
    got64 = diff_iou_rotated(b1, b2)
    assert got64.dtype == torch.float64
    assert (got64 - ref64).abs().max() < 1e-12
    f1, f2 = b1.float(), b2.float()
    ref32 = box_iou_rotated(f1, f2, aligned=True)
    got32 = diff_iou_rotated(f1, f2)
    assert got32.dtype == torch.float32
    assert (got32 - ref32).abs().max() < 1e-5


def test_forward_float32_large_coordinates_and_thin_near_parallel_boxes():
    gen = torch.Generator().manual_seed(1)
    n = 3000
    # centres up to 1e5 px: both boxes are expressed relative to the second one's centre
    b1 = _boxes(n, gen, extent=1e5, smin=1.0, smax=100.0)
    b2 = _perturbed(b1, gen, shift=0.3, turn=40.0)
    # thin boxes (aspect up to 1000) turned by a few float32 ulps: nearly parallel long edges
    thin = torch.cat(
        [
            torch.rand(n, 2, generator=gen, dtype=torch.float64) * 20,
            torch.rand(n, 1, generator=gen, dtype=torch.float64) * 100 + 50,
            torch.rand(n, 1, generator=gen, dtype=torch.float64) * 2 + 0.1,
            torch.rand(n, 1, generator=gen, dtype=torch.float64) * 360,
        ],
        1,
    ).float()
    thin2 = thin.clone()
    ulps = torch.randint(-5, 6, (n,), generator=gen).float()
    thin2[:, 4] = thin[:, 4] + ulps * torch.finfo(torch.float32).eps * thin[:, 4].abs()
    b1 = torch.cat([b1.float(), thin])
    b2 = torch.cat([b2.float(), thin2])
    ref = box_iou_rotated(b1, b2, aligned=True)
    assert (ref > 0.9).float().mean() > 0.3
    assert (diff_iou_rotated(b1, b2) - ref).abs().max() < 1e-5


# Degenerate pairs: (box1, box2, expected IoU, expected enclosing area)
DEGENERATE = {
    "identical": ([3, 4, 6, 2, 33.0], [3, 4, 6, 2, 33.0], 1.0, 12.0),
    "identical_swapped_sides": ([3, 4, 6, 2, 33.0], [3, 4, 2, 6, 123.0], 1.0, 12.0),
    "identical_axis_aligned": ([0, 0, 4, 2, 0], [0, 0, 4, 2, 180], 1.0, 8.0),
    "nested_concentric": ([0, 0, 4, 4, 20], [0, 0, 2, 2, 20], 0.25, 16.0),
    "nested_touching_edge": ([0, 0, 4, 4, 0], [1, 0, 2, 2, 0], 0.25, 16.0),
    "shared_edge_outside": ([0, 0, 2, 2, 0], [2, 0, 2, 2, 0], 0.0, 8.0),
    "shared_edge_rotated": (
        [0, 0, 2, 2, 30],
        [2 * math.cos(math.radians(30)), -2 * math.sin(math.radians(30)), 2, 2, 30],
        0.0,
        8.0,
    ),
    "half_overlap_collinear_edges": ([0, 0, 2, 2, 0], [1, 0, 2, 2, 0], 1 / 3, 6.0),
    "corner_touch": ([0, 0, 2, 2, 0], [2, 2, 2, 2, 0], 0.0, 16.0),
    "zero_width": ([0, 0, 0, 2, 10], [0, 0, 2, 2, 0], 0.0, None),
    "zero_area_both": ([0, 0, 0, 0, 0], [1, 0, 0, 0, 0], 0.0, 0.0),
    "far_apart": ([0, 0, 2, 2, 0], [1000, 0, 2, 2, 0], 0.0, 1002 * 2),
    # the 2 x 2 square and itself turned 45 degrees: intersection a regular octagon with
    # apothem 1 (area 8 (sqrt 2 - 1)); the 8 corners form a regular octagon whose smallest
    # enclosing rectangle is a square across the flats, (2 sqrt 2 cos 22.5)**2 = 4 + 2 sqrt 2
    "octagon": (
        [0, 0, 2, 2, 0],
        [0, 0, 2, 2, 45],
        8 * (math.sqrt(2) - 1) / (8 - 8 * (math.sqrt(2) - 1)),
        4 + 2 * math.sqrt(2),
    ),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(DEGENERATE))
def test_degenerate_pairs_values_and_finite_gradients(name, dtype):
    box1, box2, iou, enclosing = DEGENERATE[name]
    b1 = torch.tensor([box1], dtype=dtype, requires_grad=True)
    b2 = torch.tensor([box2], dtype=dtype, requires_grad=True)
    tol = 1e-5 if dtype == torch.float32 else 1e-9
    got = diff_iou_rotated(b1, b2)
    assert abs(got.item() - iou) < tol
    assert abs(got.item() - box_iou_rotated(b1.detach(), b2.detach(), aligned=True).item()) < tol
    got.sum().backward()
    assert torch.isfinite(b1.grad).all() and torch.isfinite(b2.grad).all()
    b1.grad, b2.grad = None, None
    area = diff_enclosing_area_rotated(b1, b2)
    if enclosing is not None:
        assert abs(area.item() - enclosing) < tol * max(enclosing, 1.0)
    area.sum().backward()
    assert torch.isfinite(b1.grad).all() and torch.isfinite(b2.grad).all()


def test_far_apart_and_zero_width_gradients():
    far = torch.tensor([[0.0, 0, 2, 2, 0]], requires_grad=True)
    diff_iou_rotated(far, torch.tensor([[1000.0, 0, 2, 2, 0]])).sum().backward()
    assert (far.grad == 0).all()  # no overlap, no IoU gradient
    # a zero-width box inside another: IoU 0, but widening it would overlap: d IoU / d w > 0
    thin = torch.tensor([[0.0, 0, 0, 2, 0]], requires_grad=True)
    diff_iou_rotated(thin, torch.tensor([[0.0, 0, 2, 2, 0]])).sum().backward()
    assert thin.grad[0, 2] > 0


def test_invalid_boxes_give_zero_like_the_compiled_op_and_zero_gradients():
    b1 = torch.tensor(
        [[0.0, 0, 2, 2, 0], [0.0, 0, 2, 2, 0], [0.0, 0, -2, 2, 0], [float("inf"), 0, 2, 2, 0]],
        requires_grad=True,
    )
    b2 = torch.tensor(
        [[float("nan"), 0, 2, 2, 0], [0.0, 0, 2, 2, float("nan")], [0.0, 0, 2, 2, 0]]
        + [[0.0, 0, 2, 2, 0]]
    )
    got = diff_iou_rotated(b1, b2)
    torch.testing.assert_close(got, box_iou_rotated(b1.detach(), b2, aligned=True))
    assert (got == 0).all()
    (got.sum() + diff_enclosing_area_rotated(b1, b2).sum()).backward()
    assert (b1.grad == 0).all()


def _generic_pairs(n, seed):
    """Partially overlapping float64 pairs in general position (no coincident features)."""
    gen = torch.Generator().manual_seed(seed)
    b1 = _boxes(n, gen, extent=10.0, smin=5.0, smax=15.0)
    b2 = _perturbed(b1, gen, shift=0.2, scale=0.5, turn=60.0)
    return b1, b2


def test_gradcheck_float64():
    b1, b2 = _generic_pairs(12, seed=3)
    assert (box_iou_rotated(b1, b2, aligned=True) > 0.05).all()
    b1.requires_grad_()
    b2.requires_grad_()
    assert torch.autograd.gradcheck(diff_iou_rotated, (b1, b2))
    assert torch.autograd.gradcheck(diff_enclosing_area_rotated, (b1, b2))


def test_float32_gradients_match_float64_on_generic_pairs():
    b1, b2 = _generic_pairs(500, seed=4)
    grads = {}
    for dtype in (torch.float32, torch.float64):
        x1 = b1.to(dtype).requires_grad_()
        x2 = b2.to(dtype).requires_grad_()
        diff_iou_rotated(x1, x2).sum().backward()
        grads[dtype] = torch.cat([x1.grad, x2.grad], 1).double()
    torch.testing.assert_close(grads[torch.float32], grads[torch.float64], rtol=1e-3, atol=1e-4)


def test_enclosing_area_matches_opencv_min_area_rect():
    gen = torch.Generator().manual_seed(5)
    b1 = _boxes(1000, gen, extent=100.0)
    b2 = torch.cat([_boxes(500, gen, extent=100.0), _perturbed(b1[500:], gen)])
    got = diff_enclosing_area_rotated(b1, b2).numpy()
    corners = torch.cat([rbox_to_poly(b1).view(-1, 4, 2), rbox_to_poly(b2).view(-1, 4, 2)], 1)
    ref = np.array([np.prod(cv2.minAreaRect(c.numpy().astype(np.float32))[1]) for c in corners])
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    # the enclosing rectangle holds the union: C >= area1 + area2 - intersection
    iou = diff_iou_rotated(b1, b2)
    areas = b1[:, 2] * b1[:, 3] + b2[:, 2] * b2[:, 3]
    assert (torch.from_numpy(got) >= areas / (1 + iou) * (1 - 1e-9)).all()


def test_invariant_under_rigid_motion_and_symmetric():
    b1, b2 = _generic_pairs(200, seed=6)
    gen = torch.Generator().manual_seed(7)
    turn = torch.rand(200, generator=gen, dtype=torch.float64) * 360
    shift = torch.rand(200, 2, generator=gen, dtype=torch.float64) * 1000

    def move(b):
        t = torch.deg2rad(turn)
        c, s = torch.cos(t), torch.sin(t)
        # counter-clockwise on screen (y down) by `turn`: x' = c x + s y, y' = -s x + c y
        x = c * b[:, 0] + s * b[:, 1] + shift[:, 0]
        y = -s * b[:, 0] + c * b[:, 1] + shift[:, 1]
        return torch.stack([x, y, b[:, 2], b[:, 3], b[:, 4] + turn], 1)

    for fn in (diff_iou_rotated, diff_enclosing_area_rotated):
        ref = fn(b1, b2)
        torch.testing.assert_close(fn(move(b1), move(b2)), ref, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(fn(b2, b1), ref, rtol=1e-9, atol=1e-9)


def test_traced_function_matches_eager_on_other_inputs():
    b1, b2 = _generic_pairs(50, seed=8)
    traced_iou = torch.jit.trace(diff_iou_rotated, (b1.float(), b2.float()))
    traced_enc = torch.jit.trace(diff_enclosing_area_rotated, (b1.float(), b2.float()))
    gen = torch.Generator().manual_seed(9)
    c1, c2 = _pair_workload(gen)
    c1, c2 = c1[::7].float(), c2[::7].float()
    torch.testing.assert_close(traced_iou(c1, c2), diff_iou_rotated(c1, c2))
    torch.testing.assert_close(traced_enc(c1, c2), diff_enclosing_area_rotated(c1, c2))


def test_dtypes_empty_and_errors():
    b = torch.tensor([[0.0, 0, 2, 2, 0]])
    assert diff_iou_rotated(b.half(), b.bfloat16()).dtype == torch.float32
    assert diff_iou_rotated(b, b.double()).dtype == torch.float64
    empty = torch.zeros(0, 5)
    assert diff_iou_rotated(empty, empty).shape == (0,)
    assert diff_enclosing_area_rotated(empty, empty).shape == (0,)
    with pytest.raises(ValueError, match="as many boxes"):
        diff_iou_rotated(b, torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"shape \[N, 5\]"):
        diff_enclosing_area_rotated(torch.zeros(1, 4), b)

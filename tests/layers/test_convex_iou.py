"""convex_iou, convex_giou, convex_overlaps: against shapely on random and degenerate point sets,
gradcheck, finite gradients on degenerate hulls, tracing and torch.export; the compiled op that
computes them without gradients against the torch formulation."""

import sys

import numpy as np
import pytest
import torch
from shapely.geometry import MultiPoint, Polygon

from rotated_det.layers import convex_giou, convex_iou, convex_overlaps
from rotated_det.structures import rbox_to_poly


def pairs(seed: int, n: int = 300) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 point sets [7n, 9, 2] and boxes [7n, 5]: random sets around the boxes (most
    overlap), collinear sets, identical points, repeated points, the box's own corners (IoU 1),
    and integer sets against integer axis-aligned boxes (edges on edges, points on corners)."""
    gen = torch.Generator().manual_seed(seed)
    f64 = torch.float64

    def boxes(m: int) -> torch.Tensor:
        return torch.cat(
            [
                torch.rand(m, 2, generator=gen, dtype=f64) * 50 + 25,
                torch.rand(m, 2, generator=gen, dtype=f64) * 40 + 2,
                torch.rand(m, 1, generator=gen, dtype=f64) * 360 - 180,
            ],
            1,
        )

    b = boxes(6 * n)
    spread = torch.rand(6 * n, 1, 1, generator=gen, dtype=f64) * 60 + 5
    pts = b[:, None, :2] + (torch.rand(6 * n, 9, 2, generator=gen, dtype=f64) - 0.5) * spread
    sl = [slice(i * n, (i + 1) * n) for i in range(6)]
    step = (torch.rand(n, 1, 2, generator=gen, dtype=f64) - 0.5) * 30
    pts[sl[1]] = pts[sl[1], :1] + torch.rand(n, 9, 1, generator=gen, dtype=f64) * step
    pts[sl[2]] = pts[sl[2], :1]
    pts[sl[3], 5:] = pts[sl[3], :4]
    corners = rbox_to_poly(b[sl[4]]).view(n, 4, 2)
    pts[sl[4]] = torch.cat([corners, corners, corners[:, :1]], 1)
    grid_boxes = torch.cat(
        [
            torch.randint(0, 8, (n, 2), generator=gen).to(f64),
            torch.randint(1, 8, (n, 2), generator=gen).to(f64) * 2,
            torch.randint(-2, 3, (n, 1), generator=gen).to(f64) * 90,
        ],
        1,
    )
    b[sl[5]] = grid_boxes
    pts[sl[5]] = torch.randint(-4, 12, (n, 9, 2), generator=gen).to(f64)
    return pts, b


def shapely_iou_giou(pts: np.ndarray, polys: np.ndarray) -> tuple[float, float]:
    """IoU and GIoU (enclosing region: hull of both) of one point set's hull and one polygon."""
    hull = MultiPoint(pts).convex_hull
    poly = Polygon(polys)
    inter = hull.intersection(poly).area
    union = hull.area + poly.area - inter
    iou = inter / union if union > 0 else 0.0
    enclosing = MultiPoint(np.concatenate([pts, polys])).convex_hull.area
    return iou, (iou - (enclosing - union) / enclosing if enclosing > 0 else iou)


def reference(pts: torch.Tensor, boxes: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    polys = rbox_to_poly(boxes).view(-1, 4, 2).numpy()
    out = np.array([shapely_iou_giou(p, q) for p, q in zip(pts.numpy(), polys)])
    return out[:, 0], out[:, 1]


def test_iou_and_giou_match_shapely_float64_and_float32():
    pts, boxes = pairs(0)
    iou_ref, giou_ref = reference(pts, boxes)
    n = len(pts) // 6
    assert ((iou_ref[:n] > 0) & (iou_ref[:n] < 1)).mean() > 0.7  # mostly partial overlaps
    assert (iou_ref[4 * n : 5 * n] > 1 - 1e-9).all()  # the box's own corners
    iou, giou = convex_iou(pts, boxes), convex_giou(pts, boxes)
    assert iou.dtype == giou.dtype == torch.float64
    np.testing.assert_allclose(iou.numpy(), iou_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(giou.numpy(), giou_ref, rtol=0, atol=1e-12)
    iou32, giou32 = convex_iou(pts.float(), boxes.float()), convex_giou(pts.float(), boxes.float())
    assert iou32.dtype == torch.float32
    np.testing.assert_allclose(iou32.numpy(), iou_ref, rtol=0, atol=1e-5)
    np.testing.assert_allclose(giou32.numpy(), giou_ref, rtol=0, atol=1e-5)
    # half precision inputs are computed in float32
    assert convex_iou(pts[:5].half(), boxes[:5].bfloat16()).dtype == torch.float32


def test_polygons_in_either_order_and_flat_give_the_box_result():
    pts, boxes = pairs(1, n=50)
    polys = rbox_to_poly(boxes).view(-1, 4, 2)
    expected = convex_giou(pts, boxes)
    torch.testing.assert_close(convex_giou(pts, polys), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(convex_giou(pts, polys.flip(1)), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(convex_iou(pts, polys.flatten(1)), convex_iou(pts, boxes))


def test_hand_examples():
    square = torch.tensor([[[0.0, 0], [2, 0], [2, 2], [0, 2], [1, 1]]])
    # the hull (a 2 x 2 square) against the square shifted by 1: intersection 2, union 6
    box = torch.tensor([[2.0, 1, 2, 2, 0]])
    assert convex_iou(square, box).item() == pytest.approx(1 / 3)
    # enclosing region 3 x 2 = 6 = union: GIoU = IoU
    assert convex_giou(square, box).item() == pytest.approx(1 / 3)
    # far apart: IoU 0, GIoU -> -1 as the gap grows; here C = hull of both squares
    far = torch.tensor([[11.0, 1, 2, 2, 0]])
    assert convex_iou(square, far).item() == 0
    assert convex_giou(square, far).item() == pytest.approx(0 - (24 - 8) / 24)
    # touching along an edge (opposite directions): IoU 0
    touch = torch.tensor([[3.0, 1, 2, 2, 0]])
    assert convex_iou(square, touch).item() == 0


def test_degenerate_hulls_and_invalid_inputs_give_finite_gradients():
    pts, boxes = pairs(2, n=20)
    n = 20
    degenerate = torch.cat([pts[n : 3 * n], pts[5 * n :]]).clone().requires_grad_()
    b = torch.cat([boxes[n : 3 * n], boxes[5 * n :]]).clone().requires_grad_()
    for fn in (convex_iou, convex_giou):
        fn(degenerate, b).sum().backward()
        assert torch.isfinite(degenerate.grad).all() and torch.isfinite(b.grad).all()
        degenerate.grad, b.grad = None, None
    # collinear (up to rounding) and identical points have a zero-area hull: IoU 0
    assert (convex_iou(pts[n : 3 * n], boxes[n : 3 * n]).abs() < 1e-12).all()
    # a zero-size box, a negative side, NaN points and an infinite box: 0 and zero gradient
    bad_pts = pts[:4].clone()
    bad_pts[2, 3, 1] = float("nan")
    bad_pts.requires_grad_()
    bad_boxes = boxes[:4].clone()
    bad_boxes[0, 2:4] = 0
    bad_boxes[1, 3] = -1
    bad_boxes[3, 0] = float("inf")
    for fn in (convex_iou, convex_giou):
        out = fn(bad_pts, bad_boxes)
        assert (out[1:] == 0).all() and out[0].isfinite()
        out.sum().backward()
        assert (bad_pts.grad[1:] == 0).all() and torch.isfinite(bad_pts.grad).all()
        bad_pts.grad = None


def test_gradcheck_float64_in_points_and_boxes():
    gen = torch.Generator().manual_seed(3)
    n = 4
    boxes = torch.cat(
        [
            torch.rand(n, 2, generator=gen, dtype=torch.float64) * 10,
            torch.rand(n, 2, generator=gen, dtype=torch.float64) * 5 + 5,
            torch.rand(n, 1, generator=gen, dtype=torch.float64) * 360,
        ],
        1,
    )
    pts = boxes[:, None, :2] + (torch.rand(n, 9, 2, generator=gen, dtype=torch.float64) - 0.5) * 12
    assert ((convex_iou(pts, boxes) > 0.2) & (convex_iou(pts, boxes) < 0.95)).all()
    pts.requires_grad_()
    boxes.requires_grad_()
    assert torch.autograd.gradcheck(convex_iou, (pts, boxes))
    assert torch.autograd.gradcheck(convex_giou, (pts, boxes), fast_mode=True)
    # disjoint pairs: GIoU still pulls the points towards the box
    far = (pts.detach() + 30).requires_grad_()
    assert torch.autograd.gradcheck(convex_giou, (far, boxes), fast_mode=True)


def test_giou_loss_moves_points_onto_the_box():
    box = torch.tensor([[20.0, 10, 12, 4, 30]])
    pts = (torch.randn(1, 9, 2, generator=torch.Generator().manual_seed(4)) * 3).requires_grad_()
    opt = torch.optim.Adam([pts], lr=0.5)
    for _ in range(300):
        opt.zero_grad()
        (1 - convex_giou(pts, box)).sum().backward()
        opt.step()
    # from IoU 0 (points around the origin, box at (20, 10)): 0.93-0.97 over seeds 0-4
    assert convex_iou(pts.detach(), box).item() > 0.85


@pytest.mark.parametrize("formulation", ["compiled", "torch"])
def test_overlaps_match_aligned_iou_and_shapely_and_traced_dense_path(formulation, request):
    if formulation == "torch":
        request.getfixturevalue("torch_formulation")
    pts, boxes = pairs(5, n=40)
    gts = boxes[::9]
    got = convex_overlaps(pts, gts)
    assert got.shape == (len(pts), len(gts)) and got.dtype == torch.float64
    n, g = got.shape
    aligned = convex_iou(pts.repeat_interleave(g, 0), gts.repeat(n, 1)).view(n, g)
    torch.testing.assert_close(got, aligned, rtol=0, atol=1e-12)
    assert (got > 0).float().mean() > 0.01
    sub = rbox_to_poly(gts).view(-1, 4, 2).numpy()
    for i in range(0, n, 13):
        ref = [shapely_iou_giou(pts[i].numpy(), q)[0] for q in sub]
        np.testing.assert_allclose(got[i].numpy(), ref, atol=1e-12)
    # polygons (as [G, 8]) give the same matrix; empty inputs give empty matrices
    polys = rbox_to_poly(gts)
    torch.testing.assert_close(convex_overlaps(pts, polys), got, rtol=0, atol=1e-12)
    assert convex_overlaps(pts[:0], gts).shape == (0, g)
    assert convex_overlaps(pts, gts[:0]).shape == (n, 0)
    # the traced graph agrees (the torch formulation: every pair, no bounding-box filter)
    traced = torch.jit.trace(convex_overlaps, (pts[:7].float(), gts[:3].float()))
    torch.testing.assert_close(traced(pts.float(), gts.float()), got.float(), rtol=0, atol=1e-5)


@pytest.fixture
def torch_formulation(monkeypatch):
    """convex_iou / convex_overlaps on their torch formulation (the compiled op disabled)."""
    module = sys.modules["rotated_det.layers.convex_iou"]
    monkeypatch.setattr(module, "_compiled_iou", lambda *args, **kwargs: None)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_compiled_op_equals_torch_formulation(dtype, request):
    """Without gradients, convex_iou and convex_overlaps run on the compiled op (hull clipping in
    float64): the same values as the differentiable torch formulation (within 1e-9 in float64,
    1e-5 in float32) on random, degenerate and grid cases, boxes and polygons in either
    orientation (padded with repeated vertices), invalid boxes and non-finite points."""
    pts, boxes = pairs(8, n=60)
    pts, boxes = pts.to(dtype), boxes.to(dtype)
    boxes[:5, 2] = -1.0  # invalid box
    boxes[5:10, 3] = 0.0  # no area
    pts[10:15, 3, 0] = float("nan")
    polys = rbox_to_poly(boxes).view(-1, 4, 2)
    polys_cw = torch.cat([polys.flip(1), polys[:, :1]], 1)  # other orientation, a repeat
    gts = boxes[::7]
    compiled = [convex_iou(pts, boxes), convex_iou(pts, polys_cw), convex_overlaps(pts, gts)]
    compiled.append(convex_overlaps(pts, rbox_to_poly(gts).view(-1, 4, 2).flip(1)))
    request.getfixturevalue("torch_formulation")
    reference = [convex_iou(pts, boxes), convex_iou(pts, polys_cw), convex_overlaps(pts, gts)]
    reference.append(convex_overlaps(pts, rbox_to_poly(gts).view(-1, 4, 2).flip(1)))
    atol = 1e-9 if dtype == torch.float64 else 1e-5
    for got, expected in zip(compiled, reference):
        assert got.dtype == dtype
        torch.testing.assert_close(got, expected, rtol=0, atol=atol)
    assert bool((compiled[0][:15] == 0).all())
    assert (compiled[0] > 0.5).float().mean() > 0.1 and (compiled[2] > 0).float().mean() > 0.01


def test_compiled_op_runs_without_gradient_only():
    """With gradients the torch formulation runs (its autograd): same values as without;
    more than 64 points also take it."""
    pts, boxes = pairs(9, n=20)
    req = pts.clone().requires_grad_()
    iou = convex_iou(req, boxes)
    assert iou.grad_fn is not None
    torch.testing.assert_close(iou.detach(), convex_iou(pts, boxes), rtol=0, atol=1e-9)
    many = torch.cat([pts, pts.flip(1)] * 4, 1)  # 72 points, the same hulls
    torch.testing.assert_close(convex_iou(many, boxes), convex_iou(pts, boxes), rtol=0, atol=1e-9)


def test_traced_iou_giou_match_eager_on_other_counts():
    pts, boxes = (t.float() for t in pairs(6, n=10))
    other_pts, other_boxes = (t.float() for t in pairs(7, n=17))
    for fn in (convex_iou, convex_giou):
        traced = torch.jit.trace(fn, (pts, boxes))
        torch.testing.assert_close(traced(other_pts, other_boxes), fn(other_pts, other_boxes))


@pytest.mark.slow  # torch.export traces three unrolled hull walks: ~35 s on a busy 2-core CPU
def test_exported_giou_and_overlaps_match_eager_on_other_counts():
    pts, boxes = (t.float() for t in pairs(6, n=10))
    other_pts, other_boxes = (t.float() for t in pairs(7, n=17))

    class Loss(torch.nn.Module):
        def forward(self, points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
            return convex_giou(points, boxes)

    class Overlaps(torch.nn.Module):
        def forward(self, points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
            return convex_overlaps(points, boxes)

    n, g = torch.export.Dim("n"), torch.export.Dim("g")
    ep = torch.export.export(Loss(), (pts, boxes), dynamic_shapes=({0: n}, {0: n}))
    torch.testing.assert_close(ep.module()(other_pts, other_boxes), Loss()(other_pts, other_boxes))
    ep = torch.export.export(Overlaps(), (pts, boxes[:5]), dynamic_shapes=({0: n}, {0: g}))
    torch.testing.assert_close(
        ep.module()(other_pts, other_boxes[:9]),
        convex_overlaps(other_pts, other_boxes[:9]),
        rtol=0,
        atol=1e-5,
    )


def test_errors_name_the_argument():
    pts, boxes = torch.zeros(3, 9, 2), torch.zeros(3, 5)
    with pytest.raises(ValueError, match="as many sets"):
        convex_iou(pts, torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"convex_giou: points must have shape \[N, K, 2\]"):
        convex_giou(torch.zeros(3, 2), boxes)
    with pytest.raises(ValueError, match=r"boxes/polygons must be rotated boxes \[G, 5\]"):
        convex_overlaps(pts, torch.zeros(3, 3))
    with pytest.raises(ValueError, match="floating-point"):
        convex_iou(pts, boxes.long())

"""points_in_rotated_boxes / point_offsets_in_box_frame / cos_sin_degrees against hand-worked
examples, a polygon half-plane reference, exact borders and frame invariances."""

import math

import pytest
import torch

from rotated_det.structures import (
    cos_sin_degrees,
    point_offsets_in_box_frame,
    points_in_rotated_boxes,
)


def reference_inside(points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """[P, G] bool by the polygon: the corners c0..c3 (c +- w/2 u +- h/2 v, u = (cos a, -sin a),
    v = (sin a, cos a)) in order, and the point on the inner side of (or on) every edge, i.e.
    all four cross products (c_{i+1} - c_i) x (p - c_i) of one sign or zero. float64."""
    out = torch.zeros(points.shape[0], boxes.shape[0], dtype=torch.bool)
    p = points.double()
    for g, (cx, cy, w, h, a) in enumerate(boxes.double().tolist()):
        r = math.radians(a)
        u = (math.cos(r), -math.sin(r))
        v = (math.sin(r), math.cos(r))
        corners = [
            (cx + su * w / 2 * u[0] + sv * h / 2 * v[0], cy + su * w / 2 * u[1] + sv * h / 2 * v[1])
            for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1))
        ]
        crosses = []
        for i in range(4):
            (x0, y0), (x1, y1) = corners[i], corners[(i + 1) % 4]
            crosses.append((x1 - x0) * (p[:, 1] - y0) - (y1 - y0) * (p[:, 0] - x0))
        c = torch.stack(crosses, dim=1)
        out[:, g] = (c >= 0).all(dim=1) | (c <= 0).all(dim=1)
    return out


def random_boxes(n: int, gen: torch.Generator) -> torch.Tensor:
    return torch.cat(
        [
            torch.rand(n, 2, generator=gen, dtype=torch.float64) * 100,
            torch.rand(n, 2, generator=gen, dtype=torch.float64) * 40 + 1,
            torch.rand(n, 1, generator=gen, dtype=torch.float64) * 720 - 360,
        ],
        dim=1,
    )


def test_hand_worked_quarter_turn():
    # (50, 50, 20, 6, 90): u = (0, -1) (w-axis up), v = (1, 0); covers x in [47, 53], y in [40, 60]
    box = torch.tensor([[50.0, 50.0, 20.0, 6.0, 90.0]])
    points = torch.tensor([[52.0, 41.0], [53.0, 60.0], [54.0, 50.0], [50.0, 39.0], [50.0, 40.0]])
    off = point_offsets_in_box_frame(points, box)[:, 0]
    expected = torch.tensor([[9.0, 2.0], [-10.0, 3.0], [0.0, 4.0], [11.0, 0.0], [10.0, 0.0]])
    assert torch.equal(off, expected)  # exact at 90 degrees
    inside = points_in_rotated_boxes(points, box)[:, 0]
    assert inside.tolist() == [True, True, False, False, True]  # corner and top side: inside


def test_hand_worked_thirty_degrees():
    # (10, 20, 8, 4, 30): u = (cos 30, -sin 30) = (0.866, -0.5), v = (0.5, 0.866)
    box = torch.tensor([[10.0, 20.0, 8.0, 4.0, 30.0]], dtype=torch.float64)
    c = torch.tensor([10.0, 20.0], dtype=torch.float64)
    u = torch.tensor([math.sqrt(3) / 2, -0.5], dtype=torch.float64)
    v = torch.tensor([0.5, math.sqrt(3) / 2], dtype=torch.float64)
    points = torch.stack([c + 3.9 * u + 1.9 * v, c + 4.1 * u, c - 2.1 * v, c - 3 * u - 1 * v])
    off = point_offsets_in_box_frame(points, box)[:, 0]
    expected = torch.tensor(
        [[3.9, 1.9], [4.1, 0.0], [0.0, -2.1], [-3.0, -1.0]], dtype=torch.float64
    )
    torch.testing.assert_close(off, expected, rtol=0, atol=1e-12)
    assert points_in_rotated_boxes(points, box)[:, 0].tolist() == [True, False, False, True]
    # the point c + 3 u: right of the centre and up (smaller y) on screen, as u rises to the right
    assert points[0, 0] > 10 and points[0, 1] < 20


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_against_polygon_reference(dtype):
    gen = torch.Generator().manual_seed(0)
    boxes = random_boxes(60, gen)
    points = torch.rand(2000, 2, generator=gen, dtype=torch.float64) * 120 - 10
    ref = reference_inside(points, boxes)
    got = points_in_rotated_boxes(points.to(dtype), boxes.to(dtype))
    # points within rounding distance of a side may go either way: compare the others
    off = point_offsets_in_box_frame(points, boxes).abs()
    margin = (off - boxes[:, 2:4] / 2).abs().min(dim=-1).values
    clear = margin > (1e-3 if dtype == torch.float32 else 1e-9)
    assert clear.float().mean() > 0.99
    assert torch.equal(got[clear], ref[clear])
    assert 0.02 < ref.float().mean() < 0.5  # the scene has points inside and outside


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("angle", [0.0, 90.0, -90.0, 180.0, -180.0, 270.0, 360.0, 450.0])
def test_borders_exact_at_quarter_turns(dtype, angle):
    box = torch.tensor([[30.25, 40.5, 12.5, 5.0, angle]], dtype=dtype)
    # the same rectangle whatever the quarter turn: its horizontal extent
    wide = round(angle / 90) % 2 == 0
    hx, hy = (6.25, 2.5) if wide else (2.5, 6.25)
    x0, x1, y0, y1 = 30.25 - hx, 30.25 + hx, 40.5 - hy, 40.5 + hy
    on = torch.tensor([[x0, 40.5], [x1, 40.5], [30.25, y0], [30.25, y1], [x0, y0], [x1, y1]])
    eps = 1e-3
    off = torch.tensor([[x0 - eps, 40.5], [x1 + eps, 40.5], [30.25, y0 - eps], [30.25, y1 + eps]])
    assert points_in_rotated_boxes(on.to(dtype), box).all()
    assert not points_in_rotated_boxes(off.to(dtype), box).any()


def test_cos_sin_degrees():
    a = torch.tensor([0.0, 90.0, -90.0, 180.0, -180.0, 270.0, 360.0, -450.0], dtype=torch.float64)
    cos, sin = cos_sin_degrees(a)
    assert cos.tolist() == [1.0, 0.0, 0.0, -1.0, -1.0, 0.0, 1.0, 0.0]
    assert sin.tolist() == [0.0, 1.0, -1.0, 0.0, 0.0, -1.0, 0.0, -1.0]
    b = torch.linspace(-1000, 1000, 10001, dtype=torch.float64)
    cos, sin = cos_sin_degrees(b)
    torch.testing.assert_close(cos, torch.cos(torch.deg2rad(b)), rtol=0, atol=1e-12)
    torch.testing.assert_close(sin, torch.sin(torch.deg2rad(b)), rtol=0, atol=1e-12)
    nan = cos_sin_degrees(torch.tensor([math.nan, math.inf]))
    assert torch.isnan(nan[0]).all() and torch.isnan(nan[1]).all()


def test_representations_of_one_rectangle_agree():
    gen = torch.Generator().manual_seed(1)
    boxes = random_boxes(40, gen)
    cx, cy, w, h, a = boxes.unbind(1)
    others = [
        torch.stack([cx, cy, h, w, a + 90], dim=1),
        torch.stack([cx, cy, h, w, a - 90], dim=1),
        torch.stack([cx, cy, w, h, a + 180], dim=1),
    ]
    points = torch.rand(3000, 2, generator=gen, dtype=torch.float64) * 120 - 10
    base = points_in_rotated_boxes(points, boxes)
    for other in others:
        assert (points_in_rotated_boxes(points, other) != base).sum() <= 2  # border rounding


def test_rotating_the_scene_keeps_offsets():
    """Turning points and boxes together about the origin (counter-clockwise on screen by t:
    (x, y) -> (x cos t + y sin t, -x sin t + y cos t) with y down) and adding t to the box
    angles leaves the box-frame offsets unchanged; translating leaves them unchanged too."""
    gen = torch.Generator().manual_seed(2)
    boxes = random_boxes(30, gen)
    points = torch.rand(500, 2, generator=gen, dtype=torch.float64) * 120 - 10
    base = point_offsets_in_box_frame(points, boxes)
    t = math.radians(37.0)
    rot = torch.tensor(
        [[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]], dtype=torch.float64
    )
    turned = boxes.clone()
    turned[:, :2] = boxes[:, :2] @ rot
    turned[:, 4] += 37.0
    torch.testing.assert_close(point_offsets_in_box_frame(points @ rot, turned), base)
    shift = torch.tensor([13.5, -7.25], dtype=torch.float64)
    moved = boxes.clone()
    moved[:, :2] += shift
    torch.testing.assert_close(point_offsets_in_box_frame(points + shift, moved), base)


def test_aligned_is_the_diagonal():
    gen = torch.Generator().manual_seed(3)
    boxes = random_boxes(50, gen)
    points = boxes[:, :2] + torch.randn(50, 2, generator=gen, dtype=torch.float64) * 15
    full = point_offsets_in_box_frame(points, boxes)
    idx = torch.arange(50)
    assert torch.equal(point_offsets_in_box_frame(points, boxes, aligned=True), full[idx, idx])
    inside = points_in_rotated_boxes(points, boxes)
    assert torch.equal(points_in_rotated_boxes(points, boxes, aligned=True), inside[idx, idx])
    assert 0 < inside[idx, idx].sum() < 50


def test_degenerate_and_empty():
    points = torch.tensor([[0.0, 0.0], [1.0, 0.0], [math.nan, 0.0]])
    boxes = torch.tensor(
        [
            [0.0, 0.0, 4.0, 0.0, 0.0],  # a segment: holds the points on it
            [0.0, 0.0, -2.0, 2.0, 0.0],  # negative side: nothing
            [math.nan, 0.0, 2.0, 2.0, 0.0],  # NaN: nothing
            [0.0, 0.0, 2.0, 2.0, math.nan],
        ]
    )
    inside = points_in_rotated_boxes(points, boxes)
    assert inside.tolist() == [
        [True, False, False, False],
        [True, False, False, False],
        [False] * 4,
    ]
    assert points_in_rotated_boxes(points, boxes[:0]).shape == (3, 0)
    assert points_in_rotated_boxes(points[:0], boxes).shape == (0, 4)
    assert point_offsets_in_box_frame(points[:0], boxes).shape == (0, 4, 2)
    # integer points are taken as float32
    assert point_offsets_in_box_frame(torch.tensor([[1, 2]]), boxes[:1].long()).dtype == (
        torch.float32
    )


def test_bad_input():
    boxes = torch.zeros(3, 5)
    with pytest.raises(ValueError, match=r"points must have shape \[P, 2\]"):
        points_in_rotated_boxes(torch.zeros(4, 3), boxes)
    with pytest.raises(ValueError, match=r"boxes must have shape \[G, 5\]"):
        point_offsets_in_box_frame(torch.zeros(4, 2), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="aligned=True needs as many points as boxes"):
        points_in_rotated_boxes(torch.zeros(4, 2), boxes, aligned=True)

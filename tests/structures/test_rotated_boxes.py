"""RotatedBoxes (Detectron2 semantics) and pairwise_iou_rotated against shapely."""

import math

import numpy as np
import pytest
import torch
from shapely.geometry import Polygon

from rotated_det.structures import (
    RotatedBoxes,
    pairwise_iou_rotated,
    rbox_corner_distance,
    rbox_to_poly,
)
from rotated_det.structures import rotated_boxes as rotated_boxes_module


def test_construction_and_container_behaviour():
    b = RotatedBoxes([[5, 5, 4, 2, 30], [10, 0, 6, 6, -90], [0, 0, 0, 3, 0]])
    assert b.tensor.dtype == torch.float32 and b.tensor.shape == (3, 5) and len(b) == 3
    assert RotatedBoxes(np.zeros((2, 5))).tensor.shape == (2, 5)
    assert RotatedBoxes(torch.zeros(0)).tensor.shape == (0, 5)
    assert RotatedBoxes([]).tensor.shape == (0, 5)
    with pytest.raises(ValueError, match="Nx5"):
        RotatedBoxes(torch.zeros(2, 4))
    assert b.area().tolist() == [8, 36, 0]
    assert b.nonempty().tolist() == [True, True, False]
    assert b.nonempty(threshold=5).tolist() == [False, True, False]
    assert b.get_centers().tolist() == [[5, 5], [10, 0], [0, 0]]
    # indexing: int keeps a 1x5 matrix, slices/masks/index tensors select rows
    assert b[1].tensor.tolist() == [[10, 0, 6, 6, -90]]
    assert b[-1].tensor.shape == (1, 5)
    assert b[1:].tensor.shape == (2, 5)
    assert b[torch.tensor([True, False, True])].tensor[:, 0].tolist() == [5, 0]
    assert b[torch.tensor([2, 0])].tensor[:, 0].tolist() == [0, 5]
    assert isinstance(b[0:1], RotatedBoxes)
    rows = list(b)
    assert len(rows) == 3 and rows[0].shape == (5,) and rows[1].tolist() == [10, 0, 6, 6, -90]
    c = b.clone()
    c.tensor[0, 0] = 99
    assert b.tensor[0, 0] == 5
    assert b.to("cpu").device == torch.device("cpu") and b.device.type == "cpu"
    assert isinstance(b.to(torch.device("cpu")), RotatedBoxes)
    cat = RotatedBoxes.cat([b, b[:1]])
    assert isinstance(cat, RotatedBoxes) and len(cat) == 4
    assert len(RotatedBoxes.cat([])) == 0
    assert repr(b[0]).startswith("RotatedBoxes(tensor(")


def test_normalize_angles():
    b = RotatedBoxes([[0, 0, 2, 1, a] for a in (-180, 180, 190, -190, 540, 359.5, 0, -0.5)])
    t = b.tensor
    b.normalize_angles()
    assert b.tensor is t  # in place
    assert b.tensor[:, 4].tolist() == pytest.approx([-180, -180, -170, 170, -180, -0.5, 0, -0.5])
    assert (b.tensor[:, 4] >= -180).all() and (b.tensor[:, 4] < 180).all()


def test_clip_hand_examples():
    """Detectron2's semantics: only boxes within the angle threshold of horizontal are clipped
    (after normalising angles to [-180, 180)), as horizontal boxes; the angle is kept."""
    b = RotatedBoxes(
        [
            [5, 5, 20, 4, 0],  # sticks out left and right
            [8, 8, 10, 10, 0.5],  # bottom-right corner out, within 1 degree
            [8, 8, 10, 10, 30],  # rotated: untouched
            [8, 8, 10, 10, 359.5],  # -0.5 after normalising: clipped
            [8, 8, 10, 10, 180],  # -180 after normalising: not "horizontal" by the rule
            [-10, 5, 4, 4, 0],  # fully outside: zero width
            [5, 5, 2, 2, 0],  # inside: unchanged
            [8, 8, 10, 10, 5],  # 5 degrees: out of the default threshold
        ]
    )
    b.clip((10, 10))
    expected = [
        [5, 5, 10, 4, 0],
        [6.5, 6.5, 7, 7, 0.5],
        [8, 8, 10, 10, 30],
        [6.5, 6.5, 7, 7, -0.5],
        [8, 8, 10, 10, -180],
        [0, 5, 0, 4, 0],
        [5, 5, 2, 2, 0],
        [8, 8, 10, 10, 5],
    ]
    assert torch.allclose(b.tensor, torch.tensor(expected, dtype=torch.float32))
    # a larger threshold includes the 5-degree box; clipping a non-square image (h=12, w=9)
    b = RotatedBoxes([[8, 8, 10, 10, 5]])
    b.clip((12, 9), clip_angle_threshold=10.0)
    assert torch.allclose(b.tensor, torch.tensor([[6.0, 7.5, 6, 9, 5]]))


def test_clip_in_place_and_differentiable():
    x = torch.tensor(
        [[5.0, 5, 20, 4, 0], [8, 8, 10, 10, 30], [4, 4, 2, 2, 359]], requires_grad=True
    )
    t = x * 1.0
    b = RotatedBoxes(t)
    b.clip((10, 10))
    assert b.tensor is t  # the same tensor, modified in place, as in Detectron2
    b.tensor.sum().backward()
    # clipped width: d(min(w, x1 - x0)) / dw = 0 for box 0 (clamped both sides); 1 for the rest
    assert x.grad[:, 2].tolist() == [0, 1, 1]
    assert x.grad[:, 4].tolist() == [1, 1, 1]


def test_clip_traces_with_mask():
    def f(t):
        b = RotatedBoxes(t.clone())
        b.clip((10, 10))
        return b.tensor

    traced = torch.jit.trace(f, (torch.tensor([[5.0, 5, 20, 4, 0], [8, 8, 10, 10, 30]]),))
    # other boxes, other count, other angles: the trace is not specialised to the first input
    x = torch.tensor([[8.0, 8, 10, 10, 30], [5, 5, 20, 4, 0], [8, 8, 10, 10, 0.5]])
    assert torch.allclose(traced(x), f(x))
    assert torch.allclose(traced(x)[1], torch.tensor([5.0, 5, 10, 4, 0]))


def test_inside_box():
    b = RotatedBoxes([[5, 5, 8, 2, 90], [5, 5, 12, 2, 90], [5, 5, 12, 2, 0], [5, 5, 8, 8, 45]])
    # enclosing boxes: x [4,6] y [1,9]; x [4,6] y [-1,11]; x [-1,11] y [4,6];
    # x, y in [5 - 4 sqrt(2), 5 + 4 sqrt(2)] = [-0.66, 10.66]
    assert b.inside_box((10, 10)).tolist() == [True, False, False, False]
    assert b.inside_box((10, 10), boundary_threshold=2).tolist() == [True, True, True, True]
    assert b.inside_box((10, 10), boundary_threshold=1).tolist() == [True, False, False, True]


def test_scale():
    # uniform scaling is exact
    b = RotatedBoxes([[10, 20, 8, 2, 30], [5, 5, 4, 2, -120]])
    b.scale(2.0, 2.0)
    assert torch.allclose(b.tensor, torch.tensor([[20.0, 40, 16, 4, 30], [10, 10, 8, 4, -120]]))
    # non-uniform: multiples of 90 degrees stay exact rectangles -> compare with scaled corners
    b = RotatedBoxes(
        [[10, 20, 8, 2, 0], [10, 20, 8, 2, 90], [10, 20, 8, 2, 180], [1, 2, 3, 4, -90]]
    )
    corners = rbox_to_poly(b.tensor).view(-1, 4, 2) * torch.tensor([3.0, 0.5])
    b.scale(3.0, 0.5)
    assert torch.allclose(rbox_to_poly(b.tensor).view(-1, 4, 2), corners, atol=1e-5)
    assert b.tensor[1].tolist() == pytest.approx([30, 10, 4, 6, 90])  # w vertical: scaled by 0.5
    # the general case follows Detectron2's formulas (angle of the scaled height vector)
    b = RotatedBoxes([[0, 0, 10, 4, 30]])
    b.scale(2.0, 1.0)
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    expected = [0, 0, 10 * math.hypot(2 * c, s), 4 * math.hypot(2 * s, c), 0.0]
    expected[4] = math.degrees(math.atan2(2 * s, c))
    assert b.tensor[0].tolist() == pytest.approx(expected, rel=1e-5)


def _shapely_iou(a, b):
    pa = Polygon(rbox_to_poly(a.double()).view(4, 2).tolist())
    pb = Polygon(rbox_to_poly(b.double()).view(4, 2).tolist())
    if pa.area == 0 or pb.area == 0:
        return 0.0
    inter = pa.intersection(pb).area
    return inter / (pa.area + pb.area - inter)


def test_pairwise_iou_rotated_against_shapely():
    import rotated_det.layers  # noqa: F401  (the compiled op must be importable)

    gen = torch.Generator().manual_seed(0)
    n = 40
    boxes = torch.cat(
        [
            torch.rand(n, 2, generator=gen) * 60,
            torch.rand(n, 2, generator=gen) * 40 + 5,
            (torch.rand(n, 1, generator=gen) * 2 - 1) * 360,
        ],
        dim=1,
    )
    hard = torch.tensor(
        [
            [30.0, 30, 20, 10, 0],
            [30, 30, 20, 10, 180],  # identical rectangle, other angle
            [30, 30, 10, 20, 90],  # identical rectangle, sides swapped
            [40, 30, 20, 10, 0],  # shares half, collinear edges
            [30, 30, 10, 5, 0],  # nested
            [50, 30, 20, 10, 0],  # touching edge
        ]
    )
    b1 = RotatedBoxes(torch.cat([boxes, hard]))
    iou = pairwise_iou_rotated(b1, b1)
    assert iou.shape == (n + 6, n + 6)
    ref = torch.tensor(
        [[_shapely_iou(a, b) for b in b1.tensor] for a in b1.tensor], dtype=torch.float64
    )
    assert torch.allclose(iou.double(), ref, atol=2e-4), (iou.double() - ref).abs().max()
    h = iou[n:, n:]
    assert torch.allclose(h[0, :3], torch.ones(3), atol=1e-5)
    assert h[0, 3] == pytest.approx(1 / 3, abs=1e-5) and h[0, 4] == pytest.approx(0.25, abs=1e-5)
    assert h[0, 5] == pytest.approx(0.0, abs=1e-6)
    # the D2 module-level name, raw tensors and empty inputs
    assert rotated_boxes_module.pairwise_iou is pairwise_iou_rotated
    assert torch.allclose(pairwise_iou_rotated(b1.tensor[:3], b1.tensor), iou[:3])
    assert pairwise_iou_rotated(RotatedBoxes([]), b1).shape == (0, n + 6)


def test_corner_distance_helper_agrees_with_shapely():
    a = torch.tensor([[30.0, 30, 20, 10, 0]])
    same = torch.tensor([[30.0, 30, 10, 20, -90]])
    assert rbox_corner_distance(a, same).item() < 1e-5
    assert _shapely_iou(a[0], same[0]) == pytest.approx(1.0)


@pytest.mark.slow
def test_torch_export_with_dynamic_box_count():
    """clip / nonempty / poly_to_rbox / normalize_rbox_angles export with a symbolic N."""
    from rotated_det.structures import normalize_rbox_angles, poly_to_rbox

    class M(torch.nn.Module):
        def forward(self, b, p):
            rb = RotatedBoxes(b.clone())
            rb.clip((100, 120))
            return rb.tensor, rb.nonempty(), poly_to_rbox(p, "oc"), normalize_rbox_angles(b)

    b = torch.tensor([[5.0, 5, 20, 4, 0], [8, 8, 10, 10, 30], [50, 50, 300, 10, 0.5]])
    p = torch.rand(7, 8, generator=torch.Generator().manual_seed(0)) * 100
    dims = ({0: torch.export.Dim("N", min=2)}, {0: torch.export.Dim("P", min=2)})
    ep = torch.export.export(M(), (b, p), dynamic_shapes=dims)
    b2, p2 = torch.cat([b, b + 1]), torch.rand(11, 8) * 100
    for got, ref in zip(ep.module()(b2, p2), M()(b2, p2), strict=True):
        assert got.shape == ref.shape and torch.equal(got, ref)


def _scripted_boxes_program(x: torch.Tensor, idx: torch.Tensor, mask: torch.Tensor):
    """Builds RotatedBoxes and calls their methods; compiled with torch.jit.script below."""
    b = RotatedBoxes(x)
    c = b.clone()
    c.normalize_angles()
    angles = c.tensor[:, 4].clone()
    c.clip((50, 60))
    d = b.cat([b[idx], c[mask]])
    d.scale(2.0, 0.5)
    e = RotatedBoxes(torch.zeros(0))
    return (
        b.area(),
        angles,
        c.tensor,
        b.nonempty(3.0),
        d.tensor,
        len(d),
        len(e),
        pairwise_iou_rotated(b, c),
        b.inside_box((50, 60), 2),
        b.get_centers(),
        b.to(torch.device("cpu")).tensor,
        b.device,
    )


def test_torch_jit_script_matches_eager():
    """Detectron2's RotatedBoxes compile with torch.jit.script; ours do too, and the scripted
    program (also after a save / load round trip) gives the eager results."""
    import io

    import rotated_det.layers  # noqa: F401  (the scripted IoU calls the compiled op)

    scripted = torch.jit.script(_scripted_boxes_program)
    buf = io.BytesIO()
    torch.jit.save(scripted, buf)
    buf.seek(0)
    reloaded = torch.jit.load(buf)
    gen = torch.Generator().manual_seed(1)
    for n in (12, 1):
        x = torch.rand(n, 5, generator=gen) * torch.tensor([60.0, 50, 24, 24, 1080]) - torch.tensor(
            [0.0, 0, 4, 4, 540]
        )
        x[0, 4] = 0.5  # a nearly horizontal box, which clip changes
        idx = torch.randint(0, n, (n + 3,), generator=gen)
        mask = torch.rand(n, generator=gen) > 0.4
        ref = _scripted_boxes_program(x, idx, mask)
        for f in (scripted, reloaded):
            got = f(x, idx, mask)
            assert len(got) == len(ref)
            for g, r in zip(got, ref, strict=True):
                assert torch.equal(g, r) if isinstance(r, torch.Tensor) else g == r
    # the eager error messages, from scripted code
    with pytest.raises(torch.jit.Error, match=r"expected an Nx5 tensor, got shape \[2, 4\]"):
        scripted(torch.zeros(2, 4), idx, mask)

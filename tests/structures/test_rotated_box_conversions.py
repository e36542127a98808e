"""poly_to_rbox / rbox_to_poly / rbox_to_hbox / normalize_rbox_angles against hand-worked
examples, cv2.minAreaRect and shapely, plus round trips over all angle versions."""

import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from shapely.geometry import MultiPoint, Polygon

from rotated_det.structures import (
    ANGLE_VERSIONS,
    canonical_rbox,
    normalize_rbox_angles,
    points_to_rbox,
    poly_to_rbox,
    rbox_corner_distance,
    rbox_to_hbox,
    rbox_to_poly,
)

REPO = Path(__file__).resolve().parents[2]
RANGES = {"le90": (-90.0, 90.0), "le135": (-45.0, 135.0), "oc": (-90.0, 0.0)}


def ref_corners(box):
    """Pure-Python corners of one (cx, cy, w, h, angle_deg) box, straight from the convention:
    centre +- w/2 * (cos a, -sin a) +- h/2 * (sin a, cos a)."""
    cx, cy, w, h, a = (float(v) for v in box)
    r = math.radians(a)
    u = (math.cos(r), -math.sin(r))
    v = (math.sin(r), math.cos(r))
    return [
        (cx + su * w / 2 * u[0] + sv * h / 2 * v[0], cy + su * w / 2 * u[1] + sv * h / 2 * v[1])
        for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1))
    ]


def assert_meets_version(boxes, version):
    lo, hi = RANGES[version]
    a = boxes[:, 4]
    assert torch.isfinite(boxes).all()
    assert (a >= lo).all() and (a < hi).all(), (version, a.min().item(), a.max().item())
    assert (boxes[:, 2] >= 0).all() and (boxes[:, 3] >= 0).all()
    if version != "oc":
        assert (boxes[:, 2] >= boxes[:, 3]).all()


def points_inside(boxes, pts, tol):
    """[N] bool: every point of pts [N, 4, 2] lies in its box (within tol pixels)."""
    cx, cy, w, h, a = boxes.double().unbind(-1)
    r = torch.deg2rad(a)
    dx = pts[..., 0].double() - cx[:, None]
    dy = pts[..., 1].double() - cy[:, None]
    s = dx * torch.cos(r)[:, None] - dy * torch.sin(r)[:, None]  # along u
    q = dx * torch.sin(r)[:, None] + dy * torch.cos(r)[:, None]  # along v
    return ((s.abs() <= w[:, None] / 2 + tol) & (q.abs() <= h[:, None] / 2 + tol)).all(dim=1)


def ref_min_rect_is_unique(points, rel=1e-7):
    """Pure-Python: is the minimum-area enclosing rectangle of these points unique? Tries the
    rectangle along every point pair's direction (hull edges are among them); near-minimal
    candidates must all be the same rectangle. Acute triangles, and 4-point hulls where two
    edges see the same farthest-point triangle, have several different minimal rectangles."""
    cands = []
    for i in range(4):
        for j in range(i + 1, 4):
            dx, dy = points[j][0] - points[i][0], points[j][1] - points[i][1]
            n = math.hypot(dx, dy)
            if n == 0:
                continue
            ux, uy = dx / n, dy / n
            s = [x * ux + y * uy for x, y in points]
            q = [y * ux - x * uy for x, y in points]
            area = (max(s) - min(s)) * (max(q) - min(q))
            sc, qc = (max(s) + min(s)) / 2, (max(q) + min(q)) / 2
            box = [sc * ux - qc * uy, sc * uy + qc * ux, max(s) - min(s), max(q) - min(q)]
            cands.append((area, box + [math.degrees(math.atan2(-uy, ux))]))
    if not cands:  # all points identical: the rectangle is that point
        return True
    best = min(a for a, _ in cands)
    near = [b for a, b in cands if a <= best * (1 + rel) + 1e-9]
    t = torch.tensor(near, dtype=torch.float64)
    return bool((rbox_corner_distance(t, t[:1]) < 1e-4).all())


def cv2_rect_to_oc(rect):
    """cv2.minAreaRect output -> our "oc" box, for any OpenCV version: bring cv2's clockwise
    angle theta into OpenCV 4.5.1's (0, 90] (swapping sides per quarter turn), then negate."""
    (cx, cy), (w, h), theta = rect
    while theta <= 0:
        theta += 90.0
        w, h = h, w
    while theta > 90:
        theta -= 90.0
        w, h = h, w
    return [cx, cy, w, h, -theta]


def random_rboxes(n, gen, dtype=torch.float64, angle_range=540.0):
    cxy = torch.rand(n, 2, generator=gen, dtype=dtype) * 1000
    wh = torch.rand(n, 2, generator=gen, dtype=dtype) * 90 + 10
    a = (torch.rand(n, 1, generator=gen, dtype=dtype) * 2 - 1) * angle_range
    return torch.cat([cxy, wh, a], dim=1)


# ---------------------------------------------------------------- rbox_to_poly / rbox_to_hbox


def test_rbox_to_poly_hand_examples():
    boxes = torch.tensor([[50.0, 50, 20, 6, 0], [50, 50, 20, 6, 90], [0, 0, 4, 2, 180]])
    poly = rbox_to_poly(boxes).view(-1, 4, 2)
    # angle 0: top-left, top-right, bottom-right, bottom-left
    assert torch.allclose(poly[0], torch.tensor([[40.0, 47], [60, 47], [60, 53], [40, 53]]))
    # 90 deg CCW on screen: the w-axis points up (-y): first corner is bottom-left on screen
    assert torch.allclose(
        poly[1], torch.tensor([[47.0, 60], [47, 40], [53, 40], [53, 60]]), atol=1e-5
    )
    assert torch.allclose(poly[2], torch.tensor([[2.0, 1], [-2, 1], [-2, -1], [2, -1]]), atol=1e-6)


def test_rbox_to_poly_matches_reference():
    gen = torch.Generator().manual_seed(0)
    boxes = random_rboxes(200, gen)
    poly = rbox_to_poly(boxes).view(-1, 4, 2)
    ref = torch.tensor([ref_corners(b) for b in boxes], dtype=torch.float64)
    assert torch.allclose(poly, ref, atol=1e-9)
    # the corner polygon is the rectangle: shapely area == w * h, and it winds consistently
    for b, p in zip(boxes[:20], poly[:20], strict=True):
        assert Polygon(p.tolist()).area == pytest.approx(float(b[2] * b[3]), rel=1e-9)


def test_rbox_to_hbox():
    boxes = torch.tensor([[10.0, 10, 20, 6, 90], [0, 0, 4, 2, 45], [5, 5, 4, 2, -180]])
    s = math.sqrt(0.5)
    expected = torch.tensor(
        [[7.0, 0, 13, 20], [-3 * s, -3 * s, 3 * s, 3 * s], [3, 4, 7, 6]], dtype=torch.float32
    )
    assert torch.allclose(rbox_to_hbox(boxes), expected, atol=1e-5)
    # against the corners' min/max on random boxes
    gen = torch.Generator().manual_seed(1)
    boxes = random_rboxes(500, gen)
    poly = rbox_to_poly(boxes).view(-1, 4, 2)
    ref = torch.cat([poly.amin(dim=1), poly.amax(dim=1)], dim=1)
    assert torch.allclose(rbox_to_hbox(boxes), ref, atol=1e-9)


# ---------------------------------------------------------------- normalize_rbox_angles


@pytest.mark.parametrize(
    "version,box,expected",
    [
        ("le90", [0, 0, 6, 20, 0], [0, 0, 20, 6, -90]),
        ("le90", [0, 0, 20, 6, 100], [0, 0, 20, 6, -80]),
        ("le90", [0, 0, 20, 6, 90], [0, 0, 20, 6, -90]),
        ("le90", [0, 0, 20, 6, -190], [0, 0, 20, 6, -10]),
        ("le90", [0, 0, 20, 6, 180], [0, 0, 20, 6, 0]),
        ("le135", [0, 0, 6, 20, 0], [0, 0, 20, 6, 90]),
        ("le135", [0, 0, 20, 6, -80], [0, 0, 20, 6, 100]),
        ("le135", [0, 0, 20, 6, -45], [0, 0, 20, 6, -45]),
        ("le135", [0, 0, 20, 6, 135], [0, 0, 20, 6, -45]),
        ("oc", [0, 0, 20, 6, 0], [0, 0, 6, 20, -90]),
        ("oc", [0, 0, 20, 6, 30], [0, 0, 6, 20, -60]),
        ("oc", [0, 0, 20, 6, -30], [0, 0, 20, 6, -30]),
        ("oc", [0, 0, 20, 6, 150], [0, 0, 20, 6, -30]),
        ("oc", [0, 0, 20, 6, -90], [0, 0, 20, 6, -90]),
        ("oc", [0, 0, 20, 6, 90], [0, 0, 20, 6, -90]),
    ],
)
def test_normalize_hand_examples(version, box, expected):
    out = normalize_rbox_angles(torch.tensor([box], dtype=torch.float64), version)
    assert out[0].tolist() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("version", ANGLE_VERSIONS)
def test_normalize_keeps_rectangle_and_meets_range(version, dtype):
    gen = torch.Generator().manual_seed(2)
    boxes = random_rboxes(2000, gen, dtype=dtype, angle_range=720.0)
    boxes[:100, 3] = boxes[:100, 2]  # squares
    boxes[100:200, 4] = torch.tensor([-180.0, 180, 90, -90, 0, 45, 135, -45, 270, -270] * 10)
    tiny = torch.tensor([-1e-7, 1e-7, 89.99999, -90.00001, 179.99998, -179.99998, 134.9999, -0.0])
    boxes[200 : 200 + len(tiny), 4] = tiny.to(dtype)
    out = normalize_rbox_angles(boxes, version)
    assert out.dtype == dtype and out.shape == boxes.shape
    assert_meets_version(out, version)
    tol = 1e-3 if dtype == torch.float32 else 1e-8
    assert rbox_corner_distance(boxes, out).max() < tol
    assert torch.equal(out[:, :2], boxes[:, :2])  # centres untouched
    # normalising again changes nothing, bit for bit
    assert torch.equal(normalize_rbox_angles(out, version), out)


def test_normalize_numpy_and_errors():
    b = np.array([[0, 0, 6, 20, 0]], dtype=np.float32)
    out = normalize_rbox_angles(b, "le90")
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    assert out.tolist() == [[0, 0, 20, 6, -90]]
    with pytest.raises(ValueError, match="angle version"):
        normalize_rbox_angles(torch.zeros(1, 5), "le180")
    with pytest.raises(ValueError, match=r"\[\.\.\., 5\]"):
        normalize_rbox_angles(torch.zeros(3, 4), "le90")
    # NaN rows stay NaN and never raise
    out = normalize_rbox_angles(torch.tensor([[0.0, 0, float("nan"), 1, 0]]), "le90")
    assert torch.isnan(out).any()


def test_canonical_rbox():
    b = torch.tensor(
        [
            [1.0, 2, 20, 6, 10],
            [1.0, 2, 6, 20, 100],
            [1.0, 2, 20, 6, -170],
            [1.0, 2, 6, 20, -80],
            [3.0, 3, 5, 5, 80],  # square: 80 == -10 == 170 ...
            [3.0, 3, 5, 5, -10],
            [3.0, 3, 5, 5, 170],
        ],
        dtype=torch.float64,
    )
    c = canonical_rbox(b)
    for i in range(1, 4):
        assert torch.allclose(c[i], c[0], atol=1e-12)
    assert torch.allclose(c[0], torch.tensor([1.0, 2, 20, 6, 10], dtype=torch.float64))
    for i in (4, 5, 6):
        assert c[i].tolist() == pytest.approx([3.0, 3, 5, 5, -10], abs=1e-12)


def test_rbox_corner_distance():
    a = torch.tensor([[0.0, 0, 20, 6, 10]], dtype=torch.float64)
    same = torch.tensor([[0.0, 0, 6, 20, -80]], dtype=torch.float64)
    moved = torch.tensor([[0.5, 0, 20, 6, 10]], dtype=torch.float64)
    assert rbox_corner_distance(a, same).item() < 1e-12
    assert rbox_corner_distance(a, moved).item() == pytest.approx(0.5, abs=1e-12)


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("version", ANGLE_VERSIONS)
def test_rbox_poly_rbox_round_trip(version):
    """rbox -> poly -> rbox gives back the same rectangle, in `version`'s representation,
    for angles across the +-180 wrap and with corners given in any order."""
    gen = torch.Generator().manual_seed(3)
    boxes = random_rboxes(3000, gen, angle_range=540.0)
    boxes[:8, 4] = torch.tensor([-180.0, 180, -179.9, 179.9, 90, -90, 0, 360], dtype=torch.float64)
    poly = rbox_to_poly(boxes).view(-1, 4, 2)
    perm = torch.argsort(torch.rand(len(boxes), 4, generator=gen), dim=1)
    poly = torch.gather(poly, 1, perm[..., None].expand(-1, -1, 2)).reshape(-1, 8)
    out = poly_to_rbox(poly, version=version)
    assert_meets_version(out, version)
    assert rbox_corner_distance(out, boxes).max() < 1e-9
    # exact representation where it is unique (not at a range end, not a near-square)
    expected = normalize_rbox_angles(boxes, version)
    lo, hi = RANGES[version]
    safe = (
        ((expected[:, 4] - lo).abs() > 1e-6)
        & ((expected[:, 4] - hi).abs() > 1e-6)
        & ((expected[:, 2] - expected[:, 3]).abs() > 1e-6)
    )
    assert safe.sum() > 2900
    assert torch.allclose(out[safe], expected[safe], atol=1e-9, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_poly_rbox_poly_round_trip(dtype):
    """A rectangle polygon comes back as the same 4 corners (as a set)."""
    gen = torch.Generator().manual_seed(4)
    boxes = random_rboxes(1000, gen, dtype=dtype)
    poly = rbox_to_poly(boxes)
    back = rbox_to_poly(poly_to_rbox(poly)).view(-1, 4, 2)
    d = torch.linalg.vector_norm(poly.view(-1, 4, 1, 2) - back.view(-1, 1, 4, 2), dim=-1)
    tol = 2e-3 if dtype == torch.float32 else 1e-9
    assert d.amin(dim=2).amax() < tol and d.amin(dim=1).amax() < tol


def test_poly_to_rbox_axis_aligned_exact():
    poly = torch.tensor([[10.0, 20, 50, 20, 50, 30, 10, 30], [0, 0, 0, 8, 4, 8, 4, 0]])
    assert poly_to_rbox(poly).tolist() == [[30.0, 25, 40, 10, 0], [2, 4, 8, 4, -90]]
    assert poly_to_rbox(poly, version="le135").tolist()[1] == [2, 4, 8, 4, 90]
    assert poly_to_rbox(poly, version="oc").tolist() == [
        [30.0, 25, 10, 40, -90],
        [2, 4, 8, 4, -90],  # the vertical side is "w" in oc
    ]


def test_poly_to_rbox_shapes_types_errors():
    p = torch.tensor([0.0, 0, 4, 0, 4, 2, 0, 2])
    assert poly_to_rbox(p).shape == (5,)
    assert poly_to_rbox(p.expand(2, 3, 8)).shape == (2, 3, 5)
    assert poly_to_rbox(torch.zeros(0, 8)).shape == (0, 5)
    assert poly_to_rbox(p.double()).dtype == torch.float64
    assert poly_to_rbox(p.to(torch.int64)).dtype == torch.float32
    out = poly_to_rbox(p.numpy()[None])
    assert isinstance(out, np.ndarray) and out.shape == (1, 5)
    # reversed (negative-stride) and read-only arrays are fine
    arr = np.array([[0.0, 2, 4, 2, 4, 0, 0, 0]])[:, ::-1]
    arr.flags.writeable = False
    assert poly_to_rbox(arr).tolist() == [[1.0, 2, 4, 2, -90]]  # x, y swapped: a tall box
    with pytest.raises(ValueError, match=r"\[\.\.\., 8\]"):
        poly_to_rbox(torch.zeros(2, 6))
    with pytest.raises(TypeError):
        poly_to_rbox([[0, 0, 1, 0, 1, 1, 0, 1]])
    # NaN / inf rows give NaN rows, the others are unaffected
    bad = torch.stack([p, p.clone().fill_(float("nan")), p.clone().fill_(float("inf"))])
    out = poly_to_rbox(bad)
    assert out[0].tolist() == [2.0, 1, 4, 2, 0]
    assert torch.isnan(out[1:]).all()
    # one bad coordinate anywhere poisons the whole row, and only that row
    for value in (float("nan"), float("inf"), -float("inf")):
        bad = torch.tensor([[1.0, 2, 9, 3, 8, 7, 0, 5]]).repeat(9, 1)
        bad[torch.arange(8), torch.arange(8)] = value
        out = poly_to_rbox(bad)
        assert torch.isnan(out[:8]).all() and torch.isfinite(out[8]).all()


# ---------------------------------------------------------------- against cv2.minAreaRect


def _random_point_sets(n, rng):
    """Random 4-point sets of mixed kinds: uniform (any order, often self-intersecting or
    non-convex), bow ties, collinear, identical, and with repeated points."""
    pts = rng.uniform(0, 200, size=(n, 4, 2))
    k = n // 6
    # bow ties: rectangle corners in order 0, 2, 1, 3
    rect = rbox_to_poly(
        torch.from_numpy(
            np.c_[
                rng.uniform(20, 180, (k, 2)), rng.uniform(5, 60, (k, 2)), rng.uniform(-180, 180, k)
            ]
        )
    ).numpy()
    pts[:k] = rect.reshape(k, 4, 2)[:, [0, 2, 1, 3]]
    # collinear points on random lines (some with float noise)
    t = rng.uniform(-50, 50, (k, 4, 1))
    d = rng.normal(size=(k, 1, 2))
    pts[k : 2 * k] = rng.uniform(50, 150, (k, 1, 2)) + t * d
    # all identical
    pts[2 * k : 2 * k + 10] = rng.uniform(0, 200, (10, 1, 2))
    # two pairs of identical points; three identical + one
    pts[2 * k + 10 : 2 * k + 20, 1] = pts[2 * k + 10 : 2 * k + 20, 0]
    pts[2 * k + 10 : 2 * k + 20, 3] = pts[2 * k + 10 : 2 * k + 20, 2]
    pts[2 * k + 20 : 2 * k + 30, 1:3] = pts[2 * k + 20 : 2 * k + 30, 0:1]
    # points on a tiny triangle far from the origin (precision)
    pts[2 * k + 30 : 2 * k + 40] = 1e4 + rng.uniform(0, 2, (10, 4, 2))
    return pts


@pytest.mark.parametrize("version", ANGLE_VERSIONS)
def test_poly_to_rbox_vs_cv2_min_area_rect(version):
    rng = np.random.default_rng(5)
    pts = _random_point_sets(1200, rng).astype(np.float32)
    ours = poly_to_rbox(torch.from_numpy(pts.reshape(-1, 8)).double(), version=version)
    assert_meets_version(ours, version)
    assert points_inside(ours, torch.from_numpy(pts), tol=1e-3).all()
    cv_oc = torch.tensor([cv2_rect_to_oc(cv2.minAreaRect(p)) for p in pts], dtype=torch.float64)
    cv_area = cv_oc[:, 2] * cv_oc[:, 3]
    area = ours[:, 2] * ours[:, 3]
    # minimal: never larger than cv2's (float32) rectangle, and equal to it
    assert torch.allclose(area, cv_area, rtol=1e-4, atol=1e-2)
    # the same rectangle, where the minimum is unique: a convex hull of 4 points, not too thin
    # (for a triangle hull every side of an acute triangle gives the same area: a tie)
    unique = np.array([ref_min_rect_is_unique(p.astype(np.float64).tolist()) for p in pts])
    unique &= (cv_oc[:, 2].clamp(max=cv_oc[:, 3]) > 1.0).numpy()
    assert unique.sum() > 400
    d = rbox_corner_distance(ours[unique], cv_oc[unique])
    assert d.max() < 1e-2, d.max()
    if version == "oc":
        # cv2's own representation (brought to the 4.5.1 convention), away from the range ends
        sel = torch.from_numpy(unique) & (cv_oc[:, 4] < -1e-3) & (cv_oc[:, 4] > -90 + 1e-3)
        assert torch.allclose(ours[sel], cv_oc[sel], atol=1e-2, rtol=1e-5)


def test_oc_matches_cv2_conventions():
    """Verify the "oc" translation with OpenCV itself on an axis-aligned and a tilted box."""
    for box in ([50.0, 50, 20, 6, 0], [50.0, 50, 20, 6, 30], [50.0, 50, 20, 6, -30]):
        poly = np.array(ref_corners(box), dtype=np.float32)
        rect = cv2.minAreaRect(poly)
        (cx, cy), (w, h), theta = rect
        ver = tuple(int(x) for x in cv2.__version__.split(".")[:3])
        if (4, 5, 1) <= ver < (5, 0, 0):
            assert 0 < theta <= 90  # the convention "oc" translates
            literal = torch.tensor([[cx, cy, w, h, -theta]], dtype=torch.float64)
        else:
            # OpenCV < 4.5.1 and 5.x: theta in [-90, 0), the same rectangle by its other side
            assert -90 <= theta < 0
            literal = torch.tensor([[cx, cy, h, w, -(theta + 90)]], dtype=torch.float64)
            if theta == -90:
                literal = torch.tensor([[cx, cy, w, h, -90.0]], dtype=torch.float64)
        ours = poly_to_rbox(torch.from_numpy(poly.reshape(1, 8)).double(), version="oc")
        assert torch.allclose(ours, literal, atol=1e-4), (box, rect, ours)
    # the hand-worked axis-aligned case of the docstring
    poly = torch.tensor([[40.0, 47, 60, 47, 60, 53, 40, 53]])
    assert poly_to_rbox(poly, version="oc").tolist() == [[50.0, 50, 6, 20, -90]]


def test_poly_to_rbox_vs_shapely_min_rotated_rectangle():
    rng = np.random.default_rng(6)
    pts = rng.uniform(0, 100, size=(300, 4, 2))
    ours = poly_to_rbox(torch.from_numpy(pts.reshape(-1, 8)))
    n_unique = 0
    for b, p in zip(ours, pts, strict=True):
        points = MultiPoint([tuple(x) for x in p])
        ref = points.minimum_rotated_rectangle
        assert float(b[2] * b[3]) == pytest.approx(ref.area, rel=1e-9, abs=1e-9)
        mine = Polygon(ref_corners(b))
        assert mine.buffer(1e-9).covers(points)
        if ref_min_rect_is_unique(p.tolist()):
            n_unique += 1
            assert mine.symmetric_difference(ref).area < 1e-6
    assert n_unique > 100


def test_points_to_rbox_any_point_count_vs_shapely():
    """The minimum-area rectangle of K points (polygons clipped to a window have up to 8, padded
    by repeating a vertex): shapely's area, covering every point, numpy in numpy out."""
    rng = np.random.default_rng(1)
    pts = rng.uniform(0, 100, (200, 7, 2))
    pts[:50, 5:] = pts[:50, 4:5]  # padded by repetition
    ours = points_to_rbox(pts)
    assert isinstance(ours, np.ndarray) and ours.dtype == np.float64 and ours.shape == (200, 5)
    for b, p in zip(ours, pts, strict=True):
        points = MultiPoint([tuple(x) for x in p])
        assert b[2] * b[3] == pytest.approx(points.minimum_rotated_rectangle.area, rel=1e-9)
        assert Polygon(ref_corners(b)).buffer(1e-9).covers(points)
        assert b[2] >= b[3] and -90 <= b[4] < 90  # le90 by default


def test_points_to_rbox_is_poly_to_rbox_for_four_points_and_pads_fewer():
    rng = np.random.default_rng(2)
    quads = torch.from_numpy(rng.uniform(0, 100, (500, 4, 2)))
    assert torch.equal(points_to_rbox(quads, "oc"), poly_to_rbox(quads.reshape(-1, 8), "oc"))
    # 1, 2 and 3 points: a point, a segment, a right triangle
    assert points_to_rbox(np.array([[[1.0, 2.0]]])).tolist() == [[1, 2, 0, 0, 0]]
    assert points_to_rbox(np.array([[[0.0, 0], [10, 0]]])).tolist() == [[5, 0, 10, 0, 0]]
    tri = points_to_rbox(np.array([[[0.0, 0], [10, 0], [0, 5]]]))
    assert tri.tolist() == [[5, 2.5, 10, 5, 0]]
    assert points_to_rbox(torch.zeros(2, 3, 6, 2)).shape == (2, 3, 5)
    with pytest.raises(ValueError, match=r"points_to_rbox: expected shape \[\.\.\., K, 2\]"):
        points_to_rbox(np.zeros((3, 0, 2)))


def test_poly_to_rbox_degenerate_hand_examples():
    p = torch.tensor(
        [
            [5.0, 5, 5, 5, 5, 5, 5, 5],  # one point
            [0.0, 0, 10, 0, 4, 0, 10, 0],  # horizontal segment, repeated points
            [0.0, 0, 3, 4, 6, 8, 3, 4],  # diagonal segment of length 10
            [0.0, 0, 0, 0, 4, 0, 4, 3],  # right triangle (one point doubled)
        ],
        dtype=torch.float64,
    )
    out = poly_to_rbox(p)
    assert out[0].tolist() == [5, 5, 0, 0, 0]
    assert out[1].tolist() == [5, 0, 10, 0, 0]
    assert out[2].tolist() == pytest.approx([3, 4, 10, 0, -math.degrees(math.atan2(4, 3))])
    # minimum rectangle of the 3-4-5 right triangle: along a leg, 4 x 3 (area 12)
    assert out[3].tolist() == pytest.approx([2, 1.5, 4, 3, 0])


def test_poly_to_rbox_traces():
    poly = torch.tensor([[0.0, 0, 4, 0, 4, 2, 0, 2]])
    traced = torch.jit.trace(lambda p: poly_to_rbox(p, version="le135"), (poly,))
    other = rbox_to_poly(torch.tensor([[3.0, 4, 2, 8, 10], [0, 0, 5, 1, -100], [1, 1, 3, 3, 0]]))
    assert torch.allclose(traced(other), poly_to_rbox(other, version="le135"))


def test_gradients():
    """The conversions are differentiable (piecewise: poly_to_rbox picks a side discretely)."""
    boxes = torch.tensor([[10.0, 20, 8, 3, 30], [0, 0, 5, 2, -100]], dtype=torch.float64)
    boxes.requires_grad_(True)
    assert torch.autograd.gradcheck(rbox_to_poly, (boxes,))
    assert torch.autograd.gradcheck(rbox_to_hbox, (boxes,))
    assert torch.autograd.gradcheck(lambda b: normalize_rbox_angles(b, "le135"), (boxes,))
    # generic (non-rectangle, no ties) quadrilaterals
    poly = torch.tensor(
        [[0.0, 0, 10, 1, 11, 6, -1, 4], [3, 3, 20, 5, 4, 9, 12, 1]], dtype=torch.float64
    ).requires_grad_(True)
    assert torch.autograd.gradcheck(poly_to_rbox, (poly,))


@pytest.mark.slow  # a fresh Python process
def test_structures_import_without_compiled_ops():
    """pairwise_iou_rotated imports the op lazily: structures work without rotated_det.layers."""
    code = (
        "import sys; sys.modules['rotated_det.layers'] = None\n"
        "import torch\n"
        "from rotated_det.structures import RotatedBoxes, pairwise_iou_rotated, poly_to_rbox\n"
        "b = RotatedBoxes(poly_to_rbox(torch.tensor([[0., 0, 4, 0, 4, 2, 0, 2]])))\n"
        "assert b.area().item() == 8\n"
        "try:\n"
        "    pairwise_iou_rotated(b, b)\n"
        "except ImportError:\n"
        "    print('lazy-ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "lazy-ok"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_poly_to_rbox_ties_keep_the_earlier_pair(dtype):
    """An acute triangle (4th point inside) has 3 different minimal rectangles, one per side;
    the first point pair in the documented order that gives one wins: here (0, 1)."""
    s3 = math.sqrt(3)
    tri = [[0.0, 0], [10, 0], [5, 5 * s3]]
    inside = [5.0, 2.0]
    for rot in (0.0, 17.0, -123.0):
        r = math.radians(rot)
        pts = [
            [x * math.cos(r) + y * math.sin(r), -x * math.sin(r) + y * math.cos(r)] for x, y in tri
        ]
        pin = [
            inside[0] * math.cos(r) + inside[1] * math.sin(r),
            -inside[0] * math.sin(r) + inside[1] * math.cos(r),
        ]
        poly = torch.tensor([pts[0] + pts[1] + pin + pts[2]], dtype=dtype)
        out = poly_to_rbox(poly, version="le90").double()
        assert out[0, 2].item() == pytest.approx(10, rel=1e-5)  # along side P0-P1 (length 10)
        assert out[0, 3].item() == pytest.approx(5 * s3, rel=1e-5)
        expected_angle = (rot + 90) % 180 - 90  # the P0->P1 direction, in le90
        d = (out[0, 4].item() - expected_angle + 90) % 180 - 90
        assert abs(d) < 1e-3


def test_poly_to_rbox_large_input_in_blocks_matches_small_calls():
    """Inputs above the block size are processed in blocks: same rectangles as small calls."""
    from rotated_det.structures import rotated_box_conversions as conv

    n = conv._CHUNK * 2 + 123
    gen = torch.Generator().manual_seed(7)
    polys = torch.rand(n, 8, generator=gen) * 500
    polys[conv._CHUNK - 1] = float("nan")  # a bad row at a block edge stays local
    polys[conv._CHUNK] = torch.tensor([0.0, 0, 10, 0, 10, 5, 0, 5])
    big = poly_to_rbox(polys, version="le135")
    small = torch.cat([poly_to_rbox(c, version="le135") for c in polys.split(1000)])
    assert torch.equal(big.isnan(), small.isnan())
    ok = ~big.isnan().any(dim=1)
    assert ok.sum() == n - 1
    # (not bit-equal: SIMD bodies and scalar tails of the kernels round differently)
    assert rbox_corner_distance(big[ok], small[ok]).max() < 1e-3
    assert torch.allclose(big[ok, 2:4], small[ok, 2:4], rtol=1e-5)
    assert big[conv._CHUNK].tolist() == [5.0, 2.5, 10, 5, 0]


def ref_all_pairs_points_to_rbox(pts, tol=1e-9):
    """Reference (float64 numpy): the previous points_to_rbox, which tried the direction of every
    point pair (i, j), i < j, in the order (0, 1), (0, 2), ... and kept the first whose enclosing
    rectangle's area is within ``tol`` of the smallest. [N, K, 2] -> [N, 5] "le90"."""
    pts = np.asarray(pts, dtype=np.float64)
    n, k = pts.shape[:2]
    i, j = np.triu_indices(k, 1)  # (0, 1), (0, 2), ..., (k - 2, k - 1)
    d = pts[:, j] - pts[:, i]  # [N, P, 2]
    nn = (d * d).sum(-1)
    r = pts[:, None, :, :] - pts[:, i][:, :, None, :]  # [N, P, K, 2]: every point from p_i
    s = r[..., 0] * d[..., None, 0] + r[..., 1] * d[..., None, 1]
    q = r[..., 1] * d[..., None, 0] - r[..., 0] * d[..., None, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        area = (s.max(-1) - s.min(-1)) * (q.max(-1) - q.min(-1)) / nn
    area = np.where(np.isnan(area), np.inf, area)
    best = np.argmax(area <= area.min(1, keepdims=True) * (1 + tol), axis=1)
    rows = np.arange(n)
    dd, nb = d[rows, best], np.sqrt(nn[rows, best])
    ok = nb > 0
    u = np.where(ok[:, None], dd / np.where(ok, nb, 1)[:, None], [1.0, 0.0])
    rr = pts - pts[rows, i[best]][:, None]
    s = rr @ u[:, :, None]
    q = (rr[..., 1] * u[:, None, 0] - rr[..., 0] * u[:, None, 1])[..., None]
    sc, qc = (s.max(1) + s.min(1))[:, 0] / 2, (q.max(1) + q.min(1))[:, 0] / 2
    centre = pts[rows, i[best]] + sc[:, None] * u + qc[:, None] * np.c_[-u[:, 1], u[:, 0]]
    box = np.c_[
        centre,
        (s.max(1) - s.min(1))[:, 0],
        (q.max(1) - q.min(1))[:, 0],
        np.degrees(np.arctan2(-u[:, 1], u[:, 0])),
    ]
    return normalize_rbox_angles(box, "le90")


@pytest.mark.parametrize("k", [4, 8, 9, 16, 64, 65])
def test_points_to_rbox_equals_all_pairs_reference(k):
    """The rectangles of trying all pairs (up to 8 points) and of the hull-edge candidates (above)
    are the reference's (float64, unique minima): random point sets, the same sets padded by
    repeating a vertex, and sets on a line. Up to 64 points the compiled op chooses the side, at
    65 its torch formulation."""
    rng = np.random.default_rng(k)
    n = 300 if k < 64 else 40
    pts = rng.uniform(0, 1000, (n, k, 2))
    pts[: n // 3, k // 2 :] = pts[: n // 3, k // 2 - 1 : k // 2]  # padded
    t = rng.uniform(-1, 1, (n // 3, k, 1))
    pts[-(n // 3) :] = np.concatenate([200 + 300 * t, 100 - 80 * t], axis=-1)  # collinear
    pts[-1] = 7.5  # all points equal
    ours = points_to_rbox(pts)
    ref = ref_all_pairs_points_to_rbox(pts)
    assert rbox_corner_distance(ours, ref).max() < 1e-9
    np.testing.assert_allclose(ours[:, 2:4], ref[:, 2:4], rtol=1e-12, atol=1e-9)
    assert np.abs(ours[-(n // 3) :, 3]).max() < 1e-9  # segments: h == 0
    assert ours[-1].tolist() == [7.5, 7.5, 0, 0, 0]


def test_points_to_rbox_collinear_repeated_and_bad_points_hand_examples():
    pts = np.array(
        [
            [[0, 0], [4, 0], [4, 0], [10, 0], [7, 0], [0, 0]],  # a horizontal segment
            [[3, 4], [0, 0], [6, 8], [3, 4], [1.5, 2], [0, 0]],  # diagonal segment, length 10
            [[0, 0], [4, 0], [4, 3], [0, 0], [4, 3], [2, 0]],  # 3-4-5 right triangle
            [[1, 1], [np.nan, 2], [3, 3], [4, 4], [5, 6], [0, 9]],  # NaN: all-NaN row
        ],
        dtype=np.float64,
    )
    out = points_to_rbox(pts)
    assert out[0].tolist() == [5, 0, 10, 0, 0]
    assert out[1].tolist() == pytest.approx([3, 4, 10, 0, -math.degrees(math.atan2(4, 3))])
    # minimum rectangle of the right triangle: along a leg, 4 x 3 (area 12), as for 4 points
    assert out[2].tolist() == pytest.approx([2, 1.5, 4, 3, 0])
    assert np.isnan(out[3]).all()


@pytest.mark.parametrize("k", [8, 12])
def test_points_to_rbox_ties_take_the_first_candidate_pair(k):
    """A regular octagon (all point pairs tried) has 4 different minimal squares and a regular
    12-gon (hull-edge candidates) 3, one per direction of its sides modulo 90 degrees; with the
    vertices in order, the first candidate pair is (0, 1): the square along side 0-1."""
    for rot in (0.0, 10.0, -33.0):
        a = np.radians(rot + 360.0 / k * np.arange(k))
        polygon = np.stack([50 + 20 * np.cos(a), 40 - 20 * np.sin(a)], axis=-1)  # y down
        (box,) = points_to_rbox(polygon[None])
        side = polygon[1] - polygon[0]
        expected = math.degrees(math.atan2(-side[1], side[0]))  # our counter-clockwise angle
        assert (box[4] - expected + 45) % 90 - 45 == pytest.approx(0, abs=1e-9)
        assert box[2] == pytest.approx(box[3]) and box[:2] == pytest.approx([50, 40])


@pytest.mark.parametrize("k", [8, 16, 64])
def test_points_to_rbox_float32_vs_cv2_min_area_rect(k):
    """float32, as OpenCV computes: rectangles that enclose the points and whose area is
    cv2.minAreaRect's (and our float64 result's) within float32 precision. (Not always the same
    rectangle: two hull edges whose areas differ by less than the float32 tie tolerance, 1e-5,
    are a tie, and cv2 breaks such near-ties its own way.)"""
    rng = np.random.default_rng(10 + k)
    pts = rng.uniform(0, 1000, (200, k, 2)).astype(np.float32)
    ours = points_to_rbox(pts)
    assert ours.dtype == np.float32
    area = ours[:, 2].astype(np.float64) * ours[:, 3]
    ref = np.array([cv2_rect_to_oc(cv2.minAreaRect(p)) for p in pts])
    np.testing.assert_allclose(area, ref[:, 2] * ref[:, 3], rtol=2e-5)
    f64 = points_to_rbox(pts.astype(np.float64))
    np.testing.assert_allclose(area, f64[:, 2] * f64[:, 3], rtol=2e-5)
    inside = points_inside(torch.from_numpy(ours), torch.from_numpy(pts), tol=0.01)
    assert bool(inside.all())

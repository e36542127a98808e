"""layers.convex_hull and the minimum-area rectangle of a point set (structures.points_to_rbox, the
one conversion the point-set detectors use): against shapely, cv2.minAreaRect and a NumPy
reference over hull edges; random and degenerate point sets; tracing and torch.export."""

import math

import cv2
import numpy as np
import pytest
import torch
from shapely.geometry import MultiPoint

from rotated_det.layers.convex_hull import convex_hull, polygon_area
from rotated_det.structures import points_to_rbox, rbox_to_poly


def point_sets(seed: int, n: int = 400, k: int = 9) -> torch.Tensor:
    """float64 [6n, k, 2]: random sets, exactly collinear sets (integers), identical points,
    sets with repeated points, sets on a small integer grid (coincident and collinear points)
    and nearly collinear sets (collinear up to the rounding of their coordinates)."""
    gen = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    rand = torch.rand(n, k, 2, generator=gen, dtype=f64) * 100
    start = torch.randint(0, 100, (n, 1, 2), generator=gen).to(f64)
    step = torch.randint(-3, 4, (n, 1, 2), generator=gen).to(f64)
    collinear = start + torch.randint(0, 20, (n, k, 1), generator=gen).to(f64) * step
    equal = rand[:, :1].expand(n, k, 2).clone()
    repeated = rand.clone()
    repeated[:, k // 2 :] = rand[:, : k - k // 2]
    grid = torch.randint(0, 4, (n, k, 2), generator=gen).to(f64)
    step = (torch.rand(n, 1, 2, generator=gen, dtype=f64) - 0.5) * 10
    nearly = rand[:, :1] + torch.rand(n, k, 1, generator=gen, dtype=f64) * step
    return torch.cat([rand, collinear, equal, repeated, grid, nearly])


def reference_rects(pts: np.ndarray) -> list[tuple[float, np.ndarray]]:
    """All rectangles aligned with an edge of the shapely hull of one set: (area, 4 corners);
    one (area 0) rectangle for a point or a segment."""
    hull = MultiPoint(pts).convex_hull
    if hull.geom_type == "Point":
        return [(0.0, np.repeat(np.array(hull.coords), 4, 0))]
    ring = np.array(hull.coords if hull.geom_type == "LineString" else hull.exterior.coords)
    out = []
    for a, b in zip(ring[:-1], ring[1:]):
        u = (b - a) / np.linalg.norm(b - a)
        v = np.array([-u[1], u[0]])
        s, q = pts @ u, pts @ v
        corners = [si * u + qi * v for si, qi in [(s.min(), q.min()), (s.max(), q.min())]]
        corners += [si * u + qi * v for si, qi in [(s.max(), q.max()), (s.min(), q.max())]]
        out.append(((s.max() - s.min()) * (q.max() - q.min()), np.array(corners)))
    return out


def corner_distance(c1: np.ndarray, c2: np.ndarray) -> float:
    """Hausdorff distance between two sets of 4 corners."""
    d = np.linalg.norm(c1[:, None] - c2[None], axis=-1)
    return float(max(d.min(0).max(), d.min(1).max()))


def test_convex_hull_matches_shapely_and_is_in_hull_order():
    pts = point_sets(0)
    hull, is_vertex = convex_hull(pts)
    area = polygon_area(hull)
    ref = np.array([MultiPoint(p).convex_hull.area for p in pts.numpy()])
    np.testing.assert_allclose(area.numpy(), ref, rtol=1e-12, atol=1e-9)
    # the hull order keeps the interior on the left: every turn is a left turn (or straight)
    nxt, nxt2 = hull.roll(-1, 1), hull.roll(-2, 1)
    turn = (nxt - hull)[..., 0] * (nxt2 - nxt)[..., 1] - (nxt - hull)[..., 1] * (nxt2 - nxt)[..., 0]
    assert (turn >= -1e-9).all()
    # the vertices are input points, the padding repeats the first one
    assert torch.equal(hull[~is_vertex], hull[:, :1].expand_as(hull)[~is_vertex])
    n = len(pts) // 6
    assert (is_vertex[2 * n : 3 * n].sum(1) == 1).all()  # identical points: one vertex
    two = is_vertex[n : 2 * n].sum(1)  # collinear: the two ends (one where step is 0)
    assert ((two == 2) | ((two == 1) & (pts[n : 2 * n].std(1).sum(1) == 0))).all()


def test_convex_hull_hand_example_and_orientation():
    pts = torch.tensor([[[1.0, 0.5], [0, 1], [2, 1], [0, 0], [2, 0], [1, 0.5]]])
    hull, is_vertex = convex_hull(pts)
    assert hull[0][is_vertex[0]].tolist() == [[0, 0], [2, 0], [2, 1], [0, 1]]
    assert polygon_area(hull).item() == 2.0
    # a 0-area set keeps its hull on the segment
    seg, seg_vertex = convex_hull(torch.tensor([[[3.0, 3], [1, 1], [2, 2], [1, 1]]]))
    assert seg[0][seg_vertex[0]].tolist() == [[1, 1], [3, 3]]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_points_to_rbox_matches_cv2_and_reference_on_random_and_degenerate_sets(dtype):
    pts = point_sets(1).to(dtype)
    ours = points_to_rbox(pts).double()
    assert ours.dtype == torch.float64 and ours.shape == (len(pts), 5)
    # le90: w >= h, angle in [-90, 90)
    assert (ours[:, 2] >= ours[:, 3]).all()
    assert ((ours[:, 4] >= -90) & (ours[:, 4] < 90)).all()
    pts64 = pts.double().numpy()
    tol = 1e-9 if dtype == torch.float64 else 2e-4  # pixels, coordinates up to 100
    corners = rbox_to_poly(ours).view(-1, 4, 2).numpy()
    area = (ours[:, 2] * ours[:, 3]).numpy()
    unique = 0
    for i, p in enumerate(pts64):
        cv_rect = cv2.minAreaRect(p.astype(np.float32))
        cv_area = cv_rect[1][0] * cv_rect[1][1]
        # cv2 computes in float32; our float32 sides carry the rounding of coordinates ~100
        atol = 1e-4 if dtype == torch.float64 else 2e-4 * (ours[i, 2] + ours[i, 3]).item()
        assert abs(area[i] - cv_area) <= 1e-4 * cv_area + atol, i
        rects = reference_rects(p)
        best = min(a for a, _ in rects)
        assert abs(area[i] - best) <= tol * max(best, 1.0), i
        # the rectangle is one of the minimal ones, and cv2's where the minimum is unique
        minimal = [c for a, c in rects if a <= best * (1 + 1e-6) + 1e-9]
        assert min(corner_distance(corners[i], c) for c in minimal) < tol * 10, i
        if all(corner_distance(minimal[0], c) < 1e-6 for c in minimal):
            unique += 1
            assert corner_distance(corners[i], cv2.boxPoints(cv_rect)) < 1e-3, i
    assert unique > len(pts) // 2


def test_points_to_rbox_hand_examples():
    pts = torch.tensor(
        [
            [[0.0, 0], [4, 0], [4, 0], [10, 0], [7, 0], [0, 0]],  # a horizontal segment
            [[3.0, 4], [0, 0], [6, 8], [3, 4], [1.5, 2], [0, 0]],  # diagonal segment, length 10
            [[0.0, 0], [4, 0], [4, 3], [0, 0], [4, 3], [2, 0]],  # 3-4-5 right triangle
            [[5.0, 6], [5, 6], [5, 6], [5, 6], [5, 6], [5, 6]],  # one point
            [[0.0, 0], [10, 0], [10, 4], [0, 4], [3, 2], [8, 1]],  # an axis-aligned 10 x 4
        ],
        dtype=torch.float64,
    )
    out = points_to_rbox(pts)
    assert out[0].tolist() == [5, 0, 10, 0, 0]
    assert out[1].tolist() == pytest.approx([3, 4, 10, 0, -math.degrees(math.atan2(4, 3))])
    assert out[2].tolist() == pytest.approx([2, 1.5, 4, 3, 0])
    assert out[3].tolist() == [5, 6, 0, 0, 0]
    assert out[4].tolist() == pytest.approx([5, 2, 10, 4, 0])
    # any leading dimensions, K < 4 and a tall box turned to le90 (w the long side)
    tall = torch.tensor([[[[0.0, 0], [2, 0], [2, 6], [0, 6]]]])
    assert points_to_rbox(tall).shape == (1, 1, 5)
    assert points_to_rbox(tall)[0, 0].tolist() == pytest.approx([1, 3, 6, 2, -90])
    assert points_to_rbox(torch.tensor([[[1.0, 2.0]]])).tolist() == [[1, 2, 0, 0, 0]]
    assert points_to_rbox(torch.tensor([[[1.0, 2.0], [1.0, 4.0]]]))[0].tolist() == pytest.approx(
        [1, 3, 2, 0, -90]
    )


def test_traced_and_exported_points_to_rbox_match_eager_on_other_counts():
    example = point_sets(5, n=20).float()
    other = point_sets(6, n=37).float()
    traced = torch.jit.trace(points_to_rbox, (example,))
    torch.testing.assert_close(traced(other), points_to_rbox(other))

    class Rect(torch.nn.Module):
        def forward(self, pts: torch.Tensor) -> torch.Tensor:
            return points_to_rbox(pts)

    n = torch.export.Dim("n")
    ep = torch.export.export(Rect(), (example,), dynamic_shapes=({0: n},))
    torch.testing.assert_close(ep.module()(other), points_to_rbox(other))

"""points_in_polygons: against cv2.pointPolygonTest and shapely on random convex and non-convex
polygons, exact borders on integer coordinates, degenerate polygons, tracing and torch.export."""

import cv2
import numpy as np
import pytest
import torch
from shapely.geometry import Point, Polygon

from rotated_det.layers import points_in_polygons
from rotated_det.structures import points_in_rotated_boxes, rbox_to_poly


def star_polygons(gen: torch.Generator, b: int, m: int) -> torch.Tensor:
    """[b, m, 2] float64 simple polygons (star-shaped around their centres: mostly non-convex),
    in random vertex order direction."""
    angle = torch.sort(torch.rand(b, m, generator=gen, dtype=torch.float64) * 6.283, 1).values
    radius = torch.rand(b, m, generator=gen, dtype=torch.float64) * 8 + 2
    centre = torch.rand(b, 1, 2, generator=gen, dtype=torch.float64) * 20
    polys = centre + torch.stack([radius * angle.cos(), radius * angle.sin()], 2)
    flip = torch.rand(b, generator=gen) < 0.5
    polys[flip] = polys[flip].flip(1)
    return polys


def test_matches_cv2_and_shapely_on_random_polygons():
    gen = torch.Generator().manual_seed(0)
    triangles = star_polygons(gen, 10, 3)  # padded to 7 vertices by repeating the last
    triangles = torch.cat([triangles, triangles[:, -1:].expand(-1, 4, -1)], 1)
    polys = torch.cat([star_polygons(gen, 30, 7), triangles])
    pts = torch.rand(2000, 2, generator=gen, dtype=torch.float64) * 30 - 5
    got = points_in_polygons(pts, polys)
    assert got.shape == (2000, 40) and got.dtype == torch.bool
    assert 0.03 < got.float().mean() < 0.5
    shapes = [Polygon(q) for q in polys.numpy()]
    ref = np.array([[s.covers(Point(p)) for s in shapes] for p in pts.numpy()])
    np.testing.assert_array_equal(got.numpy(), ref)
    contours = [q.astype(np.float32) for q in polys.numpy()]
    ref_cv = np.array(
        [
            [cv2.pointPolygonTest(c, (float(x), float(y)), False) >= 0 for c in contours]
            for x, y in pts[:300].tolist()
        ]
    )
    np.testing.assert_array_equal(got[:300].numpy(), ref_cv)
    # float32 and flat [B, 2M] polygons give the same mask away from the borders
    flat = points_in_polygons(pts.float(), polys.float().flatten(1))
    assert (flat != got).float().mean() < 1e-3


def test_borders_are_inside_on_integer_coordinates():
    gen = torch.Generator().manual_seed(1)
    grid = torch.cartesian_prod(torch.arange(-1.0, 9), torch.arange(-1.0, 9))
    polys = []
    while len(polys) < 40:  # integer quadrilaterals and pentagons that shapely calls valid
        q = torch.randint(0, 8, (5, 2), generator=gen).double()
        q[4] = q[3] if len(polys) % 2 else q[4]  # half with a repeated vertex
        if Polygon(q.numpy()).is_valid and Polygon(q.numpy()).area > 0:
            polys.append(q)
    polys_t = torch.stack(polys)
    got = points_in_polygons(grid, polys_t)
    ref = np.array([[Polygon(q.numpy()).covers(Point(p)) for q in polys_t] for p in grid.numpy()])
    np.testing.assert_array_equal(got.numpy(), ref)
    assert got.sum() > ref.size * 0.1  # many grid points, borders included


def test_boxes_agree_with_points_in_rotated_boxes_and_degenerate_polygons():
    gen = torch.Generator().manual_seed(2)
    boxes = torch.cat(
        [
            torch.rand(20, 2, generator=gen, dtype=torch.float64) * 20,
            torch.rand(20, 2, generator=gen, dtype=torch.float64) * 10 + 1,
            torch.rand(20, 1, generator=gen, dtype=torch.float64) * 360,
        ],
        1,
    )
    pts = torch.rand(3000, 2, generator=gen, dtype=torch.float64) * 25
    got = points_in_polygons(pts, rbox_to_poly(boxes).view(-1, 4, 2))
    assert (got == points_in_rotated_boxes(pts, boxes)).float().mean() > 0.9999
    # a segment (zero area) contains its own points; a single point itself; NaN nothing
    degenerate = torch.tensor(
        [
            [[0.0, 0], [4, 0], [4, 0], [0, 0]],
            [[2.0, 2], [2, 2], [2, 2], [2, 2]],
            [[0.0, 0], [4, 0], [float("nan"), 4], [0, 4]],
        ]
    )
    probe = torch.tensor([[1.0, 0], [4, 0], [1, 1], [2, 2], [5, 0]])
    expected = [[True, False, False], [True, False, False], [False, False, False]]
    expected += [[False, True, False], [False, False, False]]
    assert points_in_polygons(probe, degenerate).tolist() == expected


def test_traced_and_exported_match_eager_on_other_counts():
    gen = torch.Generator().manual_seed(3)
    polys = star_polygons(gen, 6, 5).float()
    pts = torch.rand(50, 2, generator=gen) * 30
    other_polys = star_polygons(gen, 11, 5).float()
    other_pts = torch.rand(77, 2, generator=gen) * 30
    traced = torch.jit.trace(points_in_polygons, (pts, polys))
    assert torch.equal(traced(other_pts, other_polys), points_in_polygons(other_pts, other_polys))

    class Mask(torch.nn.Module):
        def forward(self, points: torch.Tensor, polygons: torch.Tensor) -> torch.Tensor:
            return points_in_polygons(points, polygons)

    p, b = torch.export.Dim("p"), torch.export.Dim("b")
    ep = torch.export.export(Mask(), (pts, polys), dynamic_shapes=({0: p}, {0: b}))
    assert torch.equal(
        ep.module()(other_pts, other_polys), points_in_polygons(other_pts, other_polys)
    )


def test_large_inputs_in_blocks_and_errors():
    gen = torch.Generator().manual_seed(4)
    polys = star_polygons(gen, 50, 4)
    pts = torch.rand(3000, 2, generator=gen, dtype=torch.float64) * 30  # 150k pairs: 3 blocks
    got = points_in_polygons(pts, polys)
    expected = torch.cat([points_in_polygons(pts[i : i + 500], polys) for i in range(0, 3000, 500)])
    assert torch.equal(got, expected)
    assert points_in_polygons(pts[:0], polys).shape == (0, 50)
    with pytest.raises(ValueError, match=r"points must have shape \[P, 2\]"):
        points_in_polygons(torch.zeros(3, 9, 2), polys)
    with pytest.raises(ValueError, match="polygons must"):
        points_in_polygons(pts, torch.zeros(3, 4, 3))
    with pytest.raises(ValueError, match="floating-point"):
        points_in_polygons(pts, polys.long())

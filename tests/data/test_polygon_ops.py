import numpy as np
import shapely.geometry as sg

from rotated_det.data.polygon_ops import (
    clip_polygons_to_rects,
    min_area_rect_corners,
    order_quads,
    polygon_areas,
)


def test_clip_matches_shapely_on_random_quads():
    rng = np.random.default_rng(0)
    quads = order_quads(rng.uniform(-60, 160, (300, 4, 2)))
    rects = np.concatenate([rng.uniform(-20, 40, (300, 2)), rng.uniform(60, 140, (300, 2))], 1)
    clipped = clip_polygons_to_rects(quads, rects)
    ref = [sg.Polygon(q).intersection(sg.box(*r)).area for q, r in zip(quads, rects)]
    np.testing.assert_allclose(polygon_areas(clipped), ref, atol=1e-8)
    # every clipped vertex lies inside its rectangle
    lo, hi = rects[:, None, :2], rects[:, None, 2:]
    nonempty = polygon_areas(clipped) > 0
    assert ((clipped >= lo - 1e-9) & (clipped <= hi + 1e-9))[nonempty].all()


def test_clip_hand_worked():
    square = np.array([[[0, 0], [10, 0], [10, 10], [0, 10]]], np.float64)
    out = clip_polygons_to_rects(square, np.array([5, -5, 20, 5]))
    assert polygon_areas(out)[0] == 25.0
    assert polygon_areas(clip_polygons_to_rects(square, np.array([20, 20, 30, 30])))[0] == 0.0
    assert clip_polygons_to_rects(np.zeros((0, 4, 2)), np.array([0, 0, 1, 1])).shape[0] == 0


def test_order_quads_fixes_bow_ties():
    bow = np.array([[[0, 0], [10, 10], [10, 0], [0, 10]]], np.float64)  # self-crossing
    assert polygon_areas(order_quads(bow))[0] == 100.0


def test_min_area_rect_matches_shapely():
    rng = np.random.default_rng(1)
    pts = rng.uniform(0, 100, (200, 7, 2))
    rect = min_area_rect_corners(pts)
    ref = [sg.MultiPoint(p).minimum_rotated_rectangle.area for p in pts]
    np.testing.assert_allclose(polygon_areas(rect), ref, rtol=1e-9, atol=1e-9)
    for r, p in zip(rect[:20], pts[:20]):
        assert sg.Polygon(r).buffer(1e-6).contains(sg.MultiPoint(p))


def test_numpy_box_corner_helpers_match_structures():
    from rotated_det.data.polygon_ops import rboxes_to_corners, rect_corners_to_rboxes
    from rotated_det.structures import rbox_to_poly

    rng = np.random.default_rng(2)
    boxes = np.concatenate(
        [
            rng.uniform(0, 100, (50, 2)),
            rng.uniform(1, 40, (50, 2)),
            rng.uniform(-180, 180, (50, 1)),
        ],
        axis=1,
    )
    corners = rboxes_to_corners(boxes)
    np.testing.assert_allclose(corners.reshape(-1, 8), np.asarray(rbox_to_poly(boxes)), atol=1e-9)
    back = rect_corners_to_rboxes(corners)
    ang = (boxes[:, 4] + 180) % 360 - 180
    np.testing.assert_allclose(back[:, :4], boxes[:, :4], atol=1e-9)
    np.testing.assert_allclose(np.cos(np.radians(back[:, 4] - ang)), 1.0, atol=1e-9)


def test_quads_to_rboxes_matches_shapely_and_structures():
    from rotated_det.data.polygon_ops import normalize_le90, quads_to_rboxes, rboxes_to_corners
    from rotated_det.structures import normalize_rbox_angles, poly_to_rbox

    rng = np.random.default_rng(3)
    pts = rng.uniform(0, 100, (500, 8))
    boxes = quads_to_rboxes(pts)
    assert (boxes[:, 2] >= boxes[:, 3]).all()
    assert ((boxes[:, 4] >= -90) & (boxes[:, 4] < 90)).all()
    for b, p in zip(boxes[:100], pts[:100]):
        ref = sg.MultiPoint(p.reshape(4, 2)).minimum_rotated_rectangle.area
        assert b[2] * b[3] == np.float64(ref) or abs(b[2] * b[3] - ref) < 1e-6 * ref
        assert (
            sg.Polygon(rboxes_to_corners(b[None])[0])
            .buffer(1e-6)
            .contains(sg.MultiPoint(p.reshape(4, 2)))
        )
    # noisy rectangles: the same boxes as the structures' conversion, except where two different
    # rectangles have exactly the same (minimal) area, which the two break differently
    rb = np.concatenate(
        [
            rng.uniform(50, 500, (300, 2)),
            rng.uniform(5, 80, (300, 2)),
            rng.uniform(-180, 180, (300, 1)),
        ],
        axis=1,
    )
    noisy = rboxes_to_corners(rb).reshape(-1, 8) + rng.uniform(-0.3, 0.3, (300, 8))
    ours, ref = quads_to_rboxes(noisy), np.asarray(poly_to_rbox(noisy))
    np.testing.assert_allclose(ours[:, 2] * ours[:, 3], ref[:, 2] * ref[:, 3], rtol=1e-9)
    same = np.abs(ours - ref).max(axis=1) < 1e-7
    assert same.mean() > 0.9
    np.testing.assert_allclose(
        normalize_le90(rb), np.asarray(normalize_rbox_angles(rb, "le90")), atol=1e-9
    )
    # degenerate and NaN rows
    out = quads_to_rboxes(np.array([[0.0] * 8, [np.nan] * 8, [0, 0, 10, 0, 20, 0, 5, 0]]))
    np.testing.assert_array_equal(out[0], [0, 0, 0, 0, 0])
    assert np.isnan(out[1]).all()
    np.testing.assert_allclose(out[2], [10, 0, 20, 0, 0])

import numpy as np
import shapely.geometry as sg

from rotated_det.data.polygon_ops import clip_polygons_to_rects, order_quads, polygon_areas


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

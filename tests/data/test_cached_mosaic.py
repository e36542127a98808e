"""CachedMosaic: placement of the four images and of their wholly visible boxes (hand-checked
corners), the split tool's visibility rule for objects cut by the mosaic borders, the cache."""

import numpy as np
import pytest

from rotated_det.data import CachedMosaic
from rotated_det.data.dota_split import assign_objects_to_windows
from rotated_det.data.image_mixing import ImageCache, LabeledImage, objects_in_window
from rotated_det.structures import rbox_to_poly


def _tile(k, boxes, size=(100, 100)):
    """Tile ``k``: pixel (row y, col x) = 10000 k + 100 y + x (exact in float32)."""
    h, w = size
    y, x = np.mgrid[0:h, 0:w]
    img = (10000 * k + 100 * y + x).astype(np.float32)[:, :, None]
    n = len(boxes)
    return LabeledImage(img, np.asarray(boxes, float).reshape(-1, 5), np.full(n, k), np.zeros(n))


def _corners(box):
    """Corners of one box as a set of rounded (x, y) points (order-free comparison)."""
    return {tuple(np.round(p, 6)) for p in rbox_to_poly(np.asarray([box], float)).reshape(4, 2)}


# Quadrants 100 x 100 and the centre (120, 80) of the 200 x 200 canvas. Canvas region and part
# of the (unscaled, 100 x 100) tile shown, worked by hand:
#   top left     canvas x [20, 120) y [0, 80)     tile x [0, 100) y [20, 100)   shift (+20, -20)
#   top right    canvas x [120, 200) y [0, 80)    tile x [0, 80)  y [20, 100)   shift (+120, -20)
#   bottom left  canvas x [20, 120) y [80, 180)   tile x [0, 100) y [0, 100)    shift (+20, +80)
#   bottom right canvas x [120, 200) y [80, 180)  tile x [0, 80)  y [0, 100)    shift (+120, +80)
CENTER = (120.0, 80.0)
SHIFTS = [(20, -20), (120, -20), (20, 80), (120, 80)]


def test_four_tiles_land_in_their_quadrants_with_their_whole_boxes():
    mosaic = CachedMosaic(image_size=100, pad_value=-1.0)
    # wholly visible boxes: an axis-aligned 20 x 10, a square of side 10 sqrt(2) turned 45 deg
    tiles = [
        _tile(0, [[50, 60, 20, 10, 0]]),
        _tile(1, [[40, 50, 10 * np.sqrt(2), 10 * np.sqrt(2), 45]]),
        _tile(2, [[30, 30, 20, 10, 90]]),
        _tile(3, [[60, 70, 20, 10, 0]]),
    ]
    out, dropped = mosaic.combine(tiles, CENTER)
    assert out.image.shape == (200, 200, 1) and dropped == 0
    img = out.image[:, :, 0]
    # pixels: each canvas pixel comes from its tile at the hand-worked offset
    for k, (dx, dy) in enumerate(SHIFTS):
        x0, x1 = (20, 120) if k in (0, 2) else (120, 200)
        y0, y1 = (0, 80) if k in (0, 1) else (80, 180)
        for x, y in [(x0, y0), (x1 - 1, y1 - 1), ((x0 + x1) // 2, (y0 + y1) // 2)]:
            assert img[y, x] == 10000 * k + 100 * (y - dy) + (x - dx), (k, x, y)
    assert (img[:, :20] == -1).all() and (img[180:] == -1).all()  # no image there
    np.testing.assert_array_equal(out.classes, [0, 1, 2, 3])
    # corners worked by hand in canvas pixels
    expected = [
        {(60, 35), (80, 35), (80, 45), (60, 45)},  # (50, 60) + (20, -20), 20 x 10
        {(150, 30), (160, 20), (170, 30), (160, 40)},  # (40, 50) + (120, -20), diamond
        {(45, 100), (55, 100), (55, 120), (45, 120)},  # (30, 30) + (20, 80), turned 90
        {(170, 145), (190, 145), (190, 155), (170, 155)},  # (60, 70) + (120, 80)
    ]
    for box, corners in zip(out.boxes, expected):
        assert _corners(box) == {(float(x), float(y)) for x, y in corners}
    # a wholly visible box is moved, never reshaped: sizes and angles as given
    np.testing.assert_allclose(out.boxes[:, 2:], [t.boxes[0, 2:] for t in tiles], atol=1e-9)


def test_tiles_are_scaled_to_fit_the_quadrant_with_their_boxes():
    mosaic = CachedMosaic(image_size=100)
    big = _tile(0, [[100, 60, 40, 20, 30]], size=(120, 200))  # scale 0.5 -> 60 x 100
    tiles = [big] + [_tile(k, []) for k in (1, 2, 3)]
    out, _ = mosaic.combine(tiles, (100.0, 100.0))
    # top left: canvas x [0, 100) y [40, 100) shows the whole scaled tile, shift (0, +40)
    np.testing.assert_allclose(out.boxes, [[50, 70, 20, 10, 30]], atol=1e-9)


def test_cut_objects_follow_the_split_tools_iof_rule():
    mosaic = CachedMosaic(image_size=100, iof_thr=0.7)
    # tile 0 shows y >= 20 (top edge of its window), tile 1 shows x < 80 (canvas edge)
    tiles = [
        _tile(0, [[50, 20, 20, 10, 0], [50, 22, 20, 10, 0]]),  # 50 % and 70 % visible
        _tile(1, [[79, 50, 20, 10, 0], [85, 50, 4, 4, 0]]),  # 45 % visible; wholly outside
        _tile(2, []),
        _tile(3, []),
    ]
    out, dropped = mosaic.combine(tiles, CENTER)
    assert dropped == 3
    # the 70 % visible box: y in [20, 27] of the tile -> [0, 7] of the canvas, cut straight
    assert out.boxes.shape == (1, 5)
    assert _corners(out.boxes[0]) == {(60.0, 0.0), (80.0, 0.0), (80.0, 7.0), (60.0, 7.0)}

    # random rotated boxes around the borders: kept exactly when the split tool keeps them
    rng = np.random.default_rng(0)
    n = 200
    boxes = np.column_stack(
        [
            rng.uniform(-10, 110, n),
            rng.uniform(-10, 110, n),
            rng.uniform(4, 40, n),
            rng.uniform(4, 40, n),
            rng.uniform(-180, 180, n),
        ]
    )
    tiles = [_tile(k, boxes) for k in range(4)]
    out, dropped = mosaic.combine(tiles, CENTER)
    kept = 0
    windows = [(0, 20, 100, 100), (0, 20, 80, 100), (0, 0, 100, 100), (0, 0, 80, 100)]
    for k, window in enumerate(windows):
        ref = assign_objects_to_windows(rbox_to_poly(boxes), np.asarray([window]), 0.7, (100, 100))
        mine = out.boxes[out.classes == k]
        assert len(mine) == len(ref.obj_idx)
        kept += len(mine)
        # same objects, same (clipped) shapes, moved by the tile's shift
        order = np.argsort(ref.obj_idx)
        ref_polys = ref.polys[order].reshape(-1, 4, 2) + np.asarray(SHIFTS[k])
        for box, poly in zip(mine, ref_polys):
            assert _corners(box) == {tuple(np.round(p, 6)) for p in _canon(poly)}
    assert kept + dropped == 4 * n and 0 < dropped < 4 * n


def _canon(poly):
    """The corners of a polygon as rbox_to_poly(poly_to_rbox(.)) writes them (float noise)."""
    from rotated_det.structures import poly_to_rbox

    return rbox_to_poly(poly_to_rbox(poly.reshape(1, 8))).reshape(4, 2)


def test_objects_in_window_keeps_whole_boxes_bit_exact():
    # the second box is half inside the window
    boxes = np.array([[30.123, 40.5, 10.25, 5.5, 33.3], [100.0, 50.0, 20.0, 10.0, 0.0]])
    idx, out = objects_in_window(boxes, (0, 0, 100, 100), 0.7, (100, 100))
    assert idx.tolist() == [0]
    assert np.array_equal(out[0], boxes[0])


def test_cache_warm_up_probability_and_output_size():
    mosaic = CachedMosaic(image_size=(50, 60), max_cached_images=6)
    np.random.seed(0)
    outs = [mosaic(_tile(k, [[20, 20, 8, 4, 0]], size=(40, 40)))[0] for k in range(8)]
    # nothing to combine with until the cache holds more than 4 images
    assert all(o.image.shape == (40, 40, 1) for o in outs[:4])
    assert all(o.image.shape == (100, 120, 1) for o in outs[4:])
    assert len(mosaic.cache) == 6  # first in, first out
    assert [mosaic.cache[i].classes[0] for i in range(6)] == [2, 3, 4, 5, 6, 7]
    never = CachedMosaic(image_size=50, prob=0.0)
    assert all(never(_tile(k, []))[0].image.shape == (100, 100, 1) for k in range(6))
    mosaic.reset()
    assert len(mosaic.cache) == 0


def test_copies_for_workers_start_empty_and_errors_name_the_argument():
    import pickle

    mosaic = CachedMosaic(image_size=50)
    mosaic(_tile(0, []))
    assert len(pickle.loads(pickle.dumps(mosaic)).cache) == 0 and len(mosaic.cache) == 1
    with pytest.raises(ValueError, match="image_size"):
        CachedMosaic(image_size=(0, 10))
    with pytest.raises(ValueError, match="prob"):
        CachedMosaic(prob=2.0)
    with pytest.raises(ValueError, match="max_cached_images"):
        ImageCache(0)
    with pytest.raises(ValueError, match="same length"):
        LabeledImage(np.zeros((4, 4, 1)), np.zeros((2, 5)), np.zeros(1), np.zeros(2))

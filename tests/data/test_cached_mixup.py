"""CachedMixUp: pixels are the half-and-half blend of the input and the drawn image's window,
boxes are the input's followed by the drawn image's (scaled, flipped, moved), cut objects follow
the split tool's rule; the cache and its warm-up."""

import numpy as np
import pytest

from rotated_det.data import CachedMixUp
from rotated_det.data.image_mixing import LabeledImage


def _image(value, h, w, boxes, cls):
    n = len(boxes)
    img = np.full((h, w, 3), value, dtype=np.uint8)
    return LabeledImage(img, np.asarray(boxes, float).reshape(-1, 5), np.full(n, cls), np.zeros(n))


def test_same_size_blend_averages_pixels_and_concatenates_boxes():
    mix = CachedMixUp(image_size=(40, 60))
    a = _image(100, 40, 60, [[20, 20, 10, 6, 30], [40, 10, 8, 8, 0]], cls=0)
    b = _image(50, 40, 60, [[30, 25, 12, 4, -60]], cls=1)
    out, dropped = mix.blend(a, b, (40, 60), flip=False, offset=(0, 0))
    assert dropped == 0 and out.image.dtype == np.uint8 and out.image.shape == (40, 60, 3)
    assert (out.image == 75).all()  # (100 + 50) / 2
    np.testing.assert_array_equal(out.boxes, np.concatenate([a.boxes, b.boxes]))
    np.testing.assert_array_equal(out.classes, [0, 0, 1])
    # rounding to the nearest integer: (101 + 50) / 2 = 75.5 -> 76 (half to even)
    out, _ = mix.blend(_image(101, 40, 60, [], 0), b, (40, 60), False, (0, 0))
    assert (out.image == 76).all()


def test_scaled_flipped_and_offset_window():
    mix = CachedMixUp(image_size=(40, 60), pad_value=0)
    a = _image(0, 40, 60, [], cls=0)
    y, x = np.mgrid[0:20, 0:30]
    b_img = np.stack([x * 2, y * 2, np.full_like(x, 7)], axis=2).astype(np.uint8)
    b = LabeledImage(b_img, [[10, 5, 6, 2, 20]], [1], [0])
    # b scaled x2 to 40 x 60, flipped left-right, window at offset (x=0, y=0) of the same size
    out, dropped = mix.blend(a, b, (40, 60), flip=True, offset=(0, 0))
    assert dropped == 0
    # box: centre (20, 10) after the scale, x -> 60 - x after the flip; angle negated
    np.testing.assert_allclose(out.boxes, [[40, 10, 12, 4, -20]], atol=1e-9)
    # a window smaller than the drawn image: b scaled x4 to 80 x 120, window (10, 10) + 40 x 60
    out, dropped = mix.blend(a, b, (80, 120), flip=False, offset=(10, 10))
    np.testing.assert_allclose(out.boxes, [[40 - 10, 20 - 10, 24, 8, 20]], atol=1e-9)
    assert dropped == 0
    # window at (10, 20): the box's centre lands on the window's top edge, half of it outside
    out, dropped = mix.blend(a, b, (80, 120), flip=False, offset=(10, 20))
    assert len(out.boxes) == 0 and dropped == 1
    # pixels: the blue channel is 7 everywhere in b -> round(0.5 * 7) = 4 (half to even)
    assert (out.image[:, :, 2] == 4).all()


def test_window_rule_for_objects_of_the_drawn_image():
    mix = CachedMixUp(image_size=(40, 60), pad_value=114)
    a = _image(0, 40, 60, [], cls=0)
    # b smaller than a: the rest of the window is padding; b's objects lie inside b
    b = _image(200, 20, 30, [[15, 10, 10, 4, 0], [30, 10, 4, 4, 0]], cls=1)
    out, dropped = mix.blend(a, b, (20, 30), flip=False, offset=(0, 0))
    assert (out.image[:20, :30] == 100).all() and (out.image[20:] == 57).all()
    # the second box sticks out of its own image (half outside): the split rule drops it
    np.testing.assert_allclose(out.boxes, [[15, 10, 10, 4, 0]])
    assert dropped == 1
    # a box 70 % inside the window is kept, cut to the visible part
    b = _image(200, 40, 60, [[30, 3, 10, 10, 0]], cls=1)  # y in [-2, 8]: 80 % in b
    out, dropped = mix.blend(a, b, (40, 60), flip=False, offset=(0, 0))
    np.testing.assert_allclose(out.boxes, [[30, 4, 10, 8, 0]], atol=1e-9)


def test_cache_probability_and_draws():
    mix = CachedMixUp(image_size=(40, 60), ratio_range=(1.0, 1.0), max_cached_images=3)
    np.random.seed(0)
    first, _ = mix(_image(10, 40, 60, [[20, 20, 10, 6, 0]], cls=0))
    assert (first.image == 10).all()  # nothing to mix with yet
    outs = [mix(_image(10 * k, 40, 60, [[20, 20, 10, 6, 0]], cls=k))[0] for k in range(1, 6)]
    assert len(mix.cache) == 3
    for k, o in enumerate(outs, start=1):
        # blended with an image of the cache (possibly itself): two boxes, the input's first
        assert len(o.boxes) == 2 and o.classes[0] == k
        assert o.classes[1] in range(max(0, k - 2), k + 1)
    never = CachedMixUp(prob=0.0)
    for k in range(4):
        assert (never(_image(k, 8, 8, [[4, 4, 2, 2, 0]], 0))[0].image == k).all()
    with pytest.raises(ValueError, match="ratio_range"):
        CachedMixUp(ratio_range=(2.0, 1.0))
    with pytest.raises(ValueError, match="flip_prob"):
        CachedMixUp(flip_prob=-0.1)


def test_blend_of_other_dtypes_matches_the_uint8_rule():
    mix = CachedMixUp(image_size=(4, 4))
    rng = np.random.default_rng(0)
    a8, b8 = (rng.integers(0, 256, (4, 4, 3), dtype=np.uint8) for _ in range(2))
    ref = np.rint((a8.astype(float) + b8) / 2)  # half to even
    for dtype in (np.uint8, np.uint16, np.float32):
        a = LabeledImage(a8.astype(dtype), np.zeros((0, 5)), [], [])
        b = LabeledImage(b8.astype(dtype), [[2, 2, 2, 2, 0]], [0], [0])
        out, _ = mix.blend(a, b, (4, 4), False, (0, 0))
        assert out.image.dtype == dtype
        expected = ref if dtype != np.float32 else (a8.astype(float) + b8) / 2
        np.testing.assert_array_equal(out.image, expected.astype(dtype))

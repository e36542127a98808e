import hashlib
import os

import cv2
import numpy as np
import pytest

from rotated_det.data.datasets.dota import load_dota_instances
from rotated_det.data.datasets.synthetic import (
    SYNTHETIC_CLASSES,
    SYNTHETIC_COLORS,
    generate_synthetic_dataset,
    render_scene,
)
from rotated_det.structures import rbox_to_poly


def _digest(root):
    h = hashlib.sha256()
    for dp, _, fs in sorted(os.walk(root)):
        for f in sorted(fs):
            if f.endswith((".png", ".txt")):
                h.update(f.encode())
                with open(os.path.join(dp, f), "rb") as fh:
                    h.update(fh.read())
    return h.hexdigest()


def test_deterministic_for_a_seed(tmp_path):
    kw = dict(num_train=3, num_val=1, image_size=512, progress=False)
    generate_synthetic_dataset(str(tmp_path / "a"), seed=3, **kw)
    generate_synthetic_dataset(str(tmp_path / "b"), seed=3, **kw)
    generate_synthetic_dataset(str(tmp_path / "c"), seed=4, **kw)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    dicts = load_dota_instances(
        str(tmp_path / "a" / "train" / "images"),
        str(tmp_path / "a" / "train" / "labelTxt"),
        SYNTHETIC_CLASSES,
    )
    assert len(dicts) == 3 and all(len(d["annotations"]) > 5 for d in dicts)


def _mask(shape, box):
    m = np.zeros(shape, np.uint8)
    pts = np.asarray(rbox_to_poly(np.asarray([box], np.float64))).reshape(4, 2)
    cv2.fillPoly(m, [np.round(pts * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    return m.astype(bool)


@pytest.mark.slow
def test_labels_cover_the_rendered_objects():
    img, boxes, classes, difficult = render_scene(np.random.default_rng(7), 900, 1100)
    assert img.shape == (900, 1100, 3) and img.dtype == np.uint8
    assert len(boxes) > 40 and set(classes.tolist()) == set(range(len(SYNTHETIC_CLASSES)))
    long_side = np.maximum(boxes[:, 2], boxes[:, 3])
    assert long_side.min() >= 16 - 1e-6 and long_side.max() <= 120 + 1e-6
    assert (np.maximum(boxes[:, 2], boxes[:, 3]) / np.minimum(boxes[:, 2], boxes[:, 3])).max() > 3
    # For solid rectangular classes (vehicle, court, container) most pixels of each visible box
    # have the class colour, and a ring just outside the box mostly does not.
    inside_fracs, ring_fracs = [], []
    for b, c, d in zip(boxes, classes, difficult):
        if c not in (2, 4, 5) or d:
            continue
        bgr = np.asarray(SYNTHETIC_COLORS[c][::-1], np.float64)
        close = np.linalg.norm(img.astype(np.float64) - bgr, axis=2) < 60
        shrunk = _mask(img.shape[:2], [*b[:2], b[2] - 3, b[3] - 3, b[4]])
        ring = _mask(img.shape[:2], [*b[:2], b[2] + 8, b[3] + 8, b[4]]) & ~_mask(
            img.shape[:2], [*b[:2], b[2] + 2, b[3] + 2, b[4]]
        )
        inside_fracs.append(close[shrunk].mean())
        ring_fracs.append(close[ring].mean())
    assert len(inside_fracs) > 10
    assert np.median(inside_fracs) > 0.6
    assert np.median(ring_fracs) < 0.15


def test_some_images_are_larger_than_a_patch(tmp_path):
    s = generate_synthetic_dataset(
        str(tmp_path), num_train=10, num_val=0, seed=0, large_fraction=0.3, progress=False
    )
    assert s["train"]["images"] == 10 and s["train"]["objects"] > 100
    sizes = [
        cv2.imread(str(tmp_path / "train" / "images" / f)).shape[:2]
        for f in sorted(os.listdir(tmp_path / "train" / "images"))
    ]
    assert any(max(hw) > 900 for hw in sizes) and any(max(hw) <= 640 for hw in sizes)
    # a second call with the same arguments reuses the files
    assert (
        generate_synthetic_dataset(
            str(tmp_path), num_train=10, num_val=0, seed=0, large_fraction=0.3, progress=False
        )
        == s
    )

"""COCO instance-segmentation polygons as rotated boxes (rotated_det.data.datasets.coco_polygons),
the form of HRSID's ``annotations/*.json``: polygons of any number of points, ``bbox`` [x, y, w,
h], one "ship" category with id 1."""

import json

import cv2
import numpy as np
import pytest
from rotated_box_examples import BOX_30, CORNERS_30

from rotated_det.data import MetadataCatalog
from rotated_det.data.datasets.coco_polygons import load_coco_polygon_json
from rotated_det.structures import points_to_rbox


def _mid(p, q):
    return ((p[0] + q[0]) / 2, (p[1] + q[1]) / 2)


def _flat(points):
    return [float(v) for p in points for v in p]


# The 30-degree box as a 7-point polygon: its corners with edge midpoints in between (a mask
# outline rarely has exactly 4 points).
C = CORNERS_30
POLY_30 = [C[0], _mid(C[0], C[1]), C[1], C[2], _mid(C[2], C[3]), C[3], _mid(C[3], C[0])]


def _hrsid(anns, images=None):
    return {
        "images": images
        or [{"id": 1, "file_name": "P0001_0_800_0_800.jpg", "height": 800, "width": 800}],
        "annotations": anns,
        "categories": [{"id": 1, "name": "ship", "supercategory": "ship"}],
    }


def _ann(i, seg, bbox=(0, 0, 1, 1), **kw):
    ann = {"id": i, "image_id": 1, "category_id": 1, "segmentation": seg, "bbox": list(bbox)}
    return {**ann, "area": 1.0, "iscrowd": 0, **kw}


def _write(tmp_path, coco):
    path = tmp_path / "train2017.json"
    path.write_text(json.dumps(coco))
    return str(path)


def test_polygons_give_minimum_area_rectangles(tmp_path, capture_logs):
    rect6 = [(10, 20), (30, 20), (50, 20), (50, 30), (30, 30), (10, 30)]  # 40 x 10, axis-aligned
    two_parts = [[200, 100, 210, 100, 210, 104], [240, 100, 240, 104, 230, 104]]
    coco = _hrsid(
        [
            _ann(1, [_flat(rect6)]),
            _ann(2, [_flat(POLY_30)], iscrowd=1),
            _ann(3, two_parts),
            _ann(4, {"size": [800, 800], "counts": "abc"}, bbox=(5, 6, 20, 8)),  # RLE
            _ann(5, _flat(CORNERS_30)),  # a flat polygon
        ]
    )
    with capture_logs("rotated_det.data.datasets.coco_polygons") as logs:
        (d,) = load_coco_polygon_json(_write(tmp_path, coco), str(tmp_path), "hrsid_unit_test")
    assert (d["image_id"], d["height"], d["width"]) == (1, 800, 800)
    assert d["file_name"] == str(tmp_path / "P0001_0_800_0_800.jpg")
    boxes = [a["bbox"] for a in d["annotations"]]
    np.testing.assert_allclose(boxes[0], [30, 25, 40, 10, 0], atol=1e-9)
    np.testing.assert_allclose(boxes[1], BOX_30, atol=1e-6)
    np.testing.assert_allclose(boxes[2], [220, 102, 40, 4, 0], atol=1e-9)  # encloses both parts
    np.testing.assert_allclose(boxes[3], [15, 10, 20, 8, 0], atol=1e-9)  # from the bbox
    np.testing.assert_allclose(boxes[4], BOX_30, atol=1e-6)
    assert [a["difficult"] for a in d["annotations"]] == [0, 1, 0, 0, 0]
    assert {a["category_id"] for a in d["annotations"]} == {0}
    assert MetadataCatalog.get("hrsid_unit_test").thing_classes == ["ship"]
    np.testing.assert_allclose(d["annotations"][0]["poly"], [10, 20, 50, 20, 50, 30, 10, 30])
    assert "1 annotations have no polygon" in logs.text


def test_grouping_by_point_count_matches_one_by_one(tmp_path):
    """Objects are converted in groups of equal point counts; each box equals the conversion of
    its own points alone."""
    rng = np.random.default_rng(0)
    polys = [rng.uniform(0, 800, 2 * rng.integers(3, 12)).tolist() for _ in range(40)]
    images = [{"id": i, "file_name": f"{i}.jpg", "height": 800, "width": 800} for i in (1, 2)]
    anns = [dict(_ann(k, [p]), image_id=1 + k % 2) for k, p in enumerate(polys)]
    dicts = load_coco_polygon_json(_write(tmp_path, _hrsid(anns, images)), str(tmp_path))
    by_image = [a["bbox"] for d in dicts for a in d["annotations"]]
    order = [k for i in (0, 1) for k in range(len(polys)) if k % 2 == i]
    for k, box in zip(order, by_image):
        ref = points_to_rbox(np.asarray(polys[k]).reshape(1, -1, 2))[0]
        np.testing.assert_allclose(box, ref, atol=1e-9)
    assert len(by_image) == len(polys)


def test_errors_name_file_and_annotation(tmp_path):
    cases = [
        (_hrsid([_ann(7, [[1, 2, 3, 4, 5]])]), ValueError, r"annotation id 7: .*5 numbers"),
        (_hrsid([_ann(7, [[1, 2, 3, 4]])]), ValueError, r"annotation id 7: .*k >= 3 points"),
        (_hrsid([_ann(7, [[1, 2, "x", 4, 5, 6]])]), ValueError, r"annotation id 7: malformed"),
        (
            _hrsid([_ann(7, [[1, 2, 3, 4, 5, 6]], category_id=2)]),
            KeyError,
            r"annotation id 7: unknown category_id 2",
        ),
        (
            _hrsid([_ann(7, [[1, 2, 3, 4, 5, 6]], image_id=9)]),
            KeyError,
            r"annotation id 7: image_id 9",
        ),
        (_hrsid([_ann(7, [], bbox=())]), ValueError, r"annotation id 7: no polygon"),
        (
            _hrsid([], images=[{"id": 1, "file_name": "a.jpg", "height": 0, "width": 5}]),
            ValueError,
            r"image id 1 has height 0",
        ),
    ]
    for coco, exc, pattern in cases:
        with pytest.raises(exc, match=r"train2017\.json: " + pattern):
            load_coco_polygon_json(_write(tmp_path, coco), str(tmp_path))
    (tmp_path / "train2017.json").write_text("{")
    with pytest.raises(ValueError, match=r"train2017\.json: not valid JSON"):
        load_coco_polygon_json(str(tmp_path / "train2017.json"), str(tmp_path))


def test_missing_image_size_is_read_from_the_image(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((30, 50, 3), np.uint8))
    coco = _hrsid([], images=[{"id": "a", "file_name": "a.png"}])
    (d,) = load_coco_polygon_json(_write(tmp_path, coco), str(tmp_path))
    assert (d["height"], d["width"], d["annotations"]) == (30, 50, [])

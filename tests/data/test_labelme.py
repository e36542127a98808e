"""labelme JSON files (rotated_det.data.datasets.labelme), on fixtures in labelme's format."""

import json

import cv2
import numpy as np
import pytest

from rotated_det.data import DatasetCatalog, MetadataCatalog
from rotated_det.data.datasets.labelme import (
    convert_to_labelme_dict,
    load_labelme_instances,
    parse_labelme_dict,
    register_labelme_instances,
)
from rotated_det.structures import BoxMode, rbox_corner_distance

# A box of 40 x 10 px centred at (100, 50), turned 30 degrees counter-clockwise on screen: its
# w-axis is u = (cos 30, -sin 30) = (0.8660, -0.5), its h-axis v = (0.5, 0.8660); the corners
# (100, 50) -/+ 20 u -/+ 5 v, worked out by hand and rounded to 4 decimals.
ROTATED_CORNERS = [[80.1795, 55.6699], [114.8205, 35.6699], [119.8205, 44.3301], [85.1795, 64.3301]]


def _shape(label, points, shape_type="polygon", **extra):
    return {
        "label": label,
        "points": points,
        "group_id": None,
        "description": "",
        "shape_type": shape_type,
        "flags": {},
        "mask": None,
        **extra,
    }


def _labelme_file(shapes, image_path="a.png", height=100, width=200):
    return {
        "version": "5.5.0",
        "flags": {},
        "shapes": shapes,
        "imagePath": image_path,
        "imageData": None,
        "imageHeight": height,
        "imageWidth": width,
    }


def _write(folder, name, data):
    path = folder / name
    path.write_text(json.dumps(data))
    return path


def _image(path, h=100, w=200):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.zeros((h, w, 3), np.uint8))


@pytest.fixture
def labelme_dir(tmp_path):
    """a.json: an axis-aligned 4-point polygon, X-AnyLabeling's rotated rectangle (difficult),
    labelme's 2-point rectangle, a 6-point outline and a circle; b.json: no shapes."""
    _image(tmp_path / "a.png")
    _image(tmp_path / "b.jpg", 60, 80)
    shapes = [
        _shape("car", [[20, 30], [60, 30], [60, 40], [20, 40]]),
        _shape("ship", ROTATED_CORNERS, "rotation", direction=0.5236, difficult=True),
        _shape("car", [[150, 10], [130, 20]], "rectangle"),
        # a 20 x 10 px outline with points along its long sides
        _shape("ship", [[10, 70], [20, 70], [30, 70], [30, 80], [20, 80], [10, 80]]),
        _shape("ship", [[50, 50], [55, 50]], "circle"),
    ]
    _write(tmp_path, "a.json", _labelme_file(shapes))
    _write(tmp_path, "b.json", _labelme_file([], "b.jpg", None, None))
    return tmp_path


def test_load_hand_worked_boxes(labelme_dir, capture_logs):
    with capture_logs("rotated_det.data.datasets.labelme") as logs:
        a, b = load_labelme_instances(str(labelme_dir), dataset_name="lm_hand")
    assert MetadataCatalog.get("lm_hand").thing_classes == ["car", "ship"]  # sorted, found
    assert a["file_name"] == str(labelme_dir / "a.png") and a["image_id"] == "a"
    assert (a["height"], a["width"]) == (100, 200)
    # b has no imageHeight/imageWidth: read from the image; no shapes: no objects
    assert (b["height"], b["width"], b["annotations"]) == (60, 80, [])
    anns = a["annotations"]
    assert [x["category_id"] for x in anns] == [0, 1, 0, 1]
    assert [x["difficult"] for x in anns] == [0, 1, 0, 0]
    assert all(x["bbox_mode"] == BoxMode.XYWHA_ABS for x in anns)
    expected = np.array(
        [[40, 35, 40, 10, 0], [100, 50, 40, 10, 30], [140, 15, 20, 10, 0], [20, 75, 20, 10, 0]]
    )
    got = np.array([x["bbox"] for x in anns])
    assert rbox_corner_distance(got, expected).max() < 1e-3
    np.testing.assert_allclose(got[1], expected[1], atol=1e-3)  # le90 keeps this one as is
    # poly: the points as clicked; the 2-point rectangle's 4 corners; the outline's rectangle
    np.testing.assert_allclose(anns[1]["poly"], np.ravel(ROTATED_CORNERS))
    np.testing.assert_allclose(anns[2]["poly"], [130, 10, 150, 10, 150, 20, 130, 20])
    assert rbox_corner_distance(np.array(anns[3]["bbox"]), expected[3]) < 1e-9
    assert "1 polygons with other than 4 points" in logs.text
    assert "1 shapes that are not boxes skipped (circle: 1)" in logs.text


def test_class_names_given_and_unknown(labelme_dir, capture_logs):
    (a, _) = load_labelme_instances(str(labelme_dir), class_names=["ship", "car"])
    assert [x["category_id"] for x in a["annotations"]] == [1, 0, 1, 0]
    with pytest.raises(KeyError, match=r"a\.json: shapes\[1\] \(label 'ship'\): unknown class"):
        load_labelme_instances(str(labelme_dir), class_names=["car"])
    with capture_logs("rotated_det.data.datasets.labelme") as logs:
        (a, _) = load_labelme_instances(str(labelme_dir), None, ["car"], unknown_classes="skip")
    assert len(a["annotations"]) == 2 and "2 shapes of unknown classes skipped" in logs.text


def test_strict_options_name_the_shape(labelme_dir):
    with pytest.raises(ValueError, match=r"a\.json: shapes\[3\] \(label 'ship'\): a polygon of 6"):
        load_labelme_instances(str(labelme_dir), polygons="error")
    with pytest.raises(ValueError, match=r"a\.json: shapes\[4\] .*'circle'.*not a box shape"):
        load_labelme_instances(str(labelme_dir), other_shapes="error")


@pytest.mark.parametrize(
    "shape, message",
    [
        (_shape("", [[0, 0], [1, 0], [1, 1]]), "no label"),
        (_shape("car", [[0, 0], [1, 0]]), "at least 3 points, got 2"),
        (_shape("car", [[0, 0], [1, 0], [1]]), r"point \[1\] is not an \[x, y\] pair"),
        (_shape("car", [[0, 0], [1, "2"], [1, 1]]), "pair of finite numbers"),
        (_shape("car", [[0, 0], [1, 0], [1, 1]], "rotation"), "a rotation has 4 points, got 3"),
        (_shape("car", [[0, 0], [1, 0], [1, 1]], "rectangle"), "2 or 4 points, got 3"),
        (_shape("car", "0 0 1 1"), "'points' is"),
    ],
)
def test_bad_shape_names_file_and_shape(shape, message):
    data = _labelme_file([_shape("car", [[0, 0], [1, 0], [1, 1], [0, 1]]), shape])
    with pytest.raises(ValueError, match=rf"x\.json: shapes\[1\] .*{message}"):
        parse_labelme_dict(data, "x.json")


def test_bad_files_name_the_file(tmp_path):
    _image(tmp_path / "a.png")
    (tmp_path / "a.json").write_text('{"shapes": [\n  {"label": "car",\n}')
    with pytest.raises(ValueError, match=r"a\.json: not valid JSON: .*line 3"):
        load_labelme_instances(str(tmp_path))
    _write(tmp_path, "a.json", {"shapes": {"label": "car"}})
    with pytest.raises(ValueError, match=r"a\.json: expected a labelme JSON object"):
        load_labelme_instances(str(tmp_path))
    _write(tmp_path, "a.json", _labelme_file([], "missing.png"))
    with pytest.raises(FileNotFoundError, match=r"a\.json: image .*missing\.png"):
        load_labelme_instances(str(tmp_path))
    _write(tmp_path, "a.json", _labelme_file([], "a.png", height=-3))
    with pytest.raises(ValueError, match=r"a\.json: 'imageHeight' is -3"):
        load_labelme_instances(str(tmp_path))
    nan = _shape("car", [[0, 0], [1, 0], [1, float("nan")], [0, 1]])
    _write(tmp_path, "a.json", _labelme_file([nan, nan]))
    with pytest.raises(
        ValueError, match=r"a\.json: shapes\[0\] .*\[1, nan\] is not an \[x, y\] pair of finite"
    ):
        load_labelme_instances(str(tmp_path))


def test_image_path_windows_separators_image_root_and_no_image_path(tmp_path):
    ann = tmp_path / "ann"
    ann.mkdir()
    _image(tmp_path / "images" / "a.png")
    _image(tmp_path / "images" / "c.png")
    box = [_shape("car", [[20, 30], [60, 30], [60, 40], [20, 40]])]
    _write(ann, "a.json", _labelme_file(box, "..\\images\\a.png"))
    (a,) = load_labelme_instances(str(ann))
    assert a["file_name"] == str(tmp_path / "images" / "a.png")
    # image_root: the file name of imagePath in that folder; no imagePath: the JSON's stem
    _write(ann, "c.json", _labelme_file(box, None))
    a, c = load_labelme_instances(str(ann), image_root=str(tmp_path / "images"))
    assert a["file_name"] == str(tmp_path / "images" / "a.png")
    assert c["file_name"] == str(tmp_path / "images" / "c.png")


def test_writer_round_trip_and_registration(labelme_dir, tmp_path):
    dicts = load_labelme_instances(str(labelme_dir), class_names=["car", "ship"])
    out = tmp_path / "out"
    out.mkdir()
    _image(out / "a.png")
    _image(out / "b.jpg", 60, 80)
    for d in dicts:
        data = convert_to_labelme_dict(d, ["car", "ship"])
        assert all(s["shape_type"] == "polygon" and len(s["points"]) == 4 for s in data["shapes"])
        _write(out, d["image_id"] + ".json", data)
    register_labelme_instances("lm_round_trip", {}, str(out), class_names=["car", "ship"])
    try:
        back = DatasetCatalog.get("lm_round_trip")
    finally:
        DatasetCatalog.remove("lm_round_trip")
    for d, e in zip(dicts, back, strict=True):
        assert (d["height"], d["width"]) == (e["height"], e["width"])
        for x, y in zip(d["annotations"], e["annotations"], strict=True):
            assert (x["category_id"], x["difficult"]) == (y["category_id"], y["difficult"])
            np.testing.assert_allclose(x["poly"], y["poly"], atol=1e-9)
            np.testing.assert_allclose(x["bbox"], y["bbox"], atol=1e-6)

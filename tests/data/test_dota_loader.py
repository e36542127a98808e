import logging
import math

import cv2
import numpy as np
import pytest
import shapely.geometry as sg

from rotated_det.data import DatasetCatalog, MetadataCatalog
from rotated_det.data.datasets.dota import load_dota_instances, register_dota_instances
from rotated_det.structures import BoxMode, rbox_to_poly
from rotated_det.structures.dota_format import DOTA_V1_CLASSES, parse_dota_label_file


def _write_image(path, h, w):
    cv2.imwrite(str(path), np.zeros((h, w, 3), np.uint8))


def _same_rect(box, expected):
    """Same physical rectangle (corner sets equal), whatever the representation."""
    a = np.asarray(rbox_to_poly(np.asarray([box], np.float64))).reshape(4, 2)
    b = np.asarray(rbox_to_poly(np.asarray([expected], np.float64))).reshape(4, 2)
    d = np.linalg.norm(a[:, None] - b[None], axis=-1)
    return d.min(axis=1).max() < 1e-6


def test_loaded_boxes_are_min_area_rects_covering_the_polygons(dota_samples):
    dicts = load_dota_instances(
        str(dota_samples / "images"), str(dota_samples / "labelTxt"), out_of_image="keep"
    )
    rec = {d["image_id"]: d for d in dicts}["P0706"]
    assert (rec["height"], rec["width"]) == (1182, 1111)
    assert rec["file_name"].endswith("P0706.png")
    annos = rec["annotations"]
    assert len(annos) == 536
    names = parse_dota_label_file(str(dota_samples / "labelTxt" / "P0706.txt")).class_names
    assert [DOTA_V1_CLASSES[a["category_id"]] for a in annos] == names
    for a in annos[::7]:
        assert a["bbox_mode"] == BoxMode.XYWHA_ABS
        poly = sg.Polygon(np.asarray(a["poly"]).reshape(4, 2))
        ref = sg.MultiPoint(np.asarray(a["poly"]).reshape(4, 2)).minimum_rotated_rectangle
        cx, cy, w, h, _ = a["bbox"]
        assert w * h == pytest.approx(ref.area, rel=1e-6, abs=1e-6)
        rect = sg.Polygon(np.asarray(rbox_to_poly(np.asarray([a["bbox"]]))).reshape(4, 2))
        assert rect.buffer(1e-6).contains(poly)


def test_loader_boxes_of_random_and_degenerate_quads(tmp_path):
    """Any 4 points (random order, bow ties, collinear, identical): the loaded box is the
    minimum-area rectangle of the points (shapely), covers them, and is in "le90" form."""
    (tmp_path / "img").mkdir()
    (tmp_path / "lbl").mkdir()
    _write_image(tmp_path / "img" / "a.png", 200, 200)
    rng = np.random.default_rng(3)
    quads = np.round(rng.uniform(0, 200, (300, 8)), 1)
    degenerate = [[50] * 8, [10, 10, 30, 10, 50, 10, 20, 10], [0, 0, 10, 10, 20, 20, 5, 5]]
    lines = [" ".join(f"{v:g}" for v in q) + " plane 0" for q in [*quads, *degenerate]]
    (tmp_path / "lbl" / "a.txt").write_text("\n".join(lines) + "\n")
    (rec,) = load_dota_instances(str(tmp_path / "img"), str(tmp_path / "lbl"))
    boxes = np.array([a["bbox"] for a in rec["annotations"]])
    assert len(boxes) == 303
    assert (boxes[:, 2] >= boxes[:, 3]).all()
    assert ((boxes[:, 4] >= -90) & (boxes[:, 4] < 90)).all()
    for b, q in zip(boxes[:300], quads):
        pts = sg.MultiPoint(q.reshape(4, 2))
        assert b[2] * b[3] == pytest.approx(pts.minimum_rotated_rectangle.area, rel=1e-9)
        rect = sg.Polygon(np.asarray(rbox_to_poly(b[None])).reshape(4, 2))
        assert rect.buffer(1e-6).contains(pts)
    np.testing.assert_allclose(boxes[300], [50, 50, 0, 0, boxes[300, 4]], atol=1e-12)
    np.testing.assert_allclose(boxes[301], [30, 10, 40, 0, 0], atol=1e-9)  # a segment
    np.testing.assert_allclose(boxes[302, 2:4], [20 * math.sqrt(2), 0], atol=1e-9)
    assert _same_rect(boxes[302], [10, 10, 20 * math.sqrt(2), 0, -45])


def test_hand_worked_box_convention(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "lbl").mkdir()
    _write_image(tmp_path / "img" / "a.png", 100, 120)
    # axis-aligned 40x10 box; and the same box turned 30 degrees counter-clockwise on screen
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    u, v = np.array([c, -s]), np.array([s, c])
    ctr = np.array([60.0, 50.0])
    corners = [
        ctr - 20 * u - 5 * v,
        ctr + 20 * u - 5 * v,
        ctr + 20 * u + 5 * v,
        ctr - 20 * u + 5 * v,
    ]
    rot = " ".join(f"{x:.6f} {y:.6f}" for x, y in corners)
    (tmp_path / "lbl" / "a.txt").write_text(f"10 20 50 20 50 30 10 30 plane 0\n{rot} ship 1\n")
    (ann0, ann1) = load_dota_instances(str(tmp_path / "img"), str(tmp_path / "lbl"))[0][
        "annotations"
    ]
    assert _same_rect(ann0["bbox"], [30, 25, 40, 10, 0])
    assert _same_rect(ann1["bbox"], [60, 50, 40, 10, 30])
    assert ann1["category_id"] == DOTA_V1_CLASSES.index("ship") and ann1["difficult"] == 1
    assert ann0["category_id"] == 0 and ann0["difficult"] == 0


def test_p0004_boxes_outside_the_image_are_dropped_and_counted(dota_samples, caplog):
    with caplog.at_level(logging.WARNING):
        dicts = load_dota_instances(str(dota_samples / "images"), str(dota_samples / "labelTxt"))
    rec = {d["image_id"]: d for d in dicts}["P0004__1__0___0"]
    assert (rec["height"], rec["width"]) == (294, 285)
    # 3 planes lie at x >= 398, outside the 285 px wide image; the 4th (messy order) is inside
    assert len(rec["annotations"]) == 1
    assert "3 objects outside their image" in caplog.text
    a = rec["annotations"][0]
    assert a["poly"] == [126.0, 191.0, 128.0, 171.0, 123.0, 178.0, 221.0, 199.0]
    cx, cy, w, h, _ = a["bbox"]
    assert w > 0 and h > 0  # the inconsistent vertex order still gives a valid box
    kept = load_dota_instances(
        str(dota_samples / "images"), str(dota_samples / "labelTxt"), out_of_image="keep"
    )
    assert len({d["image_id"]: d for d in kept}["P0004__1__0___0"]["annotations"]) == 4


def test_partly_outside_object_is_clipped(tmp_path, caplog):
    (tmp_path / "i").mkdir()
    (tmp_path / "l").mkdir()
    _write_image(tmp_path / "i" / "a.png", 100, 100)
    # 40x10 box, 30 px inside the image, 10 px beyond the right border
    (tmp_path / "l" / "a.txt").write_text("70 50 110 50 110 60 70 60 plane 0\n")
    with caplog.at_level(logging.INFO):
        (a,) = load_dota_instances(str(tmp_path / "i"), str(tmp_path / "l"))[0]["annotations"]
    assert _same_rect(a["bbox"], [85, 55, 30, 10, 0])
    assert "1 objects partly outside their image clipped" in caplog.text
    (d,) = load_dota_instances(str(tmp_path / "i"), str(tmp_path / "l"), out_of_image="drop")
    assert d["annotations"] == []
    (k,) = load_dota_instances(str(tmp_path / "i"), str(tmp_path / "l"), min_visible_fraction=0.9)
    assert k["annotations"] == []  # only 75% visible


def test_unknown_class_lists_known_classes(tmp_path, caplog):
    (tmp_path / "i").mkdir()
    (tmp_path / "l").mkdir()
    _write_image(tmp_path / "i" / "a.png", 50, 50)
    (tmp_path / "l" / "a.txt").write_text("1 2 3 2 3 4 1 4 plane 0\n1 2 3 2 3 4 1 4 zeppelin 0\n")
    with pytest.raises(KeyError) as e:
        load_dota_instances(str(tmp_path / "i"), str(tmp_path / "l"))
    assert "a.txt:2" in str(e.value) and "zeppelin" in str(e.value)
    assert "baseball-diamond" in str(e.value)  # known classes are listed
    with caplog.at_level(logging.WARNING):
        (d,) = load_dota_instances(str(tmp_path / "i"), str(tmp_path / "l"), unknown_classes="skip")
    assert len(d["annotations"]) == 1 and "1 objects of unknown classes skipped" in caplog.text


def test_unreadable_image_and_missing_label_name_the_path(tmp_path):
    (tmp_path / "i").mkdir()
    (tmp_path / "l").mkdir()
    (tmp_path / "i" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(OSError, match="bad.png"):
        load_dota_instances(str(tmp_path / "i"), str(tmp_path / "l"))
    (tmp_path / "i" / "bad.png").unlink()
    _write_image(tmp_path / "i" / "b.png", 10, 10)
    with pytest.raises(FileNotFoundError, match=r"b\.txt"):
        load_dota_instances(str(tmp_path / "i"), str(tmp_path / "l"))
    (d,) = load_dota_instances(str(tmp_path / "i"), str(tmp_path / "l"), missing_labels="empty")
    assert d["annotations"] == []
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dota_instances(str(tmp_path / "nope"), None)


def test_test_set_without_labels(dota_samples):
    dicts = load_dota_instances(str(dota_samples / "unlabeled"), None)
    assert len(dicts) == 2 and all("annotations" not in d for d in dicts)
    scene = {d["image_id"]: d for d in dicts}["dota_scene_1616x1565"]
    assert (scene["width"], scene["height"]) == (1616, 1565)


def test_register_dota_instances(dota_samples):
    name = "test_register_dota_samples"
    register_dota_instances(
        name,
        {"thing_colors": [(0, 0, 0)] * 15},
        str(dota_samples / "images"),
        str(dota_samples / "labelTxt"),
    )
    try:
        dicts = DatasetCatalog.get(name)
        assert sum(len(d["annotations"]) for d in dicts) == 1 + 536 + 64
        md = MetadataCatalog.get(name)
        assert md.thing_classes == list(DOTA_V1_CLASSES) and md.evaluator_type == "dota"
        assert md.image_root == str(dota_samples / "images")
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)

"""FAIR1M XML (rotated_det.data.datasets.fair1m): boxes, class names, errors, the conversion to
DOTA label files and datasets/prepare_fair1m.py. The fixtures follow the FAIR1M format: objects
under <objects>, the class in <possibleresult><name>, 5 "x,y" points (a closed ring)."""

import os

import cv2
import numpy as np
import pytest
from rotated_box_examples import BOX_30, CORNERS_30
from script_loading import load_script

from rotated_det.data import DatasetCatalog
from rotated_det.data.datasets.dota import load_dota_instances
from rotated_det.data.datasets.fair1m import (
    FAIR1M_CLASSES,
    convert_fair1m_to_dota,
    fair1m_class_name,
    load_fair1m_instances,
    parse_fair1m_xml,
)

SQUARE_ISH = [(544.0, 324.0), (604.0, 324.0), (604.0, 354.0), (544.0, 354.0)]  # 60 x 30


def _object(name, points, coordinate="pixel"):
    rows = ["    <object>", f"      <coordinate>{coordinate}</coordinate>"]
    rows += ["      <type>rectangle</type>", "      <description>None</description>"]
    rows += ["      <possibleresult>", f"        <name>{name}</name>", "      </possibleresult>"]
    rows += ["      <points>"] + [f"        <point>{x},{y}</point>" for x, y in points]
    return rows + ["      </points>", "    </object>"]


def _points(points):
    return "".join(f"        <point>{x},{y}</point>\n" for x, y in points)


def _xml(objects, size=(1000, 1200)):
    rows = ["<?xml version='1.0' encoding='utf-8'?>", "<annotation>", "  <source>"]
    rows += ["    <filename>0.tif</filename>", "    <origin>GF2/GF3</origin>", "  </source>"]
    if size is not None:
        rows += ["  <size>", f"    <width>{size[1]}</width>", f"    <height>{size[0]}</height>"]
        rows += ["    <depth>3</depth>", "  </size>"]
    rows += ["  <objects>"] + [r for o in objects for r in o] + ["  </objects>", "</annotation>"]
    return "\n".join(rows) + "\n"


def _ring(corners):
    return list(corners) + [corners[0]]


def _dataset(tmp_path, size=(1000, 1200)):
    imgs, xmls = tmp_path / "train" / "images", tmp_path / "train" / "labelXml"
    imgs.mkdir(parents=True), xmls.mkdir(parents=True)
    objs = [_object("Small Car", _ring(SQUARE_ISH)), _object("Boeing737", _ring(CORNERS_30))]
    (xmls / "0.xml").write_text(_xml(objs, size))
    (xmls / "1.xml").write_text(_xml([_object("Liquid Cargo Ship", CORNERS_30)], size))
    for stem in ("0", "1"):
        cv2.imwrite(str(imgs / f"{stem}.tif"), np.zeros((*size, 3), np.uint8))
    return imgs, xmls


def test_boxes_and_class_names(tmp_path):
    imgs, xmls = _dataset(tmp_path)
    lab = parse_fair1m_xml(str(xmls / "0.xml"))
    assert lab.class_names == ["Small-Car", "Boeing737"] and lab.image_size == (1000, 1200)
    np.testing.assert_allclose(lab.polys[0], np.ravel(SQUARE_ISH))
    d0, d1 = load_fair1m_instances(str(imgs), str(xmls))
    assert (d0["image_id"], d0["height"], d0["width"]) == ("0", 1000, 1200)
    car, plane = d0["annotations"]
    np.testing.assert_allclose(car["bbox"], [574, 339, 60, 30, 0], atol=1e-9)
    np.testing.assert_allclose(plane["bbox"], BOX_30, atol=1e-6)
    assert [FAIR1M_CLASSES[a["category_id"]] for a in d0["annotations"]] == [
        "Small-Car",
        "Boeing737",
    ]
    # an open ring of 4 points is accepted too
    (ship,) = d1["annotations"]
    assert FAIR1M_CLASSES[ship["category_id"]] == "Liquid-Cargo-Ship"
    np.testing.assert_allclose(ship["bbox"], BOX_30, atol=1e-6)
    assert all(a["difficult"] == 0 for a in d0["annotations"])
    assert len(FAIR1M_CLASSES) == len(set(FAIR1M_CLASSES)) == 37
    assert all(" " not in c for c in FAIR1M_CLASSES)
    assert fair1m_class_name(" Dry  Cargo Ship ") == "Dry-Cargo-Ship"
    # a test set: images only
    test = load_fair1m_instances(str(imgs), None)
    assert [d["image_id"] for d in test] == ["0", "1"] and "annotations" not in test[0]
    assert (test[0]["height"], test[0]["width"]) == (1000, 1200)  # from the image header


def test_conversion_to_dota_round_trips(tmp_path):
    imgs, xmls = _dataset(tmp_path)
    counts = convert_fair1m_to_dota(str(xmls), str(tmp_path / "labelTxt"))
    assert counts == {"files": 2, "objects": 3, "skipped": 0}
    lines = (tmp_path / "labelTxt" / "0.txt").read_text().splitlines()
    assert lines[0] == "544.0 324.0 604.0 324.0 604.0 354.0 544.0 354.0 Small-Car 0"
    via_dota = load_dota_instances(str(imgs), str(tmp_path / "labelTxt"), FAIR1M_CLASSES)
    direct = load_fair1m_instances(str(imgs), str(xmls))
    for a, b in zip(via_dota, direct):
        assert [x["category_id"] for x in a["annotations"]] == [
            x["category_id"] for x in b["annotations"]
        ]
        for x, y in zip(a["annotations"], b["annotations"]):
            assert x["poly"] == y["poly"] and x["bbox"] == y["bbox"]  # exact: repr round trip


def test_errors_name_file_line_and_element(tmp_path):
    imgs, xmls = _dataset(tmp_path)
    xml = xmls / "0.xml"
    good = xml.read_text()
    lines = good.splitlines()
    # the <object> elements start on lines 13 and 28
    assert [i for i, ln in enumerate(lines, 1) if ln == "    <object>"] == [13, 28]
    car_points = _points(_ring(SQUARE_ISH))
    cases = [
        (
            good.replace(car_points, car_points.split("\n", 2)[2]),  # 3 points left
            r"0\.xml:13: <object> #0: <points> has 3 <point> elements; expected 5",
        ),
        (
            good.replace(car_points, car_points + "        <point>1,2</point>\n"),
            r"0\.xml:13: <object> #0: <points> has 6 <point>",
        ),
        (
            good.replace(car_points, _points(SQUARE_ISH + [(1, 1)])),
            r"0\.xml:13: <object> #0: the fifth <point> \[1.0, 1.0\] does not repeat the "
            r"first \[544.0, 324.0\]",
        ),
        (good.replace("604.0,354.0", "604.0;354.0"), r"0\.xml:13: .*<point> 3 is '604.0;354.0'"),
        (good.replace("604.0,354.0", "604.0,3S4"), r"0\.xml:13: <object> #0: <point> 3 y '3S4'"),
        (
            good.replace("Boeing737", "Boeing738"),
            r"0\.xml:28: <object> #1: unknown class 'Boeing738'; known classes are: Boeing737",
        ),
        (
            good.replace(">pixel<", ">geodegree<", 1),
            r"0\.xml:13: <object> #0: <coordinate> is 'geodegree'; only 'pixel'",
        ),
        (good.replace("<name>Boeing737</name>", ""), r"0\.xml:28: <object> #1 has no <poss"),
        (good.replace("<objects>", "<objects"), r"0\.xml:\d+:\d+: not well-formed FAIR1M"),
    ]
    for text, pattern in cases:
        xml.write_text(text)
        with pytest.raises((ValueError, KeyError), match=pattern):
            load_fair1m_instances(str(imgs), str(xmls))
    xml.write_text(good)
    os.remove(xmls / "1.xml")
    with pytest.raises(FileNotFoundError, match=r"1\.xml for image 1\.tif"):
        load_fair1m_instances(str(imgs), str(xmls))


def test_unknown_classes_skipped_and_counted(tmp_path, capture_logs):
    imgs, xmls = _dataset(tmp_path)
    with capture_logs("rotated_det.data.datasets.fair1m") as logs:
        d0, d1 = load_fair1m_instances(str(imgs), str(xmls), ["Boeing737"], unknown_classes="skip")
        counts = convert_fair1m_to_dota(
            str(xmls), str(tmp_path / "txt"), ["Boeing737"], unknown_classes="skip"
        )
    assert [a["category_id"] for a in d0["annotations"]] == [0] and d1["annotations"] == []
    assert logs.text.count("2 objects of unknown classes skipped") == 2
    assert counts == {"files": 2, "objects": 1, "skipped": 2}
    assert (tmp_path / "txt" / "1.txt").read_text() == ""


def test_prepare_script_converts_and_splits(tmp_path, monkeypatch):
    """datasets/prepare_fair1m.py: labelXml -> labelTxt, then 1024 px patches that the
    fair1m_v1_*_ss datasets load (a 1000 x 1200 image gives 2 patches: x 0 and 176)."""
    root = tmp_path / "FAIR1M-1.0"
    _dataset(root)
    (root / "test" / "images").mkdir(parents=True)
    cv2.imwrite(str(root / "test" / "images" / "9.tif"), np.zeros((500, 600, 3), np.uint8))
    monkeypatch.setenv("ROTATED_DET_DATASETS", str(tmp_path))
    out = load_script("datasets/prepare_fair1m.py").main(
        ["--version", "1.0", "--nproc", "1", "--no-progress"]
    )
    assert out["convert"]["train"]["objects"] == 3
    assert (out["split"]["train"]["patches"], out["split"]["test"]["patches"]) == (4, 1)
    patches = DatasetCatalog.get("fair1m_v1_train_ss")
    assert sorted(d["image_id"] for d in patches)[:2] == ["0__1.0__0___0", "0__1.0__176___0"]
    full = DatasetCatalog.get("fair1m_v1_train")
    assert sum(len(d["annotations"]) for d in full) == 3
    # every object lies inside the first patch of its image, whole (to the rounding of the
    # split tool, which writes corners to 3 decimals: differences up to 0.0011 here)
    first = {d["image_id"]: d for d in patches}
    for d in full:
        got = first[f"{d['image_id']}__1.0__0___0"]["annotations"]
        np.testing.assert_allclose(
            sorted(a["bbox"] for a in got), sorted(a["bbox"] for a in d["annotations"]), atol=0.01
        )
    assert "annotations" not in DatasetCatalog.get("fair1m_v1_test_ss")[0]

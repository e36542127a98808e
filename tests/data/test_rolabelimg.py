"""roLabelImg XML files (rotated_det.data.datasets.rolabelimg), on fixtures written in the format
of roLabelImg's README and PascalVocWriter."""

import math
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest

from rotated_det.data import DatasetCatalog
from rotated_det.data.datasets.rolabelimg import (
    convert_to_rolabelimg_xml,
    load_rolabelimg_instances,
    register_rolabelimg_instances,
)
from rotated_det.structures import rbox_corner_distance, rbox_to_poly


def _robndbox(name, cx, cy, w, h, angle, difficult=0):
    return f"""  <object>
    <type>robndbox</type>
    <name>{name}</name>
    <pose>Unspecified</pose>
    <truncated>0</truncated>
    <difficult>{difficult}</difficult>
    <robndbox>
      <cx>{cx}</cx>
      <cy>{cy}</cy>
      <w>{w}</w>
      <h>{h}</h>
      <angle>{angle}</angle>
    </robndbox>
  </object>
"""


def _bndbox(name, xmin, ymin, xmax, ymax):
    return f"""  <object>
    <type>bndbox</type>
    <name>{name}</name>
    <pose>Unspecified</pose>
    <truncated>0</truncated>
    <difficult>0</difficult>
    <bndbox>
      <xmin>{xmin}</xmin>
      <ymin>{ymin}</ymin>
      <xmax>{xmax}</xmax>
      <ymax>{ymax}</ymax>
    </bndbox>
  </object>
"""


def _xml(objects, filename="a", width=200, height=100):
    return f"""<annotation verified="no">
  <folder>images</folder>
  <filename>{filename}</filename>
  <path>/nowhere/{filename}.png</path>
  <source>
    <database>Unknown</database>
  </source>
  <size>
    <width>{width}</width>
    <height>{height}</height>
    <depth>3</depth>
  </size>
  <segmented>0</segmented>
{"".join(objects)}</annotation>
"""


def _image(path, h=100, w=200):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.zeros((h, w, 3), np.uint8))


def _rolabelimg_corners(cx, cy, w, h, angle):
    """Reference: the corners as roLabelImg's PascalVocReader.addRotatedShape computes them
    (rotatePoint(cx, cy, corner, -angle) of each corner of the unrotated box)."""
    out = []
    for px, py in ((cx - w / 2, cy - h / 2), (cx + w / 2, cy - h / 2)):
        out.append((px, py))
    out += [(cx + w / 2, cy + h / 2), (cx - w / 2, cy + h / 2)]
    theta = -angle
    res = []
    for px, py in out:
        xo, yo = px - cx, py - cy
        res.append(
            (
                cx + math.cos(theta) * xo + math.sin(theta) * yo,
                cy - math.sin(theta) * xo + math.cos(theta) * yo,
            )
        )
    return np.array(res)


def _same_corners(a, b, atol=1e-3):
    a, b = np.asarray(a).reshape(4, 2), np.asarray(b).reshape(4, 2)
    d = np.linalg.norm(a[:, None] - b[None], axis=-1)
    return d.min(axis=1).max() < atol and d.min(axis=0).max() < atol


def test_angle_convention_hand_drawn_example(tmp_path):
    """A ship drawn 40 px long, 10 px wide at (50, 50), turned so that its long side descends to
    the right on screen (its right end lower, i.e. larger y): roLabelImg saves angle = pi/6
    (clockwise). In rotated_det's convention (counter-clockwise degrees) that is -30 degrees."""
    _image(tmp_path / "a.png")
    (tmp_path / "a.xml").write_text(_xml([_robndbox("ship", 50, 50, 40, 10, math.pi / 6)]))
    (d,) = load_rolabelimg_instances(str(tmp_path))
    (ann,) = d["annotations"]
    np.testing.assert_allclose(ann["bbox"], [50, 50, 40, 10, -30], atol=1e-9)
    # the long side's end points by hand: (50, 50) +- 20 (cos 30, sin 30) = (67.32, 60), (32.68, 40)
    corners = np.asarray(ann["poly"]).reshape(4, 2)
    right = corners[corners[:, 0] > 60].mean(axis=0)
    left = corners[corners[:, 0] < 40].mean(axis=0)
    np.testing.assert_allclose(right, [67.3205, 60.0], atol=1e-3)
    np.testing.assert_allclose(left, [32.6795, 40.0], atol=1e-3)
    # the same corners as roLabelImg draws them
    assert _same_corners(ann["poly"], _rolabelimg_corners(50, 50, 40, 10, math.pi / 6))


@pytest.mark.parametrize(
    "box",
    [
        (120.5, 33.25, 64.0, 12.0, 2.889813),  # the README's angle
        (80.0, 60.0, 10.0, 40.0, 0.2),  # taller than wide: w and h swap for le90
        (70.0, 50.0, 30.0, 30.0, 1.0),  # a square
        (30.0, 30.0, 20.0, 8.0, 0.0),
    ],
)
def test_corners_match_rolabelimgs_reader(tmp_path, box):
    _image(tmp_path / "a.png")
    (tmp_path / "a.xml").write_text(_xml([_robndbox("ship", *box)]))
    (d,) = load_rolabelimg_instances(str(tmp_path))
    (ann,) = d["annotations"]
    assert _same_corners(ann["poly"], _rolabelimg_corners(*box))
    assert _same_corners(rbox_to_poly(np.array(ann["bbox"])), _rolabelimg_corners(*box))
    w, h, a = ann["bbox"][2:]
    assert w >= h and -90 <= a < 90  # le90


def test_bndbox_types_and_class_names(tmp_path):
    _image(tmp_path / "a.png")
    _image(tmp_path / "b.jpg", 60, 80)
    (tmp_path / "a.xml").write_text(
        _xml([_bndbox("car", 10, 20, 50, 30), _robndbox("ship", 50, 50, 40, 10, 0, difficult=1)])
    )
    # no <size>: read from the image; <filename> of labelImg (with extension); no objects
    (tmp_path / "b.xml").write_text("<annotation><filename>b.jpg</filename></annotation>")
    a, b = load_rolabelimg_instances(str(tmp_path), class_names=["ship", "car"])
    assert [x["category_id"] for x in a["annotations"]] == [1, 0]
    assert [x["difficult"] for x in a["annotations"]] == [0, 1]
    np.testing.assert_allclose(a["annotations"][0]["bbox"], [30, 25, 40, 10, 0])
    assert (b["file_name"], b["height"], b["width"]) == (str(tmp_path / "b.jpg"), 60, 80)
    assert b["annotations"] == []


@pytest.mark.parametrize(
    "objects, message",
    [
        ([_robndbox("ship", 1, 2, 3, 4, "")], r": <robndbox><angle> '' is not a finite number"),
        (
            [_robndbox("ship", 1, 2, 3, 4, 5).replace("<angle>5</angle>", "")],
            r": <robndbox> has no <angle>",
        ),
        ([_robndbox("ship", 1, 2, "nan", 4, 5)], r": <robndbox><w> 'nan' is not a finite"),
        ([_bndbox("ship", 1, 2, 3, "x")], r": <bndbox><ymax> 'x' is not a finite"),
        ([_robndbox("ship", 1, 2, -3, 4, 5)], r": <robndbox> gives a negative width"),
        ([_robndbox("", 1, 2, 3, 4, 5)], r" has no <name>"),
        ([_robndbox("ship", 1, 2, 3, 4, 5, difficult=2)], r": <difficult> is '2'"),
        (
            [_robndbox("ship", 1, 2, 3, 4, 5).replace("robndbox</type>", "polygon</type>")],
            r": <type> is 'polygon'; expected robndbox or bndbox",
        ),
    ],
)
def test_bad_objects_name_file_line_and_object(tmp_path, objects, message):
    """The second object starts on line 28 (13 header lines, 14 lines per object)."""
    _image(tmp_path / "x.png")
    (tmp_path / "x.xml").write_text(_xml([_robndbox("car", 10, 10, 4, 2, 0), *objects]))
    with pytest.raises(ValueError, match=rf"x\.xml:28: <object> #1{message}"):
        load_rolabelimg_instances(str(tmp_path))


def test_bad_files_name_the_file(tmp_path):
    _image(tmp_path / "a.png")
    (tmp_path / "a.xml").write_text("<annotation>\n  <object>\n</annotation>\n")
    with pytest.raises(ValueError, match=r"a\.xml:3:2: not well-formed roLabelImg annotation XML"):
        load_rolabelimg_instances(str(tmp_path))
    (tmp_path / "a.xml").write_text("<doc/>")
    with pytest.raises(ValueError, match=r"a\.xml: root element is <doc>"):
        load_rolabelimg_instances(str(tmp_path))
    (tmp_path / "a.xml").write_text(_xml([_robndbox("boat", 1, 2, 3, 4, 0)]))
    with pytest.raises(KeyError, match=r"a\.xml:14: <object> #0: unknown class 'boat'"):
        load_rolabelimg_instances(str(tmp_path), class_names=["ship"])
    (tmp_path / "c.xml").write_text(_xml([], filename="c"))
    with pytest.raises(FileNotFoundError, match=r"c\.xml: no image found"):
        load_rolabelimg_instances(str(tmp_path))


def test_writer_round_trip_and_registration(tmp_path):
    _image(tmp_path / "src" / "a.png")
    boxes = [
        (50, 50, 40, 10, -30),
        (120, 40, 30, 12, 75),
        (100, 70, 16, 16, 10),
        (30, 20, 8, 30, 0),
    ]
    record = {
        "file_name": str(tmp_path / "src" / "a.png"),
        "height": 100,
        "width": 200,
        "annotations": [
            {"bbox": list(b), "bbox_mode": 4, "category_id": i % 2, "difficult": i // 3}
            for i, b in enumerate(boxes)
        ],
    }
    text = convert_to_rolabelimg_xml(record, ["car", "ship"])
    angles = np.array([float(a.text) for a in ET.fromstring(text).iter("angle")])
    assert len(angles) == 4 and ((angles >= 0) & (angles < math.pi)).all()  # as roLabelImg saves
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "a.xml").write_text(text)
    register_rolabelimg_instances(
        "ro_round_trip", {}, str(tmp_path / "ann"), str(tmp_path / "src"), ["car", "ship"]
    )
    try:
        (d,) = DatasetCatalog.get("ro_round_trip")
    finally:
        DatasetCatalog.remove("ro_round_trip")
    got = np.array([a["bbox"] for a in d["annotations"]])
    assert rbox_corner_distance(got, np.array(boxes, dtype=float)).max() < 1e-9
    assert [a["category_id"] for a in d["annotations"]] == [0, 1, 0, 1]
    assert [a["difficult"] for a in d["annotations"]] == [0, 0, 0, 1]


def test_folder_and_split_file_loaders_agree(tmp_path):
    """The folder loader and load_voc_rotated_instances(schema "rolabelimg") share one parser:
    the same file gives the same annotations; a <size> of 0 (unknown) is read from the image."""
    from rotated_det.data.datasets.voc_rotated import load_voc_rotated_instances

    _image(tmp_path / "a.jpg", 100, 200)
    objects = [
        _robndbox("ship", 50, 50, 40, 10, math.pi / 6, difficult=1),
        _robndbox("ship", 80, 60, 10, 40, 2.8),
        _bndbox("ship", 10, 20, 50, 30),
    ]
    (tmp_path / "a.xml").write_text(_xml(objects, width=0, height=0))
    (a,) = load_rolabelimg_instances(str(tmp_path))
    with pytest.raises(ValueError, match=r"a\.xml: <size><height> is '0'"):
        load_voc_rotated_instances(str(tmp_path), str(tmp_path), ["ship"], "rolabelimg")
    (tmp_path / "a.xml").write_text(_xml(objects))
    (b,) = load_voc_rotated_instances(str(tmp_path), str(tmp_path), ["ship"], "rolabelimg")
    assert (a["height"], a["width"]) == (b["height"], b["width"]) == (100, 200)
    assert a["annotations"] == b["annotations"]
    np.testing.assert_allclose(a["annotations"][0]["bbox"], [50, 50, 40, 10, -30], atol=1e-9)
    np.testing.assert_allclose(a["annotations"][2]["bbox"], [30, 25, 40, 10, 0])

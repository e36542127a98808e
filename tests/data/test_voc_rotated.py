"""Rotated Pascal-VOC XML (rotated_det.data.datasets.voc_rotated): DIOR-R corners, RBox-SSDD
corners or parameters, roLabelImg / RSDD-SAR parameters in radians. Fixtures are written here in
each format as its public description gives it (DIOR-R ``00001.xml``'s golffield object, an
RBox-SSDD object with both forms)."""

import math

import cv2
import numpy as np
import pytest
from rotated_box_examples import BOX_30, CORNERS_30

from rotated_det.data.datasets.voc_rotated import (
    DIOR_R_CLASSES,
    load_voc_rotated_instances,
    parse_voc_rotated_xml,
)
from rotated_det.structures import BoxMode, rbox_to_poly

DIOR_TAGS = ("left_top", "right_top", "right_bottom", "left_bottom")


def _dior_object(name, corners, difficult="0"):
    # One element per line, as in the DIOR-R files: <object> starts on the first line.
    rows = [
        "\t<object>",
        "\t\t<type>robndbox</type>",
        f"\t\t<name>{name}</name>",
        "\t\t<pose>Unspecified</pose>",
        "\t\t<truncated>0</truncated>",
        f"\t\t<difficult>{difficult}</difficult>",
        "\t\t<robndbox>",
    ]
    for tag, (x, y) in zip(DIOR_TAGS, corners):
        rows += [f"\t\t\t<x_{tag}>{x}</x_{tag}>", f"\t\t\t<y_{tag}>{y}</y_{tag}>"]
    rows += ["\t\t</robndbox>", "\t\t<angle>0</angle>", "\t</object>"]
    return rows


def _voc(objects, size=(800, 800)):
    head = ["<annotation>", "\t<filename>00001.jpg</filename>", "\t<source>", "\t</source>"]
    if size is not None:
        head += [
            "\t<size>",
            f"\t\t<width>{size[1]}</width>",
            f"\t\t<height>{size[0]}</height>",
            "\t\t<depth>3</depth>",
            "\t</size>",
        ]
    return "\n".join(head + [r for o in objects for r in o] + ["</annotation>"]) + "\n"


GOLF = [(133, 237), (684, 237), (684, 672), (133, 672)]  # DIOR-R 00001.xml, axis-aligned


def _dior_dataset(tmp_path, objects=None, ids=("00001",)):
    imgs, anns, sets = tmp_path / "JPEGImages-trainval", tmp_path / "ann", tmp_path / "sets"
    for d in (imgs, anns, sets):
        d.mkdir(exist_ok=True)
    objects = objects or [
        _dior_object("golffield", GOLF),
        _dior_object("Expressway-Service-area", CORNERS_30, difficult="1"),
    ]
    for i in ids:
        (anns / f"{i}.xml").write_text(_voc(objects))
        (imgs / f"{i}.jpg").write_bytes(b"")  # sizes come from <size>: never decoded
    (sets / "trainval.txt").write_text("\n".join(ids) + "\n")
    return imgs, anns, sets / "trainval.txt"


def _load_dior(imgs, anns, split, **kw):
    return load_voc_rotated_instances(
        str(imgs), str(anns), DIOR_R_CLASSES, "dior_r", str(split), **kw
    )


def test_dior_r_boxes_classes_and_dicts(tmp_path):
    imgs, anns, split = _dior_dataset(tmp_path)
    (d,) = _load_dior(imgs, anns, split)
    assert (d["image_id"], d["height"], d["width"]) == ("00001", 800, 800)
    assert d["file_name"] == str(imgs / "00001.jpg")
    golf, esa = d["annotations"]
    # axis-aligned 551 x 435 box: centre ((133 + 684) / 2, (237 + 672) / 2), angle 0
    np.testing.assert_allclose(golf["bbox"], [408.5, 454.5, 551, 435, 0], atol=1e-9)
    np.testing.assert_allclose(esa["bbox"], BOX_30, atol=1e-6)
    assert golf["poly"] == [float(v) for p in GOLF for v in p]  # corners as written
    assert [DIOR_R_CLASSES[a["category_id"]] for a in d["annotations"]] == [
        "golffield",
        "expressway-service-area",  # the file's capitals are matched without regard to case
    ]
    assert (golf["difficult"], esa["difficult"]) == (0, 1)
    assert golf["bbox_mode"] == BoxMode.XYWHA_ABS
    assert len(DIOR_R_CLASSES) == len(set(DIOR_R_CLASSES)) == 20


def test_ssdd_corners_and_parameters_agree(tmp_path):
    """An RBox-SSDD object gives the same box from its corners x1..y4 and from its parameters
    rotated_bbox_* (theta in degrees, clockwise on screen: our angle is -theta)."""

    def obj(corners=None, params=None):
        rows = ["<object>", "<name>ship</name>", "<rotated_bndbox>"]
        for k, v in zip(("cx", "cy", "w", "h", "theta"), params or ()):
            rows.append(f"<rotated_bbox_{k}>{v}</rotated_bbox_{k}>")
        for i, (x, y) in enumerate(corners or (), start=1):
            rows += [f"<x{i}>{x}</x{i}>", f"<y{i}>{y}</y{i}>"]
        return rows + ["</rotated_bndbox>", "</object>"]

    # theta -30 (counter-clockwise 30 on screen), given once as corners and once as parameters
    path = tmp_path / "000001.xml"
    path.write_text(_voc([obj(corners=CORNERS_30), obj(params=(100, 80, 40, 10, -30))]))
    lab = parse_voc_rotated_xml(str(path), "ssdd")
    np.testing.assert_allclose(lab.boxes, [BOX_30, BOX_30], atol=1e-6)
    np.testing.assert_allclose(lab.polys[1], rbox_to_poly(np.array(BOX_30)), atol=1e-9)
    # The RBox-SSDD sample from the public description: both forms, integer corners.
    sample, corners = (242, 96, 98, 45, 85.815), [(215, 48), (261, 45), (268, 143), (223, 147)]
    path.write_text(_voc([obj(corners=corners, params=sample), obj(params=sample)]))
    lab = parse_voc_rotated_xml(str(path), "ssdd")
    np.testing.assert_allclose(lab.boxes[1], [242, 96, 98, 45, -85.815], atol=1e-9)
    # the parameters' box has the file's corners to 1.25 px (they are rounded); with theta
    # taken counter-clockwise the nearest corners would be 8.5 px away
    got = np.asarray(rbox_to_poly(lab.boxes[1])).reshape(4, 2)
    assert np.linalg.norm(got[:, None] - np.array(corners)[None], axis=-1).min(1).max() < 2.0
    # and the rounded corners' minimum-area rectangle is that box to within rounding
    np.testing.assert_allclose(lab.boxes[0][:4], lab.boxes[1][:4], atol=1.5)
    assert abs(lab.boxes[0][4] - lab.boxes[1][4]) < 1.0
    assert lab.class_names == ["ship", "ship"] and lab.image_size == (800, 800)


def _rolabelimg(boxes, kind="robndbox"):
    rows = []
    for cx, cy, w, h, a in boxes:
        rows.append(
            [
                "<object>",
                f"<type>{kind}</type>",
                "<name>ship</name>",
                "<difficult>0</difficult>",
                f"<robndbox><cx>{cx}</cx><cy>{cy}</cy><w>{w}</w><h>{h}</h><angle>{a}</angle>"
                "</robndbox>",
                "</object>",
            ]
        )
    return rows


def test_rolabelimg_radians_match_opencv(tmp_path):
    """roLabelImg / RSDD-SAR angles are radians, clockwise on screen: the corners are OpenCV's
    boxPoints of ((cx, cy), (w, h), degrees(angle)); the boxes come out le90."""
    params = [
        (100, 80, 40, 10, -math.pi / 6),  # 30 degrees counter-clockwise: BOX_30
        (50, 60, 30, 8, math.pi / 2),  # long side vertical
        (50, 60, 8, 30, 0.0),  # tall box: long side vertical too
        (300, 200, 120, 30, 2.8),  # roLabelImg's range is [0, pi)
    ]
    path = tmp_path / "a.xml"
    path.write_text(_voc(_rolabelimg(params), size=None))
    lab = parse_voc_rotated_xml(str(path), "rolabelimg")
    assert lab.image_size is None
    np.testing.assert_allclose(lab.boxes[0], BOX_30, atol=1e-9)
    np.testing.assert_allclose(lab.boxes[1], [50, 60, 30, 8, -90], atol=1e-9)
    np.testing.assert_allclose(lab.boxes[2], [50, 60, 30, 8, -90], atol=1e-9)
    for (cx, cy, w, h, a), box in zip(params, lab.boxes):
        ref = cv2.boxPoints(((cx, cy), (w, h), math.degrees(a)))
        got = np.asarray(rbox_to_poly(box)).reshape(4, 2)
        assert np.linalg.norm(got[:, None] - ref[None], axis=-1).min(1).max() < 1e-3
        assert box[2] >= box[3] and -90 <= box[4] < 90


def test_axis_aligned_bndbox_objects_are_loaded_and_counted(tmp_path, capture_logs):
    imgs, anns = tmp_path / "JPEGImages", tmp_path / "Annotations"
    imgs.mkdir(), anns.mkdir()
    hbox = ["<object>", "<name>ship</name>"]
    hbox += ["<bndbox><xmin>10</xmin><ymin>20</ymin><xmax>50</xmax><ymax>30</ymax></bndbox>"]
    hbox += ["</object>"]
    (anns / "s1.xml").write_text(_voc(_rolabelimg([(100, 80, 40, 10, 0.5)]) + [hbox]))
    (imgs / "s1.jpg").write_bytes(b"")
    with capture_logs("rotated_det.data.datasets.voc_rotated") as logs:
        (d,) = load_voc_rotated_instances(str(imgs), str(anns), ["ship"], "rolabelimg")
    np.testing.assert_allclose(d["annotations"][1]["bbox"], [30, 25, 40, 10, 0], atol=1e-9)
    assert "1 objects had only an axis-aligned <bndbox>" in logs.text


def test_errors_name_file_line_and_element(tmp_path):
    imgs, anns, split = _dior_dataset(tmp_path)
    xml = anns / "00001.xml"
    good = xml.read_text()
    # the <object> elements start on lines 10 and 28 (9 header lines, 18 lines per object)
    assert [i for i, ln in enumerate(good.splitlines(), 1) if ln == "\t<object>"] == [10, 28]

    y = f"<y_left_top>{CORNERS_30[0][1]}</y_left_top>"
    start, end = good.index("\t\t<robndbox>"), good.index("</robndbox>") + len("</robndbox>")
    cases = [
        (
            good.replace("<x_left_top>", "<x_lft_top>").replace("</x_left_top>", "</x_lft_top>"),
            ValueError,
            r"00001\.xml:10: <object> #0: <robndbox> has no <x_left_top>",
        ),
        (
            good.replace(y, "<y_left_top>8o.1</y_left_top>"),
            ValueError,
            r"00001\.xml:28: <object> #1: <robndbox><y_left_top> '8o.1' is not a finite number",
        ),
        (
            good.replace("<x_right_top>684<", "<x_right_top>nan<"),
            ValueError,
            r"00001\.xml:10: <object> #0: <robndbox><x_right_top> 'nan'",
        ),
        (
            good.replace("Expressway-Service-area", "stadiumm"),
            KeyError,
            r"00001\.xml:28: <object> #1: unknown class 'stadiumm'; known classes are: airplane",
        ),
        (
            good.replace("<difficult>1<", "<difficult>2<"),
            ValueError,
            r"00001\.xml:28: <object> #1: <difficult> is '2'; expected 0 or 1",
        ),
        (
            good.replace("<name>golffield</name>", ""),
            ValueError,
            r"00001\.xml:10: <object> #0 has no <name>",
        ),
        (
            good[:start] + good[end:],
            ValueError,
            r"00001\.xml:10: <object> #0 has no <robndbox> \(nor an axis-aligned <bndbox>\)",
        ),
        (good.replace("</annotation>", ""), ValueError, r"00001\.xml:\d+:\d+: not well-formed"),
        (good.replace("<width>800", "<width>wide"), ValueError, r"<size><width> is 'wide'"),
    ]
    for text, exc, pattern in cases:
        xml.write_text(text)
        with pytest.raises(exc, match=pattern):
            _load_dior(imgs, anns, split)
    xml.write_text(good)
    (imgs / "00001.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"00001\.jpg \(annotated in .*00001\.xml\)"):
        _load_dior(imgs, anns, split)
    split.write_text("00002\n")
    with pytest.raises(FileNotFoundError, match=r"00002\.xml \(listed in .*trainval\.txt\)"):
        _load_dior(imgs, anns, split)


def test_negative_size_and_unknown_classes_skipped(tmp_path, capture_logs):
    imgs, anns = tmp_path / "i", tmp_path / "a"
    imgs.mkdir(), anns.mkdir()
    (imgs / "s.jpg").write_bytes(b"")
    (anns / "s.xml").write_text(_voc(_rolabelimg([(10, 10, -4, 2, 0)])))
    with pytest.raises(ValueError, match=r"s\.xml:\d+: <object> #0: <robndbox> gives a negative"):
        load_voc_rotated_instances(str(imgs), str(anns), ["ship"], "rolabelimg")
    (anns / "s.xml").write_text(_voc(_rolabelimg([(10, 10, 4, 2, 0)] * 3)))
    with capture_logs("rotated_det.data.datasets.voc_rotated") as logs:
        (d,) = load_voc_rotated_instances(
            str(imgs), str(anns), ["boat"], "rolabelimg", unknown_classes="skip"
        )
    assert d["annotations"] == [] and "3 objects of unknown classes skipped" in logs.text
    with pytest.raises(ValueError, match="schema must be one of"):
        load_voc_rotated_instances(str(imgs), str(anns), ["ship"], "dota")


def test_many_files_keep_objects_with_their_images(tmp_path):
    """One vectorised conversion for the whole dataset hands every file its own boxes back."""
    ids = [f"{i:05d}" for i in range(1, 6)]
    imgs, anns, split = _dior_dataset(tmp_path, ids=ids)
    (anns / "00003.xml").write_text(_voc([_dior_object("ship", CORNERS_30)]))
    (anns / "00004.xml").write_text(_voc([]))
    dicts = _load_dior(imgs, anns, split)
    assert [len(d["annotations"]) for d in dicts] == [2, 2, 1, 0, 2]
    np.testing.assert_allclose(dicts[2]["annotations"][0]["bbox"], BOX_30, atol=1e-6)
    assert DIOR_R_CLASSES[dicts[2]["annotations"][0]["category_id"]] == "ship"
    np.testing.assert_allclose(dicts[4]["annotations"][0]["bbox"][:4], [408.5, 454.5, 551, 435])

import cv2
import numpy as np
import pytest

from rotated_det.data.datasets.yolo_obb import load_yolo_obb_instances, parse_yolo_obb_text
from rotated_det.structures import rbox_to_poly


def test_load_yolo_obb(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.jpg"), np.zeros((100, 200, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "images" / "b.jpg"), np.zeros((100, 200, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "images" / "c.jpg"), np.zeros((50, 80, 3), np.uint8))
    # 40 x 10 px horizontal box from (20, 30) to (60, 40), class 1, normalised by (200, 100)
    (tmp_path / "labels" / "a.txt").write_text("1 0.1 0.3 0.3 0.3 0.3 0.4 0.1 0.4\n")
    # two boxes in an 80 x 50 image: 8 x 40 px vertical, and 20 x 10 px horizontal
    (tmp_path / "labels" / "c.txt").write_text(
        "0 0.5 0.1 0.6 0.1 0.6 0.9 0.5 0.9\n1 0 0 0.25 0 0.25 0.2 0 0.2\n"
    )
    a, b, c = load_yolo_obb_instances(
        str(tmp_path / "images"), str(tmp_path / "labels"), ["x", "y"]
    )
    (ann,) = a["annotations"]
    assert ann["category_id"] == 1
    np.testing.assert_allclose(ann["poly"], [20, 30, 60, 30, 60, 40, 20, 40], atol=1e-9)
    corners = np.asarray(rbox_to_poly(np.asarray([ann["bbox"]]))).reshape(4, 2)
    assert sorted(map(tuple, np.round(corners, 6))) == [(20, 30), (20, 40), (60, 30), (60, 40)]
    assert b["annotations"] == []  # no label file: no objects
    # each image gets its own boxes, in the order of its label lines
    np.testing.assert_allclose(
        [x["bbox"] for x in c["annotations"]], [[44, 25, 40, 8, -90], [10, 5, 20, 10, 0]], atol=1e-9
    )
    assert [x["category_id"] for x in c["annotations"]] == [0, 1]


def test_yolo_obb_bad_lines():
    with pytest.raises(ValueError, match="f.txt:2: .*expected 9 values"):
        parse_yolo_obb_text("0 0 0 1 0 1 1 0 1\n0 0.1 0.2\n", 2, "f.txt")
    with pytest.raises(ValueError, match="class index 5"):
        parse_yolo_obb_text("5 0 0 1 0 1 1 0 1\n", 2, "f.txt")
    cls, polys, bad = parse_yolo_obb_text(
        "5 0 0 1 0 1 1 0 1\n1 0 0 1 0 1 1 0 1\n", 2, "f", skip_malformed=True
    )
    assert list(cls) == [1] and bad == 1 and polys.shape == (1, 8)


def _one_image_split(tmp_path, label_text: str, encoding: str = "utf-8"):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.jpg"), np.zeros((100, 200, 3), np.uint8))
    (tmp_path / "labels" / "a.txt").write_text(label_text, encoding=encoding)
    return str(tmp_path / "images"), str(tmp_path / "labels")


def test_pixel_coordinates_are_an_error_naming_file_and_line(tmp_path):
    # the box of test_load_yolo_obb written in pixels of the 200 x 100 image instead of normalised
    images, labels = _one_image_split(
        tmp_path, "1 0.1 0.3 0.3 0.3 0.3 0.4 0.1 0.4\n1 20 30 60 30 60 40 20 40\n"
    )
    with pytest.raises(ValueError, match=r"a\.txt:2: .*normalised") as e:
        load_yolo_obb_instances(images, labels, ["x", "y"])
    assert "look like pixel coordinates of the 200x100 (WxH) image" in str(e.value)
    # with skip_malformed the line is skipped (and counted), the good one kept
    (d,) = load_yolo_obb_instances(images, labels, ["x", "y"], skip_malformed=True)
    assert len(d["annotations"]) == 1


def test_coordinate_tolerance_is_one_percent():
    # Ultralytics' tolerance: [-0.01, 1.01] is accepted as written (the mapper clips later)
    _, polys, _ = parse_yolo_obb_text("0 -0.01 0 1.01 0 1.01 1 -0.01 1\n", 1, "f.txt")
    assert polys.min() == -0.01 and polys.max() == 1.01
    for line in ("0 -0.02 0 1 0 1 1 0 1", "0 0 0 1.02 0 1 1 0 1"):
        with pytest.raises(ValueError, match=r"f\.txt:1: .*tolerance 0\.01") as e:
            parse_yolo_obb_text(line, 1, "f.txt")
        assert "pixel" not in str(e.value)  # slightly out is not taken for pixels
    # pixels without a known image size are still recognised; negative values are not pixels
    with pytest.raises(ValueError, match="look like pixel coordinates: divide"):
        parse_yolo_obb_text("0 20 30 60 30 60 40 20 40", 1, "f.txt")
    with pytest.raises(ValueError, match="from -20 to 60") as e:
        parse_yolo_obb_text("0 -20 30 60 30 60 40 20 40", 1, "f.txt")
    assert "pixel" not in str(e.value)
    # too large for the image: not pixels of that image either
    with pytest.raises(ValueError) as e:
        parse_yolo_obb_text("0 20 30 600 30 60 40 20 40", 1, "f.txt", image_size=(100, 200))
    assert "pixel" not in str(e.value)
    # a looser tolerance is an argument
    parse_yolo_obb_text("0 -0.02 0 1 0 1 1 0 1", 1, "f.txt", tolerance=0.05)


def test_byte_order_mark_is_accepted(tmp_path):
    text = "1 0.1 0.3 0.3 0.3 0.3 0.4 0.1 0.4\n"
    images, labels = _one_image_split(tmp_path, text, encoding="utf-8-sig")
    assert (tmp_path / "labels" / "a.txt").read_bytes()[:3] == b"\xef\xbb\xbf"
    (d,) = load_yolo_obb_instances(images, labels, ["x", "y"])
    (ann,) = d["annotations"]
    assert ann["category_id"] == 1
    np.testing.assert_allclose(ann["poly"], [20, 30, 60, 30, 60, 40, 20, 40], atol=1e-9)
    cls, _, _ = parse_yolo_obb_text("\ufeff" + text, 2, "f.txt")
    assert cls.tolist() == [1]

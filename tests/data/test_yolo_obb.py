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

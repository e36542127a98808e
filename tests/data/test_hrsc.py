import math

import cv2
import numpy as np
import pytest

from rotated_det.data.datasets.hrsc import (
    HRSC_CLASS_IDS,
    HRSC_FINE_CLASSES,
    hrsc_mbox_to_rbox,
    load_hrsc_instances,
)
from rotated_det.structures import rbox_to_poly

_OBJ = """<HRSC_Object><Object_ID>1</Object_ID><Class_ID>1000000{cls}</Class_ID>
<difficult>{diff}</difficult><mbox_cx>{cx}</mbox_cx><mbox_cy>{cy}</mbox_cy><mbox_w>{w}</mbox_w>
<mbox_h>{h}</mbox_h><mbox_ang>{ang}</mbox_ang></HRSC_Object>"""


def _xml(objs, w=400, h=300, stem="100000001"):
    body = "".join(_OBJ.format(**o) for o in objs)
    return (
        f"<HRSC_Image><Img_ID>{stem}</Img_ID><Img_FileName>{stem}</Img_FileName>"
        f"<Img_FileFmt>bmp</Img_FileFmt><Img_SizeWidth>{w}</Img_SizeWidth>"
        f"<Img_SizeHeight>{h}</Img_SizeHeight><HRSC_Objects>{body}</HRSC_Objects></HRSC_Image>"
    )


def _corner_set_equal(a, b):
    a, b = np.asarray(a).reshape(4, 2), np.asarray(b).reshape(4, 2)
    return np.linalg.norm(a[:, None] - b[None], axis=-1).min(1).max() < 1e-3


def test_mbox_angle_conversion_matches_opencv_boxpoints():
    # HRSC's mbox_ang is OpenCV's RotatedRect angle in radians (clockwise on screen).
    for ang in (0.0, 0.5236, -1.2, 1.5707963):
        m = np.array([[200.0, 150.0, 120.0, 30.0, ang]])
        box = hrsc_mbox_to_rbox(m)[0]
        ref = cv2.boxPoints(((200.0, 150.0), (120.0, 30.0), math.degrees(ang)))
        assert _corner_set_equal(np.asarray(rbox_to_poly(box[None])), ref)
        assert box[2] >= box[3] and -90 <= box[4] < 90  # le90
    # 30 degrees clockwise on screen is -30 in our counter-clockwise convention
    np.testing.assert_allclose(
        hrsc_mbox_to_rbox(np.array([[0, 0, 10, 2, math.pi / 6]]))[0], [0, 0, 10, 2, -30], atol=1e-9
    )


def _make_dataset(tmp_path):
    imgs = tmp_path / "FullDataSet" / "AllImages"
    anns = tmp_path / "FullDataSet" / "Annotations"
    sets = tmp_path / "ImageSets"
    for d in (imgs, anns, sets):
        d.mkdir(parents=True)
    objs = [
        dict(cls="07", diff=0, cx=100, cy=80, w=90, h=20, ang=0.3),
        dict(cls="01", diff=1, cx=250, cy=200, w=40, h=120, ang=-0.2),
    ]
    (anns / "100000001.xml").write_text(_xml(objs, stem="100000001"))
    (anns / "100000002.xml").write_text(_xml([], stem="100000002"))
    for stem in ("100000001", "100000002"):
        cv2.imwrite(str(imgs / f"{stem}.bmp"), np.zeros((300, 400, 3), np.uint8))
    (sets / "trainval.txt").write_text("100000001\n")
    (sets / "test.txt").write_text("100000002\n")
    return imgs, anns, sets


def test_load_hrsc(tmp_path):
    imgs, anns, sets = _make_dataset(tmp_path)
    (d,) = load_hrsc_instances(str(imgs), str(anns), str(sets / "trainval.txt"))
    assert d["image_id"] == "100000001" and (d["height"], d["width"]) == (300, 400)
    assert d["file_name"].endswith("100000001.bmp")
    a0, a1 = d["annotations"]
    assert a0["category_id"] == a1["category_id"] == 0
    assert (a0["difficult"], a1["difficult"]) == (0, 1)
    np.testing.assert_allclose(a0["bbox"], [100, 80, 90, 20, -math.degrees(0.3)], atol=1e-6)
    # the tall box becomes long-edge first: (120, 40), angle turned by 90
    ref = cv2.boxPoints(((250, 200), (40, 120), math.degrees(-0.2)))
    assert _corner_set_equal(a1["poly"], ref)
    (fine,) = load_hrsc_instances(
        str(imgs), str(anns), str(sets / "trainval.txt"), fine_grained=True
    )
    assert [HRSC_FINE_CLASSES[a["category_id"]] for a in fine["annotations"]] == [
        "arleigh-burke",
        "ship",
    ]
    (t,) = load_hrsc_instances(str(imgs), str(anns), str(sets / "test.txt"))
    assert t["annotations"] == []
    assert len(HRSC_CLASS_IDS) == len(HRSC_FINE_CLASSES) == 31


def test_hrsc_errors(tmp_path):
    imgs, anns, sets = _make_dataset(tmp_path)
    (sets / "bad.txt").write_text("100000009\n")
    with pytest.raises(FileNotFoundError, match="100000009.xml"):
        load_hrsc_instances(str(imgs), str(anns), str(sets / "bad.txt"))
    (anns / "100000003.xml").write_text(
        _xml([dict(cls="21", diff=0, cx=1, cy=1, w=2, h=2, ang=0)], stem="100000003")
    )
    cv2.imwrite(str(imgs / "100000003.bmp"), np.zeros((300, 400, 3), np.uint8))
    (sets / "x.txt").write_text("100000003\n")
    with pytest.raises(KeyError, match="unknown HRSC Class_ID"):
        load_hrsc_instances(str(imgs), str(anns), str(sets / "x.txt"), fine_grained=True)
    (anns / "100000003.xml").write_text("<HRSC_Image><broken>")
    with pytest.raises(ValueError, match="100000003.xml"):
        load_hrsc_instances(str(imgs), str(anns), str(sets / "x.txt"))


def test_byte_order_marks_are_accepted(tmp_path):
    """Annotation XML and split file saved with a UTF-8 byte-order mark (Windows editors) load as
    without it."""
    imgs, anns, sets = _make_dataset(tmp_path)
    (ref,) = load_hrsc_instances(str(imgs), str(anns), str(sets / "trainval.txt"))
    xml = anns / "100000001.xml"
    body = xml.read_text()
    for decl in ("", '<?xml version="1.0" encoding="utf-8"?>\n'):
        xml.write_text(decl + body, encoding="utf-8-sig")
        (sets / "bom.txt").write_text("100000001\n", encoding="utf-8-sig")
        assert xml.read_bytes()[:3] == (sets / "bom.txt").read_bytes()[:3] == b"\xef\xbb\xbf"
        (d,) = load_hrsc_instances(str(imgs), str(anns), str(sets / "bom.txt"))
        assert d["image_id"] == "100000001" and d["annotations"] == ref["annotations"]

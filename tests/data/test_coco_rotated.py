import json
import logging
import uuid

import cv2
import numpy as np
import pytest

from rotated_det.data import (
    DOTA_V1_CLASSES,
    DatasetCatalog,
    MetadataCatalog,
    convert_to_coco_rotated_json,
    load_coco_rotated_json,
    load_dota_instances,
    register_coco_rotated_instances,
)
from rotated_det.structures import BoxMode

# A box 40 x 10 px centred at (100, 80), turned 30 degrees counter-clockwise on screen. By hand:
# u = (cos 30, -sin 30), v = (sin 30, cos 30); 20 u = (17.3205, -10), 5 v = (2.5, 4.3301), so
# the corners c -+ 20 u -+ 5 v are (80.18, 85.67), (115.18, 65.67), (120.18, 74.33),
# (85.18, 94.33): the right end is higher on screen.
_S, _C = 10.0, 20 * np.cos(np.radians(30))
_CORNERS_30 = [
    (100 - _C - 2.5, 80 + _S - 5 * np.cos(np.radians(30))),
    (100 + _C - 2.5, 80 - _S - 5 * np.cos(np.radians(30))),
    (100 + _C + 2.5, 80 - _S + 5 * np.cos(np.radians(30))),
    (100 - _C + 2.5, 80 + _S + 5 * np.cos(np.radians(30))),
]


def _write(tmp_path, coco, name="ann.json"):
    path = tmp_path / name
    path.write_text(json.dumps(coco))
    return str(path)


def _coco(anns, images=None, categories=None):
    return {
        "images": images
        if images is not None
        else [
            {"id": 1, "file_name": "a.png", "height": 100, "width": 200},
            {"id": 2, "file_name": "b.png", "height": 100, "width": 200},
        ],
        "annotations": anns,
        "categories": categories
        if categories is not None
        else [{"id": 7, "name": "ship"}, {"id": 3, "name": "plane"}],
    }


def _ann(i, **kw):
    return {"id": i, "image_id": 1, "category_id": 3, **kw}


def test_worked_examples(tmp_path, caplog):
    quarter = [47, 40, 53, 60, 53, 40, 47, 60]  # 6 x 20 box, points in "bow tie" order
    scrambled_30 = [v for k in (2, 0, 3, 1) for v in _CORNERS_30[k]]
    anns = [
        # (b) 5-number box at 90 degrees: kept as written, poly = its corners
        _ann(10, bbox=[50, 50, 20, 6, 90], category_id=7),
        # (a) the same rectangle as a polygon in arbitrary order -> minimum-area rectangle, le90
        _ann(11, segmentation=[quarter], bbox=[47, 40, 6, 20]),
        # (a) a 30-degree box from its corners, scrambled, flat segmentation
        _ann(12, segmentation=scrambled_30),
        # plain COCO bbox (x, y, w, h) -> angle-0 box; crowd with an RLE mask -> difficult
        _ann(13, bbox=[10, 20, 30, 40], iscrowd=1, segmentation={"counts": "abc", "size": [1, 1]}),
        _ann(14, bbox=[1, 2, 3, 4], difficult=1),
        _ann(15, bbox=[1, 2, 3, 4], ignore=True, iscrowd=0),
        _ann(16, bbox=[1, 2, 3, 4, 5], difficult=0, ignore=False),
    ]
    name = f"coco_rot_worked_{uuid.uuid4().hex}"
    with caplog.at_level(logging.INFO, logger="rotated_det.data.datasets.coco_rotated"):
        a, b = load_coco_rotated_json(_write(tmp_path, _coco(anns)), str(tmp_path), name)
    assert (a["file_name"], a["height"], a["width"], a["image_id"]) == (
        str(tmp_path / "a.png"),
        100,
        200,
        1,
    )
    assert b["annotations"] == [] and b["image_id"] == 2  # image without objects kept
    assert "1 images have no annotations" in caplog.text
    assert "1 annotations have a segmentation that is RLE" in caplog.text
    r = a["annotations"]
    assert all(x["bbox_mode"] == BoxMode.XYWHA_ABS for x in r)
    # json ids sorted: 3 "plane" -> 0, 7 "ship" -> 1
    assert [x["category_id"] for x in r] == [1, 0, 0, 0, 0, 0, 0]
    meta = MetadataCatalog.get(name)
    assert meta.thing_classes == ["plane", "ship"]
    assert meta.thing_dataset_id_to_contiguous_id == {3: 0, 7: 1}

    assert r[0]["bbox"] == [50, 50, 20, 6, 90]
    corners = np.asarray(r[0]["poly"]).reshape(4, 2)
    assert sorted(map(tuple, np.round(corners, 9) + 0.0)) == [
        (47, 40),
        (47, 60),
        (53, 40),
        (53, 60),
    ]
    # long side vertical: le90 writes it as angle -90 (w >= h, angle in [-90, 90))
    np.testing.assert_allclose(r[1]["bbox"], [50, 50, 20, 6, -90], atol=1e-9)
    assert r[1]["poly"] == quarter  # the polygon as written
    np.testing.assert_allclose(r[2]["bbox"], [100, 80, 40, 10, 30], atol=1e-9)
    assert r[2]["poly"] == scrambled_30
    assert r[3]["bbox"] == [25, 40, 30, 40, 0]
    assert r[3]["poly"] == [10, 20, 40, 20, 40, 60, 10, 60]
    assert [x["difficult"] for x in r] == [0, 0, 0, 1, 1, 1, 0]


def test_box_source_and_bbox_mode(tmp_path):
    poly = [10, 10, 30, 10, 30, 20, 10, 20]
    anns = [_ann(1, segmentation=[poly], bbox=[0, 0, 5, 5, 45]), _ann(2, bbox=[10, 20, 30, 40])]
    f = _write(tmp_path, _coco(anns))
    auto = load_coco_rotated_json(f, "root")[0]["annotations"]
    assert auto[0]["bbox"] == [0, 0, 5, 5, 45] and auto[0]["poly"] == poly
    seg = load_coco_rotated_json(f, "root", box_source="segmentation")[0]["annotations"]
    np.testing.assert_allclose(seg[0]["bbox"], [20, 15, 20, 10, 0], atol=1e-9)
    assert seg[1]["bbox"] == [25, 40, 30, 40, 0]  # no polygon: the bbox
    xyxy = load_coco_rotated_json(
        _write(tmp_path, _coco([anns[1]]), "b.json"), "root", bbox_mode=BoxMode.XYXY_ABS
    )[0]["annotations"]
    assert xyxy[0]["bbox"] == [20, 30, 20, 20, 0]
    # bbox beats a polygon with box_source="bbox", even a 4-number one
    anns = [_ann(1, segmentation=[poly], bbox=[0, 0, 4, 2])]
    only = load_coco_rotated_json(_write(tmp_path, _coco(anns), "c.json"), "r", box_source="bbox")
    assert only[0]["annotations"][0]["bbox"] == [2, 1, 4, 2, 0]
    assert only[0]["annotations"][0]["poly"] == poly


def test_byte_order_mark_is_accepted(tmp_path):
    """A JSON file saved with a UTF-8 byte-order mark (Windows editors) loads as without it."""
    anns = [_ann(1, bbox=[10, 20, 30, 40, 15])]
    ref = load_coco_rotated_json(_write(tmp_path, _coco(anns)), "root")
    path = tmp_path / "bom.json"
    path.write_text(json.dumps(_coco(anns)), encoding="utf-8-sig")
    assert path.read_bytes()[:3] == b"\xef\xbb\xbf"
    got = load_coco_rotated_json(str(path), "root")
    assert got == ref and got[0]["annotations"][0]["bbox"] == [10, 20, 30, 40, 15]


def test_sizes_from_image_and_test_set(tmp_path):
    cv2.imwrite(str(tmp_path / "x.png"), np.zeros((30, 50, 3), np.uint8))
    coco = {"images": [{"id": "x", "file_name": "x.png"}], "categories": [{"id": 1, "name": "c"}]}
    (d,) = load_coco_rotated_json(_write(tmp_path, coco), str(tmp_path))
    assert (d["height"], d["width"], d["image_id"]) == (30, 50, "x")
    assert "annotations" not in d  # a test set: no labels


def test_extra_annotation_keys(tmp_path):
    f = _write(tmp_path, _coco([_ann(5, bbox=[0, 0, 1, 1], area=1.0, score=0.5)]))
    (ann,) = load_coco_rotated_json(f, "r", extra_annotation_keys=["id", "score"])[0]["annotations"]
    assert ann["id"] == 5 and ann["score"] == 0.5 and "area" not in ann


@pytest.mark.parametrize(
    "anns,images,match",
    [
        ([_ann(42, bbox=[1, 2, 3])], None, r"annotation id 42: malformed 'bbox'.*5 numbers"),
        ([_ann(42, bbox=[1, "2", 3, 4])], None, r"annotation id 42: malformed 'bbox'"),
        ([_ann(42, bbox=[1, 2, -3, 4])], None, r"annotation id 42: .*negative width"),
        ([_ann(42, bbox=[1, 2, 3, float("nan")])], None, r"annotation id 42: .*non-finite"),
        ([_ann(42, segmentation=[[1, 2, 3, 4, 5, 6, 7]])], None, r"id 42: malformed 'segm"),
        ([_ann(42, segmentation=[[1, 2, 3, 4]])], None, r"id 42: malformed 'segmentation'"),
        ([_ann(42, segmentation=[["a"] * 8])], None, r"id 42: malformed 'segmentation'"),
        ([_ann(42, segmentation={"counts": "x"})], None, r"id 42: no usable box .*RLE"),
        ([_ann(42)], None, r"annotation id 42: no usable box"),
        ([_ann(42, bbox=[1, 2, 3, 4], difficult=2)], None, r"id 42: malformed 'difficult'"),
        ([_ann(42, bbox=[1, 2, 3, 4], category_id=5)], None, r"id 42: unknown category_id 5"),
        ([_ann(42, bbox=[1, 2, 3, 4], image_id=9)], None, r"annotation id 42: image_id 9"),
        ([{"image_id": 1, "category_id": 3}], None, r"annotation #0 \(no id\): no usable box"),
        ([], [{"id": 4, "height": 2, "width": 2}], r"image id 4 has no 'file_name'"),
        ([], [{"file_name": "a.png"}], r"image entry #0 has no 'id'"),
        ([], [{"id": 4, "file_name": "a", "height": 0, "width": 2}], r"image id 4 has height"),
    ],
)
def test_bad_input_names_file_and_id(tmp_path, anns, images, match):
    f = _write(tmp_path, _coco(anns, images))
    with pytest.raises((ValueError, KeyError), match=r"ann\.json.*" + match):
        load_coco_rotated_json(f, str(tmp_path))


def test_bad_options_and_files(tmp_path):
    f = _write(tmp_path, _coco([_ann(3, bbox=[1, 2, 3, 4])]))
    with pytest.raises(
        ValueError,
        match=r"ann\.json: annotation id 3: .*expected 5 numbers for bbox_mode XYWHA_ABS",
    ):
        load_coco_rotated_json(f, "r", bbox_mode=BoxMode.XYWHA_ABS)
    with pytest.raises(ValueError, match="box_source"):
        load_coco_rotated_json(f, "r", box_source="poly")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json: not valid JSON"):
        load_coco_rotated_json(str(tmp_path / "bad.json"), "r")
    f = _write(tmp_path, _coco([], categories=[{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]))
    with pytest.raises(ValueError, match="category id 1 appears twice"):
        load_coco_rotated_json(f, "r")


def _hand_dicts(root):
    return [
        {
            "file_name": f"{root}/img/a.png",
            "height": 100,
            "width": 200,
            "image_id": "a",
            "annotations": [
                {
                    "bbox": [100.25, 80.5, 40.1, 10.3, 30.000000001],
                    "bbox_mode": BoxMode.XYWHA_ABS,
                    "category_id": 1,
                    "difficult": 0,
                    "poly": [v + 0.1 for xy in _CORNERS_30 for v in xy],  # not the box's corners
                },
                {
                    "bbox": [5.0, 6.0, 2.0, 8.0, -90.0],
                    "bbox_mode": BoxMode.XYWHA_ABS,
                    "category_id": 0,
                    "difficult": 1,
                    "poly": [4.0, 2.0, 6.0, 2.0, 6.0, 10.0, 4.0, 10.0],
                },
            ],
        },
        {
            "file_name": f"{root}/img/b.png",
            "height": 7,
            "width": 9,
            "image_id": 8,
            "annotations": [],
        },
    ]


def test_round_trip_dicts_json_dicts(tmp_path):
    dicts = _hand_dicts(tmp_path)
    meta = {"thing_classes": ["car", "ship"], "thing_dataset_id_to_contiguous_id": {5: 1, 2: 0}}
    out = str(tmp_path / "out" / "rot.json")
    coco = convert_to_coco_rotated_json(dicts, meta, out, image_root=str(tmp_path / "img"))
    assert [i["file_name"] for i in coco["images"]] == ["a.png", "b.png"]
    assert coco["categories"] == [{"id": 2, "name": "car"}, {"id": 5, "name": "ship"}]
    first = coco["annotations"][0]
    assert first["category_id"] == 5 and len(first["bbox"]) == 5
    assert first["segmentation"] == [dicts[0]["annotations"][0]["poly"]]
    assert [a["iscrowd"] for a in coco["annotations"]] == [0, 1]
    name = f"coco_rot_rt_{uuid.uuid4().hex}"
    back = load_coco_rotated_json(out, str(tmp_path / "img"), name)
    assert back == dicts  # exact: every float, the polygon that is not the box's corners, ids
    assert MetadataCatalog.get(name).thing_classes == ["car", "ship"]
    assert MetadataCatalog.get(name).thing_dataset_id_to_contiguous_id == {2: 0, 5: 1}
    # without a mapping, ids are contiguous + 1 and the classes keep their order
    out2 = str(tmp_path / "rot2.json")
    convert_to_coco_rotated_json(dicts, {"thing_classes": ["car", "ship"]}, out2)
    assert load_coco_rotated_json(out2, "elsewhere", f"{name}_2") == dicts
    assert MetadataCatalog.get(f"{name}_2").thing_classes == ["car", "ship"]
    with pytest.raises(ValueError, match="not under image_root"):
        convert_to_coco_rotated_json(dicts, meta, out2, image_root=str(tmp_path / "other"))
    # a mapping against the json-id order could not load back with the same category ids
    swapped = {**meta, "thing_dataset_id_to_contiguous_id": {5: 0, 2: 1}}
    with pytest.raises(ValueError, match="keep the order of the JSON category ids"):
        convert_to_coco_rotated_json(dicts, swapped, out2)


def test_round_trip_json_dicts_json(tmp_path):
    anns = [_ann(1, bbox=[10, 20, 30, 40]), _ann(2, segmentation=[[0, 0, 4, 0, 4, 2, 0, 2]])]
    name = f"coco_rot_jdj_{uuid.uuid4().hex}"
    dicts = load_coco_rotated_json(_write(tmp_path, _coco(anns)), str(tmp_path), name)
    out = str(tmp_path / "again.json")
    convert_to_coco_rotated_json(dicts, MetadataCatalog.get(name), out, str(tmp_path))
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["categories"] == [{"id": 3, "name": "plane"}, {"id": 7, "name": "ship"}]
    assert [(a["image_id"], a["category_id"]) for a in again["annotations"]] == [(1, 3), (1, 3)]
    assert again["annotations"][0]["bbox"] == [25, 40, 30, 40, 0]
    assert again["annotations"][0]["area"] == 1200
    assert load_coco_rotated_json(out, str(tmp_path)) == dicts


def test_register(tmp_path):
    f = _write(tmp_path, _coco([_ann(1, bbox=[0, 0, 2, 2])]))
    name = f"coco_rot_reg_{uuid.uuid4().hex}"
    register_coco_rotated_instances(name, {"thing_colors": [(1, 2, 3)] * 2}, f, str(tmp_path))
    try:
        meta = MetadataCatalog.get(name)
        assert meta.evaluator_type == "rotated_coco" and meta.json_file == f
        assert len(DatasetCatalog.get(name)) == 2
        assert meta.thing_classes == ["plane", "ship"]  # set when loaded
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_dota_sample_to_coco_and_back(dota_samples, tmp_path):
    images = dota_samples / "images"
    label = dota_samples / "labelTxt" / "P1888.txt"
    if not label.is_file() or not (images / "P1888.png").is_file():
        pytest.fail(f"The shared DOTA sample P1888 is missing from {dota_samples}")
    dota = load_dota_instances(str(images), str(dota_samples / "labelTxt"))
    p1888 = [d for d in dota if d["image_id"] == "P1888"]
    assert len(p1888) == 1 and len(p1888[0]["annotations"]) == 64
    out = str(tmp_path / "dota.json")
    convert_to_coco_rotated_json(dota, {"thing_classes": DOTA_V1_CLASSES}, out, str(images))
    name = f"coco_rot_dota_{uuid.uuid4().hex}"
    back = load_coco_rotated_json(out, str(images), name)
    assert back == dota
    assert MetadataCatalog.get(name).thing_classes == list(DOTA_V1_CLASSES)
    # the polygons alone (variant (a)) give the same boxes as the DOTA loader, bit for bit
    seg = load_coco_rotated_json(out, str(images), box_source="segmentation")
    for d, s in zip(dota, seg):
        assert np.array_equal(
            np.array([a["bbox"] for a in d["annotations"]]).reshape(-1, 5),
            np.array([a["bbox"] for a in s["annotations"]]).reshape(-1, 5),
        ), d["image_id"]

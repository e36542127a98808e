"""The builtin DIOR-R, FAIR1M, SSDD, RSDD-SAR, HRSID and SRSDD registrations
(rotated_det.data.datasets.builtin): names, metadata, and each documented layout under
$ROTATED_DET_DATASETS loading."""

import json
import math

import cv2
import numpy as np
import pytest
from rotated_box_examples import BOX_30, CORNERS_30

from rotated_det.data import DatasetCatalog, MetadataCatalog
from rotated_det.data.datasets.builtin import SRSDD_CLASSES
from rotated_det.data.datasets.fair1m import FAIR1M_CLASSES
from rotated_det.data.datasets.voc_rotated import DIOR_R_CLASSES


def test_names_and_metadata():
    names = set(DatasetCatalog.list())
    expected = {
        **{f"dior_r_{s}": (20, "dota") for s in ("train", "val", "trainval", "test")},
        **{f"fair1m_v1_{s}{m}": (37, "dota") for s in ("train", "test") for m in ("", "_ss")},
        **{
            f"fair1m_v2_{s}{m}": (37, "dota")
            for s in ("train", "val", "trainval", "test")
            for m in ("", "_ss")
        },
        **{f"ssdd_{s}": (1, "hrsc") for s in ("train", "test", "test_inshore", "test_offshore")},
        **{f"rsdd_sar_{s}": (1, "hrsc") for s in ("train", "test")},
        **{f"hrsid_{s}": (1, "rotated_coco") for s in ("train", "test")},
        **{f"srsdd_{s}": (6, "dota") for s in ("train", "test")},
    }
    for name, (n, kind) in expected.items():
        assert name in names, name
        md = MetadataCatalog.get(name)
        assert (len(md.thing_classes), md.evaluator_type) == (n, kind), name
    assert MetadataCatalog.get("fair1m_v2_trainval_ss").full_dataset_name == "fair1m_v2_trainval"
    assert MetadataCatalog.get("dior_r_test").thing_classes == list(DIOR_R_CLASSES)
    assert MetadataCatalog.get("fair1m_v1_test").thing_classes == list(FAIR1M_CLASSES)
    assert MetadataCatalog.get("ssdd_train").thing_classes == ["ship"]


def _robndbox_corners(name, corners):
    tags = ("left_top", "right_top", "right_bottom", "left_bottom")
    xy = "".join(f"<x_{t}>{x}</x_{t}><y_{t}>{y}</y_{t}>" for t, (x, y) in zip(tags, corners))
    return f"<object><name>{name}</name><robndbox>{xy}</robndbox></object>"


def _voc(*objects, size=(800, 800)):
    s = f"<size><width>{size[1]}</width><height>{size[0]}</height></size>"
    return f"<annotation>{s}{''.join(objects)}</annotation>"


def test_dior_r_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("ROTATED_DET_DATASETS", str(tmp_path))
    base = tmp_path / "DIOR"
    anns, sets = base / "Annotations" / "Oriented Bounding Boxes", base / "ImageSets" / "Main"
    for d in (anns, sets, base / "JPEGImages-trainval", base / "JPEGImages-test"):
        d.mkdir(parents=True)
    for i, split in ((1, "train"), (2, "val"), (11726, "test")):
        stem = f"{i:05d}"
        (anns / f"{stem}.xml").write_text(_voc(_robndbox_corners("windmill", CORNERS_30)))
        folder = "JPEGImages-test" if split == "test" else "JPEGImages-trainval"
        (base / folder / f"{stem}.jpg").write_bytes(b"")
        (sets / f"{split}.txt").write_text(stem + "\n")
    # no trainval.txt: dior_r_trainval is train + val
    assert [d["image_id"] for d in DatasetCatalog.get("dior_r_trainval")] == ["00001", "00002"]
    (t,) = DatasetCatalog.get("dior_r_test")
    assert t["file_name"].endswith("JPEGImages-test/11726.jpg")
    np.testing.assert_allclose(t["annotations"][0]["bbox"], BOX_30, atol=1e-6)
    assert DIOR_R_CLASSES[t["annotations"][0]["category_id"]] == "windmill"
    (sets / "trainval.txt").write_text("00002\n")  # a trainval.txt wins
    assert [d["image_id"] for d in DatasetCatalog.get("dior_r_trainval")] == ["00002"]


def test_sar_ship_layouts(tmp_path, monkeypatch):
    monkeypatch.setenv("ROTATED_DET_DATASETS", str(tmp_path))
    # RBox-SSDD: per-split image folders, or one shared JPEGImages folder
    ssdd = tmp_path / "SSDD"
    params = "".join(
        f"<rotated_bbox_{k}>{v}</rotated_bbox_{k}>"
        for k, v in zip(("cx", "cy", "w", "h", "theta"), (100, 80, 40, 10, -30))
    )
    obj = f"<object><name>ship</name><rotated_bndbox>{params}</rotated_bndbox></object>"
    for split, images in (("train", "JPEGImages_train"), ("test_inshore", "JPEGImages")):
        (ssdd / images).mkdir(parents=True)
        (ssdd / f"Annotations_{split}").mkdir()
        (ssdd / f"Annotations_{split}" / "000001.xml").write_text(_voc(obj))
        (ssdd / images / "000001.jpg").write_bytes(b"")
    for name in ("ssdd_train", "ssdd_test_inshore"):
        (d,) = DatasetCatalog.get(name)
        np.testing.assert_allclose(d["annotations"][0]["bbox"], BOX_30, atol=1e-9)
    # RSDD-SAR: roLabelImg boxes (radians), ImageSets/<split>.txt
    rsdd = tmp_path / "RSDD-SAR"
    for d in ("JPEGImages", "Annotations", "ImageSets"):
        (rsdd / d).mkdir(parents=True)
    box = "<cx>100</cx><cy>80</cy><w>40</w><h>10</h>"
    obj = f"<object><name>ship</name><robndbox>{box}<angle>{-math.pi / 6}</angle></robndbox>"
    (rsdd / "Annotations" / "17_8_1.xml").write_text(_voc(obj + "</object>", size=(512, 512)))
    (rsdd / "JPEGImages" / "17_8_1.jpg").write_bytes(b"")
    (rsdd / "ImageSets" / "test.txt").write_text("17_8_1\n")
    (d,) = DatasetCatalog.get("rsdd_sar_test")
    assert (d["height"], d["width"]) == (512, 512)
    np.testing.assert_allclose(d["annotations"][0]["bbox"], BOX_30, atol=1e-9)
    # HRSID: COCO polygons
    hrsid = tmp_path / "HRSID"
    (hrsid / "annotations").mkdir(parents=True)
    seg = [[v for p in CORNERS_30 for v in p]]
    ann = {"id": 1, "image_id": 5, "category_id": 1, "iscrowd": 0, "segmentation": seg}
    coco = {
        "images": [{"id": 5, "file_name": "P0001_0_800.jpg", "height": 800, "width": 800}],
        "annotations": [dict(ann, bbox=[80, 65, 40, 29])],
        "categories": [{"id": 1, "name": "ship"}],
    }
    (hrsid / "annotations" / "test2017.json").write_text(json.dumps(coco))
    (d,) = DatasetCatalog.get("hrsid_test")
    assert d["file_name"] == str(hrsid / "JPEGImages" / "P0001_0_800.jpg")
    np.testing.assert_allclose(d["annotations"][0]["bbox"], BOX_30, atol=1e-6)
    # SRSDD: DOTA label files with SRSDD's class names
    srsdd = tmp_path / "SRSDD" / "train"
    (srsdd / "images").mkdir(parents=True), (srsdd / "labelTxt").mkdir()
    cv2.imwrite(str(srsdd / "images" / "L1.jpg"), np.zeros((1024, 1024, 3), np.uint8))
    poly = " ".join(f"{v:.4f}" for p in CORNERS_30 for v in p)
    (srsdd / "labelTxt" / "L1.txt").write_text(f"{poly} Cell-Container 0\n{poly} ore-oil 1\n")
    (d,) = DatasetCatalog.get("srsdd_train")
    assert [SRSDD_CLASSES[a["category_id"]] for a in d["annotations"]] == [
        "Cell-Container",
        "ore-oil",
    ]
    assert [a["difficult"] for a in d["annotations"]] == [0, 1]
    (srsdd / "labelTxt" / "L1.txt").write_text(f"{poly} Bulk-Cargo 0\n")
    with pytest.raises(KeyError, match=r"L1\.txt:1: unknown class 'Bulk-Cargo'"):
        DatasetCatalog.get("srsdd_train")

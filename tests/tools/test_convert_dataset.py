"""tools/convert_dataset.py through its main(): round trips between DOTA, rotated COCO, YOLO-OBB,
labelme and roLabelImg, and its refusals (overwriting, writing outside --output, bad classes)."""

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from script_loading import load_script

from rotated_det.structures import poly_to_rbox, rbox_corner_distance
from rotated_det.structures.dota_format import parse_dota_label_file

# Image a.png (200 x 100): an axis-aligned car; a ship 40 x 10 px at (100, 50) turned 30 degrees
# counter-clockwise (corners by hand, see tests/data/test_labelme.py), difficult; a quadrilateral
# that is not a rectangle; a car that pokes 1 px out of the image (inside YOLO's 1% tolerance).
# Image b.png (160 x 120): one tall ship.
LABELS = {
    "a": "imagesource:GoogleEarth\ngsd:0.5\n"
    "20 30 60 30 60 40 20 40 car 0\n"
    "80.1795 55.6699 114.8205 35.6699 119.8205 44.3301 85.1795 64.3301 ship 1\n"
    "150 60 180 62 178 80 152 75 ship 0\n"
    "190 5 201 5 201 15 190 15 car 0\n",
    "b": "70 10 80 10 80 90 70 90 ship 0\n",
}
SIZES = {"a": (100, 200), "b": (120, 160)}


@pytest.fixture(scope="module")
def tool():
    return load_script("tools/convert_dataset.py")


@pytest.fixture
def dota(tmp_path):
    root = tmp_path / "dota"
    (root / "labelTxt").mkdir(parents=True)
    (root / "images").mkdir()
    for stem, text in LABELS.items():
        (root / "labelTxt" / f"{stem}.txt").write_text(text)
        h, w = SIZES[stem]
        cv2.imwrite(str(root / "images" / f"{stem}.png"), np.zeros((h, w, 3), np.uint8))
    return root


def _read_dota(folder: Path) -> dict:
    """stem -> (polys [N, 8], class names, difficult [N]) of a DOTA label folder."""
    out = {}
    for f in sorted(os.listdir(folder)):
        lab = parse_dota_label_file(str(folder / f))
        out[f[:-4]] = (lab.polys, lab.class_names, lab.difficult)
    return out


def _run(tool, src, dst, inp, out, *extra):
    return tool.main(
        ["--from", src, "--to", dst, "--input", str(inp), "--output", str(out), "--no-progress"]
        + list(extra)
    )


def test_dota_coco_yolo_dota_round_trip(tool, dota, tmp_path):
    images = str(dota / "images")
    s = _run(tool, "dota", "coco", dota, tmp_path / "coco")
    assert (s["images"], s["objects"], s["classes"]) == (2, 5, ["car", "ship"])
    _run(tool, "coco", "yolo-obb", tmp_path / "coco", tmp_path / "yolo")
    s = _run(tool, "yolo-obb", "dota", tmp_path / "yolo", tmp_path / "back", "--images", images)
    assert s["clamped"] == 0
    before, after = _read_dota(dota / "labelTxt"), _read_dota(tmp_path / "back" / "labelTxt")
    assert before.keys() == after.keys()
    for stem, (polys, names, _) in before.items():
        polys2, names2, diff2 = after[stem]
        assert names2 == names
        np.testing.assert_allclose(polys2, polys, atol=1e-3)
        assert rbox_corner_distance(poly_to_rbox(polys2), poly_to_rbox(polys)).max() < 1e-3
        assert not diff2.any()  # YOLO-OBB has no difficult flag: lossy, documented


def test_dota_coco_labelme_dota_is_exact(tool, dota, tmp_path):
    _run(tool, "dota", "coco", dota, tmp_path / "coco")
    _run(tool, "coco", "labelme", tmp_path / "coco", tmp_path / "labelme")
    s = _run(tool, "labelme", "dota", tmp_path / "labelme", tmp_path / "back")
    assert s["classes"] == ["car", "ship"]
    # labelme's imagePath points at the source images (no --copy-images)
    data = json.loads((tmp_path / "labelme" / "a.json").read_text())
    assert (tmp_path / "labelme" / data["imagePath"]).resolve() == (dota / "images" / "a.png")
    before, after = _read_dota(dota / "labelTxt"), _read_dota(tmp_path / "back" / "labelTxt")
    for stem, (polys, names, diff) in before.items():
        polys2, names2, diff2 = after[stem]
        assert names2 == names and diff2.tolist() == diff.tolist()
        np.testing.assert_allclose(polys2, polys, atol=1e-6)


def test_rolabelimg_keeps_rectangles_and_replaces_quadrilaterals(tool, dota, tmp_path):
    _run(tool, "dota", "rolabelimg", dota, tmp_path / "ro")
    # the XML names its image, so no --images is needed to read it back
    _run(tool, "rolabelimg", "dota", tmp_path / "ro", tmp_path / "back", "--classes", "car,ship")
    before, after = _read_dota(dota / "labelTxt"), _read_dota(tmp_path / "back" / "labelTxt")
    for stem, (polys, names, diff) in before.items():
        polys2, names2, diff2 = after[stem]
        assert names2 == names and diff2.tolist() == diff.tolist()
        # every box equals the minimum-area rectangle of the original polygon
        assert rbox_corner_distance(poly_to_rbox(polys2), poly_to_rbox(polys)).max() < 1e-3
    # the rectangles keep their corners; the quadrilateral (row 2 of a) became its rectangle
    polys, polys2 = before["a"][0], after["a"][0]
    for i in (0, 1, 3):
        c1, c2 = polys[i].reshape(4, 2), polys2[i].reshape(4, 2)
        assert np.linalg.norm(c1[:, None] - c2[None], axis=-1).min(axis=1).max() < 1e-3
    assert np.abs(polys2[2] - polys[2]).max() > 1


def test_yolo_clamps_far_outside_objects_and_counts_them(tool, dota, tmp_path):
    with open(dota / "labelTxt" / "b.txt", "a") as f:
        f.write("150 50 175 50 175 60 150 60 car 0\n")  # 15 px = 9% past the 160 px width
    s = _run(tool, "dota", "yolo-obb", dota, tmp_path / "yolo")
    assert s["clamped"] == 1
    last = (tmp_path / "yolo" / "labels" / "b.txt").read_text().splitlines()[-1].split()
    assert [float(v) for v in last[1::2]] == [150 / 160, 1, 1, 150 / 160]


def test_refuses_to_overwrite_and_never_writes_outside_output(tool, dota, tmp_path):
    out = tmp_path / "out"
    _run(tool, "dota", "labelme", dota, out, "--copy-images")
    assert sorted(os.listdir(out)) == ["a.json", "a.png", "b.json", "b.png"]
    (out / "a.json").write_text("mine")
    with pytest.raises(FileExistsError, match=r"4 output files exist already .*--overwrite"):
        _run(tool, "dota", "labelme", dota, out, "--copy-images")
    assert (out / "a.json").read_text() == "mine"  # nothing written
    _run(tool, "dota", "labelme", dota, out, "--copy-images", "--overwrite")
    assert json.loads((out / "a.json").read_text())["imagePath"] == "a.png"
    with pytest.raises(SystemExit, match="is a source folder"):
        _run(tool, "labelme", "labelme", out, out)

    # an image whose name comes from a COCO file: escaped, written inside --output only
    coco_dir = tmp_path / "coco"
    coco_dir.mkdir()
    cv2.imwrite(str(coco_dir / ".x.png"), np.zeros((10, 10, 3), np.uint8))
    coco = {
        "images": [{"id": 1, "file_name": ".x.png", "height": 10, "width": 10}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 3, "bbox": [5, 5, 4, 2, 30]},
        ],
        "categories": [{"id": 3, "name": "car"}],
    }
    (coco_dir / "annotations.json").write_text(json.dumps(coco))
    before = {p for p in tmp_path.rglob("*")}
    _run(tool, "coco", "yolo-obb", coco_dir, tmp_path / "y", "--copy-images")
    new = {p for p in tmp_path.rglob("*")} - before
    assert all(p.is_relative_to(tmp_path / "y") for p in new)
    assert (tmp_path / "y" / "labels" / "%2Ex.txt").is_file()
    assert (tmp_path / "y" / "images" / "%2Ex.png").is_file()


def test_class_errors_name_the_file(tool, dota, tmp_path):
    with pytest.raises(KeyError, match=r"a\.txt:4: unknown class 'ship'"):
        _run(tool, "dota", "coco", dota, tmp_path / "o1", "--classes", "car")
    _run(tool, "dota", "coco", dota, tmp_path / "coco", "--classes", "ship,car,boat")
    coco = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    assert coco["categories"] == [
        {"id": 1, "name": "ship"},
        {"id": 2, "name": "car"},
        {"id": 3, "name": "boat"},
    ]
    with pytest.raises(KeyError, match=r"a\.png: class 'ship' is not in --classes"):
        _run(tool, "coco", "dota", tmp_path / "coco", tmp_path / "o2", "--classes", "car,boat")
    _run(tool, "coco", "dota", tmp_path / "coco", tmp_path / "o3", "--classes", "car,ship")
    assert _read_dota(tmp_path / "o3" / "labelTxt")["a"][1] == ["car", "ship", "ship", "car"]
    (dota / "labelTxt" / "b.txt").write_text("70 10 80 10 80 90 70 90 small ship 0\n")
    with pytest.raises(ValueError, match=r"b\.txt:1: malformed DOTA label line"):
        _run(tool, "dota", "coco", dota, tmp_path / "o4")
    # a class name with a space cannot be written as DOTA
    with pytest.raises(ValueError, match=r"\['small ship'\] contain whitespace"):
        tool.write_dataset([], ["small ship"], "dota", str(tmp_path / "o5"))
    assert not (tmp_path / "o5").exists()

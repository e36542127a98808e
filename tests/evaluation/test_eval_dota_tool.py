"""tools/eval_dota.py: Task1 files vs DOTA label files (real samples), against the reference."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from script_loading import load_script

from rotated_det.evaluation.dota_submission import Task1Writer, read_task1_results
from rotated_det.structures import poly_to_rbox
from rotated_det.structures.dota_format import DOTA_V1_CLASSES, parse_dota_label_file
from sample_data import DOTA_SAMPLES, dota_samples_dir

REPO = Path(__file__).resolve().parents[2]
LABELS = DOTA_SAMPLES / "labelTxt"
IMAGES = ["P0706", "P1888", "P2709"]


def _load(path, name):
    return load_script(path)


ref = _load(Path(__file__).with_name("dota_reference.py"), "_dota_reference_for_tool_tests")
tool = _load(REPO / "tools" / "eval_dota.py", "_eval_dota_tool")


def _labels():
    dota_samples_dir()
    return {n: parse_dota_label_file(str(LABELS / f"{n}.txt")) for n in IMAGES}


def _write(det_dir, per_image):
    with Task1Writer(str(det_dir), DOTA_V1_CLASSES, zip_path="") as w:
        for name, (boxes, scores, classes) in per_image.items():
            w.add(name, boxes, scores, classes)


def _imageset(tmp_path, names):
    path = tmp_path / "set.txt"
    path.write_text("".join(f"{n}.png\n" for n in names))
    return str(path)


def test_perfect_and_shifted(tmp_path, capsys):
    labels = _labels()
    idx = {c: i for i, c in enumerate(DOTA_V1_CLASSES)}
    perfect, shifted = {}, {}
    for n, lab in labels.items():
        boxes = poly_to_rbox(lab.polys)
        cls = np.array([idx[c] for c in lab.class_names])
        perfect[n] = (boxes, np.ones(len(cls)), cls)
        far = boxes.copy()
        far[:, 0] += 3000
        shifted[n] = (far, np.ones(len(cls)), cls)
    _write(tmp_path / "perfect", perfect)
    _write(tmp_path / "shifted", shifted)
    argv = ["--ann-dir", str(LABELS), "--imageset", _imageset(tmp_path, IMAGES), "--quiet"]
    out = tool.main(["--det-dir", str(tmp_path / "perfect"), *argv, "--coco-thresholds"])
    assert out["mAP"]["0.5"] == pytest.approx(1.0) and out["mAP"]["0.5:0.95"] > 0.99
    printed = capsys.readouterr().out
    assert "small-vehicle" in printed and "mAP@0.5: 100.00" in printed
    out = tool.main(["--det-dir", str(tmp_path / "shifted"), *argv, "--use-07-metric"])
    assert out["mAP"]["0.5"] == 0.0


@pytest.mark.parametrize("use_07", [False, True])
def test_random_detections_against_reference(tmp_path, use_07):
    labels = _labels()
    idx = {c: i for i, c in enumerate(DOTA_V1_CLASSES)}
    rng = np.random.default_rng(11)
    per_image = {}
    for n, lab in labels.items():
        boxes = poly_to_rbox(lab.polys)
        cls = np.array([idx[c] for c in lab.class_names])
        src = rng.integers(0, len(boxes), 2 * len(boxes))
        b = boxes[src] + rng.normal(0, 1, (len(src), 5)) * [2, 2, 1.5, 1.5, 5]
        b[:, 2:4] = np.abs(b[:, 2:4]) + 1
        c = np.where(rng.random(len(src)) < 0.9, cls[src], idx["plane"])
        per_image[n] = (b, rng.random(len(src)), c)
    per_image["NOT_IN_SET"] = (np.array([[5.0, 5, 4, 4, 0]]), np.array([0.99]), np.array([0]))
    det_dir = tmp_path / "dets"
    _write(det_dir, per_image)
    json_path = tmp_path / "res.json"
    tool.main([
        "--det-dir", str(det_dir), "--ann-dir", str(LABELS), "--imageset",
        _imageset(tmp_path, IMAGES), "--iou-thr", "0.5", "0.7", "--quiet",
        "--output-json", str(json_path), *(["--use-07-metric"] if use_07 else []),
    ])  # fmt: skip
    out = json.loads(json_path.read_text())
    # Reference on what the files hold (rounded coordinates and scores), same box conversion.
    files = read_task1_results(str(det_dir))
    dets, gts = [], []
    for cname, d in files.items():
        for img, s, box in zip(d["image_names"], d["scores"], poly_to_rbox(d["polys"])):
            if img in labels:
                dets.append((img, idx[cname], s, box))
    for n, lab in labels.items():
        for box, c, diff in zip(poly_to_rbox(lab.polys), lab.class_names, lab.difficult):
            gts.append((n, idx[c], box, bool(diff)))
    for thr in (0.5, 0.7):
        aps = ref.dataset_aps_ref(dets, gts, len(DOTA_V1_CLASSES), thr, use_07)
        assert out["mAP"][f"{thr:g}"] == pytest.approx(np.nanmean(aps), abs=1e-6)
        for c, ap in out["AP"][f"{thr:g}"].items():
            assert ap == pytest.approx(aps[idx[c]], abs=1e-6)
        # plane has detections but no GT: it is not averaged.
        assert "plane" not in out["AP"][f"{thr:g}"]


def test_bad_files_name_file_and_line(tmp_path):
    det_dir = tmp_path / "d"
    det_dir.mkdir()
    (det_dir / "Task1_ship.txt").write_text("P0706 0.9 1 2 3 4 5 6 7 8\nP0706 0.8 1 2 3\n")
    with pytest.raises(ValueError, match=r"Task1_ship.txt:2: expected"):
        read_task1_results(str(det_dir))
    with pytest.raises(FileNotFoundError, match="No Task1_"):
        read_task1_results(str(tmp_path))
    (det_dir / "Task1_ship.txt").write_text("P0706 0.9 1 2 3 4 5 6 7 8\n")
    (det_dir / "Task1_zeppelin.txt").write_text("")
    with pytest.raises(ValueError, match="zeppelin"):
        imageset = _imageset(tmp_path, ["P0706"])
        tool.main(["--det-dir", str(det_dir), "--ann-dir", str(LABELS), "--quiet",
                   "--classes", "ship,harbor", "--imageset", imageset])  # fmt: skip
    assert os.path.exists(det_dir / "Task1_ship.txt")


def test_merge_patches_option(tmp_path):
    """Task1 files on P0706's patches (each patch's objects wholly inside it) -> --merge-patches
    -> mAP 1 against the full image's labels of those objects."""
    from rotated_det.data.dota_split import assign_objects_to_windows, get_sliding_windows
    from rotated_det.structures.dota_patch_name import format_patch_name

    lab = _labels()["P0706"]
    idx = {c: i for i, c in enumerate(DOTA_V1_CLASSES)}
    wins = get_sliding_windows(1111, 1182, (512,), (128,))
    wo = assign_objects_to_windows(lab.polys, wins, iof_thr=0.7)
    per_patch, inside = {}, set()
    for w, (x0, y0, _, _) in enumerate(wins.tolist()):
        sel = (wo.win_idx == w) & ~wo.clipped
        obj = wo.obj_idx[sel]
        inside.update(obj.tolist())
        boxes = poly_to_rbox(wo.polys[sel] - np.tile([x0, y0], 4))
        cls = np.array([idx[lab.class_names[k]] for k in obj], dtype=np.int64)
        per_patch[format_patch_name("P0706", 1.0, x0, y0)] = (boxes, np.ones(len(obj)), cls)
    _write(tmp_path / "patches", per_patch)
    ann = tmp_path / "ann"
    ann.mkdir()
    (ann / "P0706.txt").write_text(
        "".join(
            " ".join(f"{v:g}" for v in lab.polys[k]) + f" {lab.class_names[k]} {lab.difficult[k]}\n"
            for k in sorted(inside)
        )
    )
    argv = ["--det-dir", str(tmp_path / "patches"), "--ann-dir", str(ann), "--quiet"]
    merged = tmp_path / "merged"
    out = tool.main([*argv, "--merge-patches", "--coco-thresholds", "--save-merged", str(merged)])
    assert out["mAP"]["0.5"] == pytest.approx(1.0) and out["mAP"]["0.5:0.95"] == pytest.approx(1.0)
    # The merged files hold each object once, on the full image, and score the same.
    saved = read_task1_results(str(merged))
    assert sum(len(v["scores"]) for v in saved.values()) == len(inside)
    assert {n for v in saved.values() for n in v["image_names"]} == {"P0706"}
    assert (tmp_path / "merged.zip").exists()
    again = tool.main(["--det-dir", str(merged), "--ann-dir", str(ann), "--quiet"])
    assert again["mAP"]["0.5"] == pytest.approx(1.0)
    # Without merging, the patch names are not images of the set: nothing is detected.
    assert tool.main(argv)["mAP"]["0.5"] == 0.0


def test_polygon_iou_option_matches_the_kit_geometry(tmp_path):
    """--polygon-iou scores the polygons as written (quadrilateral labels, including one with
    its points out of order) exactly as the reference does."""
    names = ["P1888", "P2709", "P0004__1__0___0"]
    labels = {n: parse_dota_label_file(str(LABELS / f"{n}.txt")) for n in names}
    idx = {c: i for i, c in enumerate(DOTA_V1_CLASSES)}
    rng = np.random.default_rng(5)
    per_image = {}
    for n, lab in labels.items():
        boxes = poly_to_rbox(lab.polys)
        src = rng.integers(0, len(boxes), 2 * len(boxes))
        b = boxes[src] + rng.normal(0, 1, (len(src), 5)) * [1.5, 1.5, 1, 1, 4]
        b[:, 2:4] = np.abs(b[:, 2:4]) + 1
        cls = np.array([idx[lab.class_names[k]] for k in src])
        per_image[n] = (b, rng.random(len(src)), cls)
    _write(tmp_path / "dets", per_image)
    argv = ["--det-dir", str(tmp_path / "dets"), "--ann-dir", str(LABELS), "--quiet",
            "--imageset", _imageset(tmp_path, names), "--iou-thr", "0.5", "0.8"]  # fmt: skip
    out_poly = tool.main([*argv, "--polygon-iou"])
    out_rbox = tool.main(argv)
    files = read_task1_results(str(tmp_path / "dets"))
    for thr in (0.5, 0.8):
        aps = []
        for c in range(len(DOTA_V1_CLASSES)):
            cname = DOTA_V1_CLASSES[c]
            d = files.get(cname)
            dets = [] if d is None else list(zip(d["image_names"], d["scores"], d["polys"]))
            gts = {}
            for n, lab in labels.items():
                for poly, k, diff in zip(lab.polys, lab.class_names, lab.difficult):
                    if k == cname:
                        gts.setdefault(n, []).append((poly, bool(diff)))
            aps.append(ref.class_ap_ref(dets, gts, thr)[0])
        assert out_poly["mAP"][f"{thr:g}"] == pytest.approx(np.nanmean(aps), abs=1e-6)
    # The quadrilaterals are close to rectangles: the two geometries nearly agree at IoU 0.5, and
    # differ at a strict threshold (so the polygon path was taken).
    assert out_rbox["mAP"]["0.5"] == pytest.approx(out_poly["mAP"]["0.5"], abs=0.05)
    assert out_rbox["mAP"]["0.8"] != out_poly["mAP"]["0.8"]

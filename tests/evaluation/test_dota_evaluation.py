"""DOTAEvaluator / HRSCEvaluator end to end: dataset registration -> process -> evaluate, against
the shapely reference; patch merging on P0706; Task1 submission files."""

import os
import uuid
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from script_loading import load_script

from rotated_det.data import DatasetCatalog, MetadataCatalog
from rotated_det.data.dota_split import assign_objects_to_windows, get_sliding_windows
from rotated_det.evaluation.build import build_evaluator
from rotated_det.evaluation.dota_evaluation import DOTAEvaluator
from rotated_det.evaluation.dota_submission import read_task1_results
from rotated_det.evaluation.hrsc_evaluation import HRSCEvaluator
from rotated_det.evaluation.patch_merger import MergedDetections
from rotated_det.evaluation.rotated_coco_evaluation import RotatedCOCOEvaluator
from rotated_det.structures import BoxMode, Instances, RotatedBoxes, poly_to_rbox
from rotated_det.structures.dota_format import parse_dota_label_file
from rotated_det.structures.dota_patch_name import format_patch_name
from sample_data import DOTA_SAMPLES, dota_samples_dir


def _load_reference():
    path = Path(__file__).with_name("dota_reference.py")
    return load_script(path)


ref = _load_reference()
CLASSES = ["plane", "ship", "harbor"]
SAMPLES = str(DOTA_SAMPLES)


def _register(dicts, classes=CLASSES, **meta):
    name = f"_eval_test_{uuid.uuid4().hex[:8]}"
    DatasetCatalog.register(name, lambda: dicts)
    MetadataCatalog.get(name).set(thing_classes=list(classes), **meta)
    return name


def _random_dataset(seed, num_images=5):
    rng = np.random.default_rng(seed)
    dicts, preds = [], []
    for i in range(num_images):
        n = int(rng.integers(1, 10))
        boxes = np.c_[
            rng.uniform(0, 300, (n, 2)), rng.uniform(8, 50, (n, 2)), rng.uniform(-90, 90, n)
        ]
        cls = rng.integers(0, 3, n)
        diff = rng.random(n) < 0.2
        anns = [
            {"bbox": b.tolist(), "bbox_mode": BoxMode.XYWHA_ABS, "category_id": int(c),
             "difficult": int(d)}
            for b, c, d in zip(boxes, cls, diff)
        ]  # fmt: skip
        dicts.append({"file_name": f"img{i}.png", "image_id": f"img{i}", "height": 300,
                      "width": 300, "annotations": anns})  # fmt: skip
        src = rng.integers(0, n, 2 * n)
        pb = boxes[src] + rng.normal(0, 1, (2 * n, 5)) * [3, 3, 2, 2, 6]
        pb[:, 2:4] = np.abs(pb[:, 2:4]) + 1
        pc = np.where(rng.random(2 * n) < 0.9, cls[src], rng.integers(0, 3, 2 * n))
        preds.append((pb, rng.random(2 * n), pc))
    return dicts, preds


def _outputs(boxes, scores, classes, size=(300, 300)):
    inst = Instances(size)
    inst.pred_boxes = RotatedBoxes(
        torch.as_tensor(np.asarray(boxes), dtype=torch.float32).reshape(-1, 5)
    )
    inst.scores = torch.as_tensor(np.asarray(scores), dtype=torch.float32)
    inst.pred_classes = torch.as_tensor(np.asarray(classes), dtype=torch.int64)
    return {"instances": inst}


def _run(evaluator, dicts, preds):
    evaluator.reset()
    for d, p in zip(dicts, preds):  # batches of one
        evaluator.process(
            [{"image_id": d["image_id"], "file_name": d["file_name"]}], [_outputs(*p)]
        )
    return evaluator.evaluate()


def _reference_aps(dicts, preds, thr, use_07):
    dets, gts = [], []
    for i, (d, (b, s, c)) in enumerate(zip(dicts, preds)):
        # Boxes and scores go through float32 in Instances: the reference sees the same values.
        b32 = np.asarray(b, dtype=np.float32).astype(np.float64)
        s32 = np.asarray(s, dtype=np.float32).astype(np.float64)
        dets += [(i, int(k), float(sc), bb) for bb, sc, k in zip(b32, s32, c)]
        gts += [(i, a["category_id"], a["bbox"], bool(a["difficult"])) for a in d["annotations"]]
    return ref.dataset_aps_ref(dets, gts, len(CLASSES), thr, use_07)


@pytest.mark.parametrize("use_07", [False, True])
def test_dota_evaluator_matches_reference(tmp_path, use_07):
    dicts, preds = _random_dataset(3)
    name = _register(dicts)
    ev = DOTAEvaluator(name, str(tmp_path), use_07_metric=use_07, distributed=False)
    res = _run(ev, dicts, preds)["rbox"]
    for thr, key in ((0.5, "AP50"), (0.75, "AP75")):
        aps = _reference_aps(dicts, preds, thr, use_07)
        assert res[key] == pytest.approx(100 * np.nanmean(aps), abs=1e-4)
        if thr == 0.5:
            for c, ap in zip(CLASSES, aps):
                if np.isfinite(ap):
                    assert res[f"AP-{c}"] == pytest.approx(100 * ap, abs=1e-4)
    assert res["mAP"] == res["AP50"]
    expected = np.mean(
        [np.nanmean(_reference_aps(dicts, preds, t, use_07)) for t in np.arange(10) * 0.05 + 0.5]
    )
    assert res["mAP50-95"] == pytest.approx(100 * expected, abs=1e-4)
    pngs = sorted(os.listdir(tmp_path / "pr_curves"))
    assert "pr_all.png" in pngs and len(pngs) >= 2


def test_perfect_and_shifted_predictions(tmp_path):
    dicts, _ = _random_dataset(4)
    name = _register(dicts)
    perfect = [
        ([a["bbox"] for a in d["annotations"]], [1.0] * len(d["annotations"]),
         [a["category_id"] for a in d["annotations"]])
        for d in dicts
    ]  # fmt: skip
    ev = DOTAEvaluator(name, None, distributed=False)
    res = _run(ev, dicts, perfect)["rbox"]
    assert res["mAP"] == pytest.approx(100.0) and res["mAP50-95"] == pytest.approx(100.0)
    shifted = [([[b[0] + 400, b[1] + 400, *b[2:]] for b in p[0]], p[1], p[2]) for p in perfect]
    res = _run(ev, dicts, shifted)["rbox"]
    assert res["mAP"] == 0.0 and res["AP75"] == 0.0


def _p0706_patches(size=512, gap=128):
    labels = parse_dota_label_file(os.path.join(SAMPLES, "labelTxt", "P0706.txt"))
    wins = get_sliding_windows(1111, 1182, (size,), (gap,))
    wo = assign_objects_to_windows(labels.polys, wins, iof_thr=0.7)
    patches, inside = [], set()
    for w, (x0, y0, _, _) in enumerate(wins.tolist()):
        sel = (wo.win_idx == w) & ~wo.clipped
        patches.append((format_patch_name("P0706", 1.0, x0, y0), wo.obj_idx[sel],
                        wo.polys[sel] - np.tile([x0, y0], 4)))  # fmt: skip
        inside.update(wo.obj_idx[sel].tolist())
    return labels, patches, sorted(inside)


@pytest.mark.parametrize("gt_source", ["ann_dir", "full_dataset_name"])
def test_merge_patches_p0706_through_evaluator(tmp_path, gt_source):
    dota_samples_dir()
    labels, patches, inside = _p0706_patches()
    classes = ["ship", "harbor"]
    cls = np.array([classes.index(c) for c in labels.class_names])
    # Full-image labels: the objects wholly inside some patch.
    ann_dir = tmp_path / "labelTxt"
    ann_dir.mkdir()
    with open(ann_dir / "P0706.txt", "w") as f:
        for k in inside:
            coords = " ".join(f"{v:g}" for v in labels.polys[k])
            f.write(f"{coords} {labels.class_names[k]} {labels.difficult[k]}\n")
    patch_dicts = [{"file_name": f"/x/{n}.png", "image_id": n} for n, _, _ in patches]
    name = _register(patch_dicts, classes)
    if gt_source == "ann_dir":
        source = {"ann_dir": str(ann_dir)}
    else:
        boxes = poly_to_rbox(labels.polys)
        anns = [{"bbox": boxes[k].tolist(), "bbox_mode": BoxMode.XYWHA_ABS,
                 "category_id": int(cls[k]), "difficult": int(labels.difficult[k])}
                for k in inside]  # fmt: skip
        full = _register(
            [{"file_name": "/full/P0706.png", "image_id": "P0706", "annotations": anns}]
        )
        source = {"full_dataset_name": full}
    ev = DOTAEvaluator(
        name, str(tmp_path / "out"), merge_patches=True, **source,
        submission_dir=str(tmp_path / "task1"), distributed=False,
    )  # fmt: skip
    ev.reset()
    for (_, obj, local), d in zip(patches, patch_dicts):
        ev.process([d], [_outputs(poly_to_rbox(local), np.ones(len(obj)), cls[obj])])
    assert ev._merger.num_buffered_detections == 0  # released when its last patch arrived
    res = ev.evaluate()["rbox"]
    assert res["mAP"] == pytest.approx(100.0) and res["mAP50-95"] == pytest.approx(100.0)
    # The submission holds each object once, in full-image coordinates.
    sub = read_task1_results(str(tmp_path / "task1"))
    assert sum(len(v["scores"]) for v in sub.values()) == len(inside)
    assert set(sub["ship"]["image_names"]) == {"P0706"}
    full = poly_to_rbox(labels.polys[inside])
    got = poly_to_rbox(np.concatenate([sub[c]["polys"] for c in classes]))
    np.testing.assert_allclose(np.sort(got[:, 0]), np.sort(full[:, 0]), atol=0.01)
    with zipfile.ZipFile(str(tmp_path / "task1") + ".zip") as z:
        assert sorted(z.namelist()) == ["Task1_harbor.txt", "Task1_ship.txt"]


def test_submission_only_for_unlabelled_test_set(tmp_path):
    dicts = [{"file_name": "a.png", "image_id": "a"}, {"file_name": "b.png", "image_id": "b"}]
    name = _register(dicts)
    preds = [
        ([[10, 10, 5, 4, 0]], [0.5], [2]),
        ([[1, 2, 3, 4, 90], [5, 6, 7, 8, -30]], [0.9, 0.1], [0, 0]),
    ]
    ev = DOTAEvaluator(
        name, None, submission_dir=str(tmp_path / "t1"), compute_metrics=False, distributed=False
    )
    assert _run(ev, dicts, preds) == {}
    sub = read_task1_results(str(tmp_path / "t1"))
    assert list(sub["harbor"]["image_names"]) == ["a"]
    assert list(sub["plane"]["image_names"]) == ["b", "b"]
    np.testing.assert_allclose(sub["plane"]["scores"], [0.9, 0.1])
    # Corners of (1, 2, 3, 4, 90deg): the w axis points along (0, -1) in image coordinates.
    np.testing.assert_allclose(
        sub["plane"]["polys"][0], [-1, 3.5, -1, 0.5, 3, 0.5, 3, 3.5], atol=0.01
    )
    assert len(sub["ship"]["scores"]) == 0
    # compute_metrics left on: the missing labels are noticed, no metric is made up.
    ev = DOTAEvaluator(name, None, submission_dir=str(tmp_path / "t2"), distributed=False)
    assert _run(ev, dicts, preds) == {}
    assert (tmp_path / "t2.zip").exists()


def test_merge_without_labels_is_a_clear_error():
    name = _register([{"file_name": "P1__1.0__0___0.png", "image_id": "x"}])
    with pytest.raises(ValueError, match="full_dataset_name= or ann_dir="):
        DOTAEvaluator(name, merge_patches=True)


def test_hrsc_evaluator_reports_both_modes():
    dicts, preds = _random_dataset(7)
    name = _register(dicts)
    res = _run(HRSCEvaluator(name, None, distributed=False), dicts, preds)["rbox"]
    for suffix, use_07 in (("", False), ("-07", True)):
        aps = _reference_aps(dicts, preds, 0.5, use_07)
        assert res[f"AP50{suffix}"] == pytest.approx(100 * np.nanmean(aps), abs=1e-4)
        assert res[f"AP75{suffix}"] == pytest.approx(
            100 * np.nanmean(_reference_aps(dicts, preds, 0.75, use_07)), abs=1e-4
        )
    assert res["AP50"] != res["AP50-07"]  # the two modes differ on this data


def test_combine_ranks_merges_an_image_split_across_ranks():
    name = _register([{"file_name": "P1__1.0__0___0.png", "image_id": "x"}])
    ev = DOTAEvaluator(name, merge_patches=True, ann_dir="unused", distributed=False)
    box = [[50.0, 50.0, 20.0, 10.0, 0.0]]
    part0 = {"P1": MergedDetections(np.array(box, np.float32), np.array([0.9], np.float32),
                                    np.array([1]))}  # fmt: skip
    part1 = {
        "P1": MergedDetections(np.array(box * 2, np.float32), np.array([0.8, 0.7], np.float32),
                               np.array([1, 2])),
        "P2": MergedDetections.empty(),
    }  # fmt: skip
    out = ev._combine_ranks([part0, part1])
    assert sorted(out) == ["P1", "P2"]
    # The copy of class 1 seen by the second rank is suppressed; class 2 stays.
    np.testing.assert_allclose(out["P1"].scores, [0.9, 0.7])
    np.testing.assert_array_equal(out["P1"].classes, [1, 2])


def test_build_evaluator_from_metadata():
    dicts, _ = _random_dataset(1)
    for kind, cls in (("dota", DOTAEvaluator), ("hrsc", HRSCEvaluator),
                      ("rotated_coco", RotatedCOCOEvaluator)):  # fmt: skip
        ev = build_evaluator(_register(dicts, evaluator_type=kind), None, distributed=False)
        assert type(ev) is cls
    with pytest.raises(ValueError, match="evaluator_type None"):
        build_evaluator(_register(dicts))


class _EchoModel(torch.nn.Module):
    """Returns each input's stored predictions (a stand-in detector)."""

    def __init__(self, preds):
        super().__init__()
        self.preds = preds

    def forward(self, batch):
        return [_outputs(*self.preds[d["image_id"]]) for d in batch]


def test_through_inference_on_dataset():
    from rotated_det.evaluation import inference_on_dataset

    dicts, preds = _random_dataset(9, num_images=6)
    name = _register(dicts, evaluator_type="dota")
    model = _EchoModel({d["image_id"]: p for d, p in zip(dicts, preds)})
    loader = [[{"image_id": d["image_id"], "file_name": d["file_name"]} for d in dicts[i : i + 2]]
              for i in range(0, len(dicts), 2)]  # fmt: skip
    res = inference_on_dataset(model, loader, build_evaluator(name, None, distributed=False))
    expected = _reference_aps(dicts, preds, 0.5, False)
    assert res["rbox"]["AP50"] == pytest.approx(100 * np.nanmean(expected), abs=1e-4)


def test_merged_submission_for_a_test_set(tmp_path):
    """The DOTA test-set flow: patches without labels -> merged full-image Task1 files + zip."""
    dota_samples_dir()
    labels, patches, inside = _p0706_patches()
    cls = np.array([CLASSES.index(c) for c in labels.class_names])
    patch_dicts = [{"file_name": f"{n}.png", "image_id": n} for n, _, _ in patches]
    name = _register(patch_dicts)
    ev = DOTAEvaluator(
        name, None, merge_patches=True, compute_metrics=False,
        submission_dir=str(tmp_path / "sub"), distributed=False,
    )  # fmt: skip
    preds = [(poly_to_rbox(local), np.ones(len(obj)), cls[obj]) for _, obj, local in patches]
    assert _run(ev, patch_dicts, preds) == {}
    sub = read_task1_results(str(tmp_path / "sub"))
    assert sum(len(v["scores"]) for v in sub.values()) == len(inside)
    assert {n for v in sub.values() for n in v["image_names"]} == {"P0706"}
    with zipfile.ZipFile(str(tmp_path / "sub") + ".zip") as z:
        assert sorted(z.namelist()) == sorted(f"Task1_{c}.txt" for c in CLASSES)

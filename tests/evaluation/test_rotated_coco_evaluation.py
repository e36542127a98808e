"""Rotated COCO AP: perfect / shifted predictions, a hand-computed case, difficult as crowd."""

import math
import uuid

import numpy as np
import pytest
import torch

from rotated_det.data import DatasetCatalog, MetadataCatalog
from rotated_det.evaluation.dota_evaluation import RotatedGroundTruth
from rotated_det.evaluation.rotated_coco_evaluation import RotatedCOCOEvaluator, rotated_coco_eval
from rotated_det.structures import BoxMode, Instances, RotatedBoxes


def _along_w(box, d):
    """Move a box by d pixels along its own w axis (cos a, -sin a)."""
    a = math.radians(box[4])
    return [box[0] + d * math.cos(a), box[1] - d * math.sin(a), *box[2:]]


def test_hand_case_rotated_iou():
    gt_a = [100.0, 100.0, 30.0, 10.0, 30.0]
    gt_b = [200.0, 150.0, 30.0, 10.0, 30.0]
    # det_b overlaps gt_b by 24 of 30 along w: IoU = 240 / 360 = 2/3 (an axis-aligned IoU of
    # the rotated boxes' corners would give a different number).
    gts = [RotatedGroundTruth([gt_a, gt_b], [0, 0], [False, False])]
    dets = [(np.array([gt_a, _along_w(gt_b, 6.0)]), np.array([0.9, 0.8]), np.array([0, 0]))]
    res, ev = rotated_coco_eval(gts, dets, ["thing"])
    # IoU thresholds 0.50..0.65 (4 of 10): both TP -> AP 1. 0.70..0.95: TP then FP -> precision 1
    # up to recall 0.5, then nothing: 51 of the 101 recall points.
    assert res["AP50"] == pytest.approx(100.0)
    assert res["AP75"] == pytest.approx(100 * 51 / 101)
    assert res["AP"] == pytest.approx(100 * (4 + 6 * 51 / 101) / 10)
    assert res["AP-thing"] == pytest.approx(res["AP"])
    # 30 x 10 = 300 px^2 < 32^2: both are small objects.
    assert res["APs"] == pytest.approx(res["AP"])
    assert np.isnan(res["APm"]) and np.isnan(res["APl"])
    assert ev.ious[(1, 1)].shape == (2, 2)
    np.testing.assert_allclose(ev.ious[(1, 1)][1, 1], 2 / 3, atol=1e-9)


def test_difficult_is_crowd_and_ignored():
    gt = [50.0, 50.0, 40.0, 40.0, 10.0]
    hard = [150.0, 150.0, 40.0, 40.0, -20.0]
    gts = [RotatedGroundTruth([gt, hard], [0, 0], [False, True])]
    dets = [(np.array([hard, gt]), np.array([0.9, 0.8]), np.array([0, 0]))]
    res, _ = rotated_coco_eval(gts, dets, ["thing"])
    assert res["AP"] == pytest.approx(100.0)
    # Without a detection on it, the difficult object is not missed either.
    res, _ = rotated_coco_eval(gts, [(dets[0][0][1:], dets[0][1][1:], dets[0][2][1:])], ["thing"])
    assert res["AP"] == pytest.approx(100.0)
    # As a plain object it is a miss: precision 1 up to recall 0.5 (51 of 101 recall points).
    res, _ = rotated_coco_eval(
        gts, [(dets[0][0][1:], dets[0][1][1:], dets[0][2][1:])], ["thing"], difficult_as_crowd=False
    )
    assert res["AP"] == pytest.approx(100 * 51 / 101)


def _register(dicts, classes):
    name = f"_coco_test_{uuid.uuid4().hex[:8]}"
    DatasetCatalog.register(name, lambda: dicts)
    MetadataCatalog.get(name).set(thing_classes=list(classes))
    return name


def test_evaluator_perfect_and_shifted(tmp_path):
    rng = np.random.default_rng(0)
    dicts = []
    for i in range(4):
        n = 6
        boxes = np.c_[
            rng.uniform(0, 500, (n, 2)), rng.uniform(10, 150, (n, 2)), rng.uniform(-90, 90, n)
        ]
        anns = [{"bbox": b.tolist(), "bbox_mode": BoxMode.XYWHA_ABS, "category_id": int(c)}
                for b, c in zip(boxes, rng.integers(0, 2, n))]  # fmt: skip
        dicts.append({"file_name": f"{i}.png", "image_id": i, "height": 500, "width": 500,
                      "annotations": anns})  # fmt: skip
    name = _register(dicts, ["a", "b"])
    ev = RotatedCOCOEvaluator(name, str(tmp_path), distributed=False)
    for shift, expected in ((0.0, 100.0), (1000.0, 0.0)):
        ev.reset()
        for d in dicts:
            inst = Instances((500, 500))
            b = torch.tensor([a["bbox"] for a in d["annotations"]], dtype=torch.float32)
            b[:, 0] += shift
            inst.pred_boxes = RotatedBoxes(b)
            inst.scores = torch.ones(len(b))
            inst.pred_classes = torch.tensor([a["category_id"] for a in d["annotations"]])
            ev.process([{"image_id": d["image_id"]}], [{"instances": inst}])
        res = ev.evaluate()["rbox"]
        for k in ("AP", "AP50", "AP75", "AP-a", "AP-b"):
            assert res[k] == pytest.approx(expected, abs=1e-6), k
    assert (tmp_path / "rotated_coco_results.json").exists()

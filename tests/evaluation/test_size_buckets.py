"""Size-bucketed AP (small / medium / large by rotated-box area w * h) in rotated_voc_map, the
DOTA evaluator and the rotated COCO evaluator, on one hand-built scene worked by hand."""

import uuid

import numpy as np
import pytest
import torch

from rotated_det.data import DatasetCatalog, MetadataCatalog
from rotated_det.evaluation import (
    SIZE_RANGES,
    DOTAEvaluator,
    RotatedGroundTruth,
    rotated_coco_eval,
    rotated_voc_map,
)
from rotated_det.structures import BoxMode, Instances, RotatedBoxes

# One class, one image. The small object is a thin box turned by 45 degrees: area 64 * 6 = 384
# (small), while its horizontal bounding box is 49.5 x 49.5 = 2450 px^2 (medium).
GT = np.array(
    [
        [200, 200, 64, 6, 45],  # small
        [400, 100, 50, 40, 0],  # medium (2000)
        [600, 400, 120, 100, 0],  # large (12000)
    ],
    np.float64,
)
DETS = np.array(
    [
        [900, 900, 100, 100, 0],  # 0.95: large-sized background FP
        [100, 500, 30, 10, 0],  # 0.92: small-sized background FP
        [200, 200, 64, 6, 45],  # 0.90: the small object, exactly
        [600, 400, 85, 100, 0],  # 0.70: the large object, IoU 8500 / 12000 = 0.708, area medium
    ],
    np.float64,
)
SCORES = np.array([0.95, 0.92, 0.90, 0.70])


def test_rotated_voc_map_area_ranges_hand_worked():
    """AP50 (all-point):
    all: FP, FP, TP, TP over 3 GT: envelope 1/2 up to recall 2/3 -> 1/3.
    small: the large-sized FP is ignored (outside the range, not a TP), the TP on the large GT
        is ignored (its GT is outside): FP, TP over 1 GT -> 1/2.
    medium: every detection is ignored (outside, or matched to a GT outside): 0.
    large: the large-sized FP counts, the medium-sized TP on the large GT counts: FP, TP -> 1/2.
    """
    r = rotated_voc_map(
        np.zeros(4), DETS, SCORES, np.zeros(4), np.zeros(3), GT, np.zeros(3),
        num_classes=1, area_ranges=SIZE_RANGES,
    )  # fmt: skip
    assert r.mean_ap(0.5) == pytest.approx(1 / 3)
    assert {k: r.area_mean_ap(k, 0.5) for k in SIZE_RANGES} == pytest.approx(
        {"small": 0.5, "medium": 0.0, "large": 0.5}
    )
    assert {k: int(v.sum()) for k, v in r.area_num_gts.items()} == {
        "small": 1,
        "medium": 1,
        "large": 1,
    }
    # The whole-dataset result is unchanged by the ranges.
    plain = rotated_voc_map(
        np.zeros(4), DETS, SCORES, np.zeros(4), np.zeros(3), GT, np.zeros(3), num_classes=1
    )
    np.testing.assert_array_equal(plain.ap, r.ap)
    assert plain.area_ap == {}
    with pytest.raises(KeyError, match="'tiny' was not evaluated"):
        r.area_mean_ap("tiny")


def test_difficult_gt_stay_out_of_every_bucket():
    r = rotated_voc_map(
        np.zeros(4), DETS, SCORES, np.zeros(4), np.zeros(3), GT, np.zeros(3), [True, False, False],
        num_classes=1, area_ranges=SIZE_RANGES,
    )  # fmt: skip
    assert int(r.area_num_gts["small"].sum()) == 0 and np.isnan(r.area_mean_ap("small"))
    assert r.area_mean_ap("large") == pytest.approx(0.5)


def _outputs(boxes, scores):
    inst = Instances((1000, 1000))
    inst.pred_boxes = RotatedBoxes(torch.as_tensor(boxes, dtype=torch.float32))
    inst.scores = torch.as_tensor(scores, dtype=torch.float32)
    inst.pred_classes = torch.zeros(len(scores), dtype=torch.int64)
    return {"instances": inst}


@pytest.fixture
def dataset():
    name = f"_size_test_{uuid.uuid4().hex[:8]}"
    anns = [
        {"bbox": b.tolist(), "bbox_mode": BoxMode.XYWHA_ABS, "category_id": 0, "difficult": 0}
        for b in GT
    ]
    d = {"file_name": "a.png", "image_id": "a", "height": 1000, "width": 1000, "annotations": anns}
    DatasetCatalog.register(name, lambda: [d])
    MetadataCatalog.get(name).set(thing_classes=["ship"])
    yield name
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


@pytest.mark.parametrize("ranges", ["default", None])
def test_dota_evaluator_reports_ap50_by_size(dataset, ranges):
    kwargs = {} if ranges == "default" else {"size_ranges": None}
    ev = DOTAEvaluator(dataset, plot_pr_curves=False, distributed=False, **kwargs)
    ev.reset()
    ev.process([{"image_id": "a", "file_name": "a.png"}], [_outputs(DETS, SCORES)])
    res = ev.evaluate()["rbox"]
    assert res["AP50"] == pytest.approx(100 / 3)
    if ranges is None:
        assert not any(k.startswith("AP50-") for k in res)
    else:
        sizes = {k: res[f"AP50-{k}"] for k in ("small", "medium", "large")}
        assert sizes == pytest.approx({"small": 50.0, "medium": 0.0, "large": 50.0})


def test_rotated_coco_aps_use_the_rotated_area():
    """COCO AP over IoU 0.50:0.95 (101-point). small: FP then the exact TP at every threshold ->
    0.5 (the thin object is small by w * h; by its horizontal box it would be medium and APs
    undefined). medium: no TP -> 0. large: the TP (IoU 0.708) counts at 0.50-0.70 (5 of 10
    thresholds) after one FP -> 0.5 there, 0 elsewhere -> 0.25."""
    results, _ = rotated_coco_eval(
        [RotatedGroundTruth(GT, np.zeros(3), np.zeros(3))],
        [(DETS, SCORES, np.zeros(4, np.int64))],
        ["ship"],
    )
    assert (results["APs"], results["APm"], results["APl"]) == pytest.approx((50.0, 0.0, 25.0))

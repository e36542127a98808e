"""tools/analyze_results.py on the files the evaluators save: DOTAEvaluator's .pth and
RotatedCOCOEvaluator's .json give the same confusion matrix and error tables; image keys by
file name; nothing overwritten without --overwrite."""

import uuid

import cv2
import numpy as np
import pytest
import torch
from script_loading import load_script

from rotated_det.data import DatasetCatalog, MetadataCatalog
from rotated_det.evaluation import (
    DOTAEvaluator,
    RotatedCOCOEvaluator,
    flatten_per_image,
    format_error_table,
    rotated_confusion_matrix,
    tide_errors,
)
from rotated_det.evaluation.dota_evaluation import RotatedGroundTruth
from rotated_det.structures import BoxMode, Instances, RotatedBoxes

CLASSES = ["plane", "ship"]
GT = {  # image id -> (boxes, classes)
    "a": ([[50, 50, 40, 20, 0], [150, 50, 40, 20, 30], [50, 200, 30, 30, 0]], [0, 1, 0]),
    "b": ([[80, 80, 30, 12, 10]], [1]),
    "c": ([[60, 60, 20, 20, 0]], [0]),  # no detections in image c: its plane is missed
}
PRED = {  # image id -> (boxes, scores, classes)
    "a": ([[50, 50, 40, 20, 0], [150, 50, 40, 20, 30], [300, 300, 20, 20, 0]], [0.9, 0.8, 0.7],
          [0, 0, 1]),
    "b": ([[90, 80, 30, 12, 10], [80, 80, 30, 12, 10]], [0.6, 0.3], [1, 1]),
    "c": (np.zeros((0, 5)), [], []),
}  # fmt: skip


@pytest.fixture
def dataset():
    name = f"_analyze_results_{uuid.uuid4().hex[:8]}"
    dicts = [
        {
            "file_name": f"images/{k}.png",
            "image_id": k,
            "height": 400,
            "width": 400,
            "annotations": [
                {"bbox": b, "bbox_mode": BoxMode.XYWHA_ABS, "category_id": c}
                for b, c in zip(*GT[k])
            ],
        }
        for k in GT
    ]
    DatasetCatalog.register(name, lambda: dicts)
    MetadataCatalog.get(name).set(thing_classes=CLASSES)
    yield name
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def _run_evaluator(evaluator):
    evaluator.reset()
    for k, (boxes, scores, classes) in PRED.items():
        inst = Instances((400, 400))
        inst.pred_boxes = RotatedBoxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 5))
        inst.scores = torch.tensor(scores, dtype=torch.float32)
        inst.pred_classes = torch.tensor(classes, dtype=torch.int64)
        evaluator.process([{"image_id": k, "file_name": f"images/{k}.png"}], [{"instances": inst}])
    evaluator.evaluate()


def _expected():
    gts = {k: RotatedGroundTruth(b, c, np.zeros(len(c), bool)) for k, (b, c) in GT.items()}
    _, a = flatten_per_image(PRED, gts, 2)
    cm = rotated_confusion_matrix(*a[:8], num_classes=2)
    return cm, format_error_table(tide_errors(*a[:8], num_classes=2), CLASSES)


@pytest.mark.parametrize("saved_by", ["dota", "coco"])
def test_tool_reads_the_evaluators_saved_predictions(tmp_path, dataset, saved_by):
    if saved_by == "dota":
        ev = DOTAEvaluator(dataset, str(tmp_path / "eval"), distributed=False, plot_pr_curves=False)
        _run_evaluator(ev)
        pred_file = tmp_path / "eval" / "rotated_predictions.pth"
    else:
        _run_evaluator(RotatedCOCOEvaluator(dataset, str(tmp_path / "eval"), distributed=False))
        pred_file = tmp_path / "eval" / "rotated_coco_results.json"
    out = tmp_path / "analysis"
    tool = load_script("tools/analyze_results.py")
    argv = ["--task", "confusion", "errors", "--predictions", str(pred_file)]
    argv += ["--dataset", dataset, "--output", str(out)]
    written = tool.main(argv)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["confusion_matrix.png", "confusion_matrix.txt", "errors.png", "errors.txt"]
    )
    assert sorted(written) == sorted(str(p) for p in out.iterdir())
    cm, errors_table = _expected()
    # Hand check of the scene: plane found; ship taken for a plane; background ship; the ship of
    # image b found by its exact detection (0.3), the one 10 px off (0.6, IoU ~0.4) is
    # background; the planes of a and c missed.
    np.testing.assert_array_equal(cm.counts, [[1, 0, 2], [1, 1, 0], [0, 2, 0]])
    assert (out / "confusion_matrix.txt").read_text() == cm.format_table(CLASSES) + "\n"
    assert (out / "errors.txt").read_text() == errors_table + "\n"
    for png in ("confusion_matrix.png", "errors.png"):
        assert cv2.imread(str(out / png)) is not None

    # A second run refuses to replace the files; --overwrite replaces them.
    again = ["--task", "confusion", *argv[3:]]
    with pytest.raises(SystemExit, match="exist already; pass --overwrite"):
        tool.main(again)
    tool.main([*again, "--overwrite", "--score-threshold", "0.75"])
    assert "score >= 0.75" in (out / "confusion_matrix.txt").read_text()


def test_merged_predictions_are_matched_by_file_name(tmp_path, dataset):
    # Merged DOTA predictions are keyed by the full image's file name stem, not its image id.
    renamed = f"{dataset}_ids"
    dicts = [{**d, "image_id": f"id_{d['image_id']}"} for d in DatasetCatalog.get(dataset)]
    DatasetCatalog.register(renamed, lambda: dicts)
    MetadataCatalog.get(renamed).set(thing_classes=CLASSES)
    preds = {
        k: {"boxes": np.float32(b).reshape(-1, 5), "scores": np.float32(s), "classes": np.int64(c)}
        for k, (b, s, c) in PRED.items()
    }
    torch.save(preds, tmp_path / "rotated_predictions.pth")
    tool = load_script("tools/analyze_results.py")
    try:
        tool.main(
            ["--task", "confusion", "--predictions", str(tmp_path / "rotated_predictions.pth"),
             "--dataset", renamed, "--output", str(tmp_path / "out")]
        )  # fmt: skip
    finally:
        DatasetCatalog.remove(renamed)
        MetadataCatalog.remove(renamed)
    cm, _ = _expected()
    assert (tmp_path / "out" / "confusion_matrix.txt").read_text() == cm.format_table(
        CLASSES
    ) + "\n"


def test_unknown_images_and_datasets_are_named(tmp_path, dataset):
    torch.save(
        {"zzz": {"boxes": np.zeros((0, 5)), "scores": [], "classes": []}}, tmp_path / "p.pth"
    )
    tool = load_script("tools/analyze_results.py")
    base = ["--task", "errors", "--predictions", str(tmp_path / "p.pth"), "--output"]
    with pytest.raises(SystemExit, match=r"1 predicted image\(s\) are not in dataset .*'zzz'"):
        tool.main([*base, str(tmp_path / "o"), "--dataset", dataset])
    with pytest.raises(SystemExit, match="Dataset 'nope' is not registered"):
        tool.main([*base, str(tmp_path / "o"), "--dataset", "nope"])
    assert not (tmp_path / "o").exists()

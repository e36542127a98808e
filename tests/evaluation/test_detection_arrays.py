"""flatten_per_image / as_detection_arrays: the evaluators' per-image forms give the same arrays;
bad input is named."""

import numpy as np
import pytest

from rotated_det.evaluation import MergedDetections, as_detection_arrays, flatten_per_image
from rotated_det.evaluation.dota_evaluation import RotatedGroundTruth

BOXES = np.array([[10, 10, 4, 2, 0], [20, 20, 6, 3, 30]], np.float32)
SCORES = np.array([0.5, 0.9], np.float32)
CLASSES = np.array([1, 0])
GTS = {
    "b": RotatedGroundTruth([[1, 1, 2, 2, 0]], [1], [True]),
    "a": RotatedGroundTruth(np.zeros((0, 5)), [], []),
    "c": RotatedGroundTruth([[5, 5, 2, 2, 0], [6, 6, 2, 2, 0]], [0, 1], [False, False]),
}


@pytest.mark.parametrize(
    "form",
    [
        MergedDetections(BOXES, SCORES, CLASSES),
        {"boxes": BOXES, "scores": SCORES, "classes": CLASSES},  # rotated_predictions.pth
        (BOXES, SCORES, CLASSES),
    ],
    ids=["merged", "dict", "tuple"],
)
def test_per_image_forms_flatten_alike(form):
    keys, a = flatten_per_image({"c": form}, GTS, num_classes=2)
    assert keys == ["a", "b", "c"]
    np.testing.assert_array_equal(a.det_image_ids, [2, 2])  # index into keys
    np.testing.assert_array_equal(a.det_boxes, BOXES.astype(np.float64))
    np.testing.assert_array_equal(a.det_labels, CLASSES)
    np.testing.assert_array_equal(a.gt_image_ids, [1, 2, 2])
    np.testing.assert_array_equal(a.gt_labels, [1, 0, 1])
    np.testing.assert_array_equal(a.gt_difficult, [True, False, False])
    assert a.num_classes == 2


def test_bad_input_is_named():
    with pytest.raises(KeyError, match=r"1 predicted image\(s\) have no ground truth.*'zz'"):
        flatten_per_image({"zz": (BOXES, SCORES, CLASSES)}, GTS, num_classes=2)
    with pytest.raises(KeyError, match="predictions of image 'c': missing 'scores'"):
        flatten_per_image({"c": {"boxes": BOXES, "classes": CLASSES}}, GTS, num_classes=2)
    with pytest.raises(ValueError, match="my_fn: det_scores contains NaN"):
        as_detection_arrays(
            [0], BOXES[:1], [np.nan], [0], [], [], [], num_classes=1, caller="my_fn"
        )
    with pytest.raises(ValueError, match="gt_difficult has 2 rows, expected 1"):
        as_detection_arrays([], [], [], [], [0], BOXES[:1], [0], [0, 1], num_classes=1)


def test_negative_image_ids_are_renumbered_in_order():
    a = as_detection_arrays([-5, 7], BOXES, SCORES, [0, 0], [7], BOXES[:1], [0], num_classes=1)
    np.testing.assert_array_equal(a.det_image_ids, [0, 1])
    np.testing.assert_array_equal(a.gt_image_ids, [1])

"""rotated_confusion_matrix: a hand-built scene, a loop reference on random scenes, the outputs."""

import cv2
import numpy as np
import pytest
from script_loading import load_script

from rotated_det.evaluation import (
    as_detection_arrays,
    flatten_per_image,
    rotated_confusion_matrix,
)
from rotated_det.evaluation.dota_evaluation import RotatedGroundTruth

ref = load_script("tests/evaluation/analysis_reference.py")
PLANE, SHIP = 0, 1


def _scene():
    """Image 0: a plane found as plane, a ship found as plane, a background ship detection, a
    missed plane, a low-score plane detection on the missed plane (dropped by the score
    threshold), a duplicate plane on the first plane, a ship on a difficult ship (ignored).
    Image 1: no objects, one plane detection where image 0 has its first plane."""
    gts = {
        "0": RotatedGroundTruth(
            [
                [50, 50, 40, 20, 0],  # plane, found
                [150, 50, 40, 20, 30],  # ship, detected as plane
                [50, 200, 30, 30, 0],  # plane, missed
                [300, 50, 40, 20, 60],  # ship, difficult
            ],
            [PLANE, SHIP, PLANE, SHIP],
            [False, False, False, True],
        ),
        "1": RotatedGroundTruth(np.zeros((0, 5)), [], []),
    }
    preds = {
        "0": (
            np.array(
                [
                    [50, 50, 40, 20, 0],  # correct
                    [150, 50, 40, 20, 30],  # wrong class
                    [300, 300, 20, 20, 0],  # background
                    [50, 200, 30, 30, 0],  # score below the threshold
                    [52, 50, 40, 20, 0],  # duplicate of the first (IoU 0.9)
                    [300, 50, 40, 20, 60],  # on the difficult ship
                ],
                np.float64,
            ),
            np.array([0.9, 0.8, 0.7, 0.1, 0.6, 0.5]),
            np.array([PLANE, PLANE, SHIP, PLANE, PLANE, SHIP]),
        ),
        "1": (np.array([[50, 50, 40, 20, 0.0]]), np.array([0.95]), np.array([PLANE])),
    }
    return flatten_per_image(preds, gts, 2)[1]


def test_hand_built_scene_gives_the_exact_matrix():
    cm = rotated_confusion_matrix(*_scene()[:8], num_classes=2)
    expected = np.array(
        [
            # pred: plane, ship, background
            [1, 0, 1],  # true plane: found; missed
            [1, 0, 0],  # true ship: detected as plane
            [2, 1, 0],  # background: duplicate plane + image-1 plane; background ship
        ]
    )
    np.testing.assert_array_equal(cm.counts, expected)
    assert cm.num_ignored == 1
    norm = cm.normalized()
    np.testing.assert_allclose(norm[0], [0.5, 0.0, 0.5])
    np.testing.assert_allclose(norm[2], [2 / 3, 1 / 3, 0.0])


def test_score_threshold_admits_the_low_score_detection():
    cm = rotated_confusion_matrix(*_scene()[:8], num_classes=2, score_threshold=0.05)
    assert cm.counts[PLANE, PLANE] == 2 and cm.counts[PLANE, 2] == 0  # the missed plane found


def test_iou_threshold_is_strict():
    # Two 10 x 10 squares shifted by 10/3 px: IoU exactly 0.5 (intersection 2/3 of each).
    a = as_detection_arrays(
        [0], [[10 / 3, 0, 10, 10, 0]], [0.9], [0], [0], [[0, 0, 10, 10, 0]], [0], num_classes=1
    )
    at_half = rotated_confusion_matrix(*a[:8], num_classes=1, iou_threshold=0.5)
    below = rotated_confusion_matrix(*a[:8], num_classes=1, iou_threshold=0.49)
    np.testing.assert_array_equal(at_half.counts, [[0, 1], [1, 0]])
    np.testing.assert_array_equal(below.counts, [[1, 0], [0, 0]])


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_the_loop_reference_on_random_scenes(seed):
    rng = np.random.default_rng(seed)
    ng, nd, k = 120, 300, 4
    gt_img = rng.integers(0, 6, ng)
    gt_box = np.c_[
        rng.uniform(0, 300, (ng, 2)), rng.uniform(10, 60, (ng, 2)), rng.uniform(-90, 90, ng)
    ]
    src = rng.integers(0, ng, nd)
    det_box = gt_box[src] + rng.normal(0, 1, (nd, 5)) * [5, 5, 4, 4, 10]
    bg = rng.random(nd) < 0.3
    det_box[bg, :2] = rng.uniform(0, 300, (int(bg.sum()), 2))
    det_img = np.where(bg, rng.integers(0, 7, nd), gt_img[src])
    labels = rng.integers(0, k, ng)
    det_labels = np.where(rng.random(nd) < 0.7, labels[src], rng.integers(0, k, nd))
    scores = np.round(rng.random(nd), 2)  # ties on purpose
    a = as_detection_arrays(
        det_img,
        det_box,
        scores,
        det_labels,
        gt_img,
        gt_box,
        labels,
        rng.random(ng) < 0.1,
        num_classes=k,
    )
    cm = rotated_confusion_matrix(*a[:8], num_classes=k, score_threshold=0.2)
    counts, ignored = ref.confusion_reference(a, score_threshold=0.2)
    np.testing.assert_array_equal(cm.counts, counts)
    assert cm.num_ignored == ignored
    # Each non-difficult object is counted once in its row: matched or missed.
    np.testing.assert_array_equal(
        cm.counts[:k].sum(1), np.bincount(labels[~a.gt_difficult], minlength=k)
    )


def test_table_and_png(tmp_path):
    cm = rotated_confusion_matrix(*_scene()[:8], num_classes=2)
    table = cm.format_table(["plane", "ship"])
    background = [ln.split("|") for ln in table.splitlines() if ln.startswith("background")]
    # counts, then row-normalised percentages, each with the row total
    assert [b[1].split() for b in background] == [["2", "1", "0"], ["66.7", "33.3", "0.0"]]
    assert [b[2].strip() for b in background] == ["3", "3"]
    path = cm.plot(str(tmp_path / "cm.png"), ["plane", "ship"])
    img = cv2.imread(path)
    assert img is not None and img.shape[0] > 100 and img.shape[1] > 200
    with pytest.raises(ValueError, match="3 class names for 2 classes"):
        cm.format_table(["a", "b", "c"])


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="rotated_confusion_matrix: det_labels must lie in"):
        rotated_confusion_matrix([0], [[0, 0, 1, 1, 0]], [1.0], [3], [], [], [], num_classes=2)
    with pytest.raises(ValueError, match="det_boxes has 2 rows, expected 1"):
        rotated_confusion_matrix([0], np.zeros((2, 5)), [1.0], [0], [], [], [], num_classes=2)

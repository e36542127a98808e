"""The steps shared by the dense detectors (rotated_det.modeling.meta_arch.dense_detection)."""

import math

import pytest
import torch

from rotated_det.config import instantiate
from rotated_det.modeling.meta_arch.dense_detection import (
    check_point_detector_parts,
    detect_image,
    focal_loss_sum,
    labels_from_matches,
    moving_loss_normalizer,
)
from rotated_det.structures import Instances, RotatedBoxes

from ._helpers import small_model_cfg


def test_labels_from_matches_by_hand():
    gt = Instances(
        (64, 64),
        gt_boxes=RotatedBoxes(torch.tensor([[10.0, 10, 8, 4, 0], [40, 40, 6, 6, 30]])),
        gt_classes=torch.tensor([2, 0]),
    )
    matched = torch.tensor([1, 0, 1, 0])
    match_labels = torch.tensor([1, 1, 0, -1])  # fg, fg, bg, ignored
    labels, boxes = labels_from_matches(gt, matched, match_labels, num_classes=3)
    assert labels.tolist() == [0, 2, 3, -1]
    assert torch.equal(boxes, gt.gt_boxes.tensor[[1, 0, 1, 0]])
    empty = Instances((64, 64), gt_boxes=RotatedBoxes(torch.zeros(0, 5)), gt_classes=torch.zeros(0))
    labels, boxes = labels_from_matches(empty, torch.zeros(4, dtype=torch.long), match_labels, 3)
    assert labels.tolist() == [3, 3, 3, 3] and torch.equal(boxes, torch.zeros(4, 5))


def test_moving_loss_normalizer_and_focal_loss_sum_by_hand():
    assert moving_loss_normalizer(100.0, 10, 0.9) == pytest.approx(91.0)
    assert moving_loss_normalizer(100.0, 0, 0.9) == pytest.approx(90.1)  # at least 1
    # one anchor of class 0 with logit 0 (p = 0.5) and K = 2: class 0 positive, class 1 negative,
    # each term alpha_t * 0.5^2 * ln 2; the ignored anchor adds nothing.
    logits = torch.tensor([[[0.0, 0.0], [5.0, 5.0]]])
    labels = torch.tensor([[0, -1]])
    expected = (0.25 + 0.75) * 0.25 * math.log(2)
    assert focal_loss_sum(logits, labels, 0.25, 2.0).item() == pytest.approx(expected, rel=1e-6)


def test_point_detector_parts_must_agree_naming_both_keys():
    model = instantiate(small_model_cfg("rotated_fcos"))
    parts = (model.head, model.num_classes, model.angle_coder, model.point_generator)
    check_point_detector_parts("RotatedFCOS", *parts, model.box_coder)
    with pytest.raises(ValueError, match=r"RotatedFCOS: num_classes=4 must equal head\.num"):
        check_point_detector_parts("RotatedFCOS", model.head, 4, *parts[2:], model.box_coder)
    model.point_generator.strides = [8, 16]
    with pytest.raises(ValueError, match=r"point_generator\.strides=\[8, 16\] must equal head"):
        check_point_detector_parts("RotatedFCOS", *parts, model.box_coder)


def test_detect_image_by_hand():
    """Two levels, two classes; the decoder places each candidate at x = 10 * location + 20 + 10 *
    level and halves its score. Worked: level 0 keeps (loc 1, class 0, p=0.9) and (loc 0, class 1,
    p=0.8); level 1 keeps (loc 0, class 0, p=0.7) only (the rest are below 0.5); the level-1 box
    sits on the level-0 class-0 box, so class-wise NMS drops it (IoU 1 >= 0.5)."""

    def logit(p: float) -> float:
        return math.log(p / (1 - p))

    level0 = torch.tensor([[logit(0.1), logit(0.8)], [logit(0.9), logit(0.2)]])
    level1 = torch.tensor([[logit(0.7), logit(0.3)]])
    calls = []

    def decode_level(level, locations, classes, scores):
        calls.append((level, locations.tolist(), classes.tolist()))
        x = 10.0 * locations.float() + (30.0 if level else 20.0)
        boxes = torch.stack([x, torch.full_like(x, 20), *[torch.full_like(x, 8)] * 2, x * 0], 1)
        return boxes, scores / 2

    result = detect_image([level0, level1], decode_level, (64, 64), 0.5, 10, 0.5, 100)
    assert calls == [(0, [1, 0], [0, 1]), (1, [0], [0])]
    assert result.scores.tolist() == pytest.approx([0.45, 0.4])
    assert result.pred_classes.tolist() == [0, 1]
    assert result.pred_boxes.tensor[:, 0].tolist() == [30.0, 20.0]
    # topk=1 keeps only the best pair of each level: level 0's (1, 0) and level 1's (0, 0)
    result = detect_image([level0, level1], decode_level, (64, 64), 0.5, 1, 0.5, 100)
    assert result.scores.tolist() == pytest.approx([0.45])

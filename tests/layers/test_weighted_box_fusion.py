"""weighted_box_fusion_rotated: hand-built clusters (the 180-degree angle period, renamed w/h
sides, score-weighted means, the view-count score) and a loop reference on random boxes."""

import math

import numpy as np
import pytest
import torch

from rotated_det.layers import batched_nms_rotated, pairwise_iou_rotated
from rotated_det.layers import weighted_box_fusion as wbf_module
from rotated_det.layers.weighted_box_fusion import weighted_box_fusion_rotated


def _angle_diff(a, b):
    """Distance between angles modulo 180 degrees."""
    d = (np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64) + 90.0) % 180.0 - 90.0
    return np.abs(d)


def _fuse(boxes, scores, classes=None, thr=0.5, num_views=1):
    b = torch.tensor(boxes, dtype=torch.float32)
    s = torch.tensor(scores, dtype=torch.float32)
    c = torch.zeros(len(boxes), dtype=torch.int64) if classes is None else torch.tensor(classes)
    return weighted_box_fusion_rotated(b, s, c, thr, num_views=num_views)


def test_angles_89_and_minus_89_fuse_to_90_not_0():
    boxes, scores, classes = _fuse([(50, 50, 40, 10, 89), (50, 50, 40, 10, -89)], [0.8, 0.8])
    assert len(boxes) == 1
    # the mean of 89 and -89 is 0, a horizontal box; the rectangle is (almost) vertical
    assert _angle_diff(boxes[0, 4].item(), 90.0) < 1e-4
    assert -90.0 <= boxes[0, 4].item() < 90.0
    assert boxes[0, :4].tolist() == pytest.approx([50, 50, 40, 10], abs=1e-4)
    assert scores[0].item() == pytest.approx(0.8)


def test_renamed_rectangle_is_swapped_back_before_averaging():
    # (10, 40, -1) is the rectangle (40, 10, 89): the fused box is that rectangle, not a square
    boxes, scores, _ = _fuse([(50, 50, 40, 10, 89), (50, 50, 10, 40, -1)], [0.9, 0.6], num_views=2)
    assert len(boxes) == 1
    assert boxes[0, :4].tolist() == pytest.approx([50, 50, 40, 10], abs=1e-4)
    assert _angle_diff(boxes[0, 4].item(), 89.0) < 1e-4
    assert scores[0].item() == pytest.approx((0.9 + 0.6) / 2)


def test_score_weighted_means_hand_computed():
    a, b = (100, 100, 40, 20, 10), (104, 102, 44, 22, 20)
    boxes, scores, _ = _fuse([a, b], [0.8, 0.2], num_views=4)
    assert len(boxes) == 1
    # centre and sides: 0.8 a + 0.2 b; angle: half the direction of the weighted doubled vectors
    assert boxes[0, :4].tolist() == pytest.approx([100.8, 100.4, 40.8, 20.4], abs=1e-4)
    vec = 0.8 * np.exp(2j * math.radians(10)) + 0.2 * np.exp(2j * math.radians(20))
    assert boxes[0, 4].item() == pytest.approx(math.degrees(np.angle(vec)) / 2, abs=1e-4)
    # two boxes out of four views: sum / 4
    assert scores[0].item() == pytest.approx(0.25)


def test_classes_and_distant_boxes_stay_apart():
    boxes, scores, classes = _fuse(
        [(50, 50, 40, 10, 0), (50, 50, 40, 10, 0), (300, 50, 40, 10, 0)],
        [0.5, 0.9, 0.7],
        classes=[0, 1, 0],
    )
    assert len(boxes) == 3
    assert scores.tolist() == pytest.approx([0.9, 0.7, 0.5])  # by decreasing score
    assert classes.tolist() == [1, 0, 0]
    expected = [[50, 50, 40, 10, 0], [300, 50, 40, 10, 0], [50, 50, 40, 10, 0]]
    torch.testing.assert_close(
        boxes, torch.tensor(expected, dtype=torch.float32), atol=1e-4, rtol=0
    )


def test_empty_and_bad_arguments():
    boxes, scores, classes = weighted_box_fusion_rotated(
        torch.zeros(0, 5), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5
    )
    assert boxes.shape == (0, 5) and scores.shape == (0,) and classes.shape == (0,)
    with pytest.raises(ValueError, match="num_views"):
        _fuse([(0, 0, 1, 1, 0)], [1.0], num_views=0)
    with pytest.raises(ValueError, match="iou_threshold"):
        _fuse([(0, 0, 1, 1, 0)], [1.0], thr=1.5)


def _reference_wbf(boxes, scores, classes, thr, num_views):
    """Loops: greedy NMS leaders, each box to its most-overlapping same-class leader, members
    renamed to their leader's w side, weighted means (doubled angles)."""
    n = len(boxes)
    iou = pairwise_iou_rotated(torch.tensor(boxes), torch.tensor(boxes)).double().numpy()
    order = sorted(range(n), key=lambda i: -scores[i])
    leaders = []
    for i in order:
        if all(not (classes[j] == classes[i] and iou[i, j] > thr) for j in leaders):
            leaders.append(i)
    members = {j: [] for j in leaders}
    for i in range(n):
        same = [j for j in leaders if classes[j] == classes[i]]
        best = i if i in members else max(same, key=lambda j: iou[i, j])
        members[best].append(i)
    out = []
    for j in leaders:
        acc, tot = np.zeros(6), 0.0
        for i in members[j]:
            cx, cy, w, h, a = boxes[i]
            d = (a - boxes[j][4] + 90) % 180 - 90
            if abs(d) > 45:
                w, h, d = h, w, d - math.copysign(90, d)
            t = math.radians(2 * (boxes[j][4] + d))
            acc += scores[i] * np.array([cx, cy, w, h, math.cos(t), math.sin(t)])
            tot += scores[i]
        m = acc / tot
        ang = (math.degrees(math.atan2(m[5], m[4])) / 2 + 90) % 180 - 90
        score = tot / max(len(members[j]), num_views)
        out.append(([*m[:4], ang], score, classes[j]))
    out.sort(key=lambda r: -r[1])
    return out


@pytest.mark.parametrize("pairs_per_chunk", [None, 3])
def test_matches_loop_reference_on_random_clusters(pairs_per_chunk, monkeypatch):
    if pairs_per_chunk is not None:  # many small chunks of candidate pairs: the same result
        monkeypatch.setattr(wbf_module, "_PAIRS_PER_CHUNK", pairs_per_chunk)
    rng = np.random.default_rng(0)
    centres = rng.uniform(0, 300, size=(12, 2))
    rows, scores, classes = [], [], []
    for k, (x, y) in enumerate(centres):  # a cluster of jittered copies around each centre
        w, h, a = rng.uniform(20, 60), rng.uniform(8, 30), rng.uniform(-90, 90)
        for _ in range(rng.integers(1, 6)):
            jitter = rng.normal(0, [1.5, 1.5, 1.5, 1.5, 4])
            box = np.array([x, y, w, h, a]) + jitter
            if rng.random() < 0.3:  # the same rectangle under its other name
                box = np.array([box[0], box[1], box[3], box[2], box[4] - 90])
            rows.append(box.tolist())
            scores.append(float(rng.uniform(0.05, 1.0)))
            classes.append(int(k % 3))
    ref = _reference_wbf(rows, scores, classes, 0.4, num_views=3)
    boxes, fused_scores, fused_classes = weighted_box_fusion_rotated(
        torch.tensor(rows, dtype=torch.float64),
        torch.tensor(scores, dtype=torch.float64),
        torch.tensor(classes),
        0.4,
        num_views=3,
    )
    keep = batched_nms_rotated(
        torch.tensor(rows, dtype=torch.float64),
        torch.tensor(scores, dtype=torch.float64),
        torch.tensor(classes),
        0.4,
    )
    assert len(boxes) == len(ref) == len(keep) < len(rows)  # some clusters have several boxes
    for (rbox, rscore, rcls), box, score, cls in zip(ref, boxes, fused_scores, fused_classes):
        assert score.item() == pytest.approx(rscore, abs=1e-9)
        assert cls.item() == rcls
        assert box[:4].tolist() == pytest.approx(rbox[:4], abs=1e-6)
        assert _angle_diff(box[4].item(), rbox[4]) < 1e-6

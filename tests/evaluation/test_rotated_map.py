"""rotated_voc_map against a shapely reference of the DOTA kit's algorithm, and hand cases."""

from pathlib import Path

import numpy as np
import pytest
from script_loading import load_script

from rotated_det.evaluation.rotated_map import COCO_IOU_THRESHOLDS, rotated_voc_map, voc_ap


def _load_reference():
    path = Path(__file__).with_name("dota_reference.py")
    return load_script(path)


ref = _load_reference()


def _run(dets, gts, num_classes, **kwargs):
    """dets: list of (img, cls, score, box5); gts: list of (img, cls, box5, difficult)."""
    d = np.array([[i, k, s] for i, k, s, _ in dets], dtype=np.float64).reshape(-1, 3)
    db = np.array([b for *_, b in dets], dtype=np.float64).reshape(-1, 5)
    g = np.array([[i, k, diff] for i, k, _, diff in gts], dtype=np.int64).reshape(-1, 3)
    gb = np.array([b for _, _, b, _ in gts], dtype=np.float64).reshape(-1, 5)
    return rotated_voc_map(
        d[:, 0].astype(np.int64), db, d[:, 2], d[:, 1].astype(np.int64),
        g[:, 0], gb, g[:, 1], g[:, 2].astype(bool),
        num_classes=num_classes, **kwargs,
    )  # fmt: skip


def _random_case(seed, num_images=6, num_classes=3):
    rng = np.random.default_rng(seed)
    gts, dets = [], []
    for img in range(num_images):
        n = rng.integers(0, 12)
        centers = rng.uniform(0, 200, size=(n, 2))
        sizes = rng.uniform(5, 40, size=(n, 2))
        angles = rng.uniform(-180, 180, size=n)
        for k in range(n):
            box = [*centers[k], *sizes[k], angles[k]]
            cls = int(rng.integers(0, num_classes))
            gts.append((img, cls, box, bool(rng.random() < 0.15)))
            # 0-3 noisy detections of each GT (duplicates included), sometimes with a wrong class.
            for _ in range(rng.integers(0, 4)):
                jit = box + rng.normal(0, 1, 5) * [3, 3, 3, 3, 10]
                jit[2:4] = np.abs(jit[2:4]) + 1
                dcls = cls if rng.random() < 0.85 else int(rng.integers(0, num_classes))
                dets.append((img, dcls, float(np.round(rng.random(), 2)), list(jit)))
        for _ in range(rng.integers(0, 6)):  # background detections
            box = [*rng.uniform(0, 200, 2), *rng.uniform(5, 40, 2), rng.uniform(-90, 90)]
            dets.append((img, int(rng.integers(0, num_classes)), float(rng.random()), box))
    return dets, gts


@pytest.mark.parametrize("use_07", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_against_reference(seed, use_07):
    dets, gts = _random_case(seed)
    thresholds = (0.5, 0.75, 0.3)
    res = _run(dets, gts, 3, iou_thresholds=thresholds, use_07_metric=use_07)
    for ti, t in enumerate(thresholds):
        expected = ref.dataset_aps_ref(dets, gts, 3, ovthresh=t, use_07_metric=use_07)
        np.testing.assert_allclose(res.ap[:, ti], expected, atol=1e-6, rtol=0, equal_nan=True)
        assert res.mean_ap(t) == pytest.approx(np.nanmean(expected), abs=1e-6)
    # The curve kept for plotting is the reference's curve at the first threshold.
    for c in range(3):
        cd = [(i, s, ref.rbox_to_poly_ref(b)) for i, k, s, b in dets if k == c]
        cg = {}
        for i, k, b, diff in gts:
            if k == c:
                cg.setdefault(i, []).append((ref.rbox_to_poly_ref(b), diff))
        _, rec, prec = ref.class_ap_ref(cd, cg, 0.5, use_07)
        np.testing.assert_allclose(res.curves[c][0], rec, atol=1e-9, equal_nan=True)
        np.testing.assert_allclose(res.curves[c][1], prec, atol=1e-9)


BOX = [50.0, 50.0, 20.0, 10.0, 30.0]
FAR = [150.0, 150.0, 20.0, 10.0, 30.0]


def test_voc_ap_hand_values():
    rec = np.array([0.5, 0.5, 1.0])
    prec = np.array([1.0, 0.5, 2 / 3])
    # Envelope: 1.0 on (0, 0.5], 2/3 on (0.5, 1].
    assert voc_ap(rec, prec) == pytest.approx(0.5 + 0.5 * 2 / 3)
    # 11-point: t = 0..0.5 (6 points) -> 1.0, t = 0.6..1.0 (5 points) -> 2/3.
    assert voc_ap(rec, prec, use_07_metric=True) == pytest.approx((6 + 5 * 2 / 3) / 11)
    # Recall exactly 3/10 does not reach the kit's level np.arange(0, 1.1, 0.1)[3]
    # (0.30000000000000004): levels 0, 0.1, 0.2 only.
    assert voc_ap(np.array([0.3]), np.array([1.0]), use_07_metric=True) == pytest.approx(3 / 11)
    assert voc_ap(np.zeros(0), np.zeros(0)) == 0.0
    assert voc_ap(np.zeros(0), np.zeros(0), use_07_metric=True) == 0.0


@pytest.mark.parametrize("use_07", [False, True])
def test_perfect_and_shifted(use_07):
    dets, gts = _random_case(5)
    gts = [(i, k, b, False) for i, k, b, _ in gts]
    perfect = [(i, k, 1.0, b) for i, k, b, _ in gts]
    res = _run(perfect, gts, 3, iou_thresholds=COCO_IOU_THRESHOLDS, use_07_metric=use_07)
    assert res.mean_ap_over_thresholds() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(res.recall, 1.0)
    shifted = [(i, k, 1.0, [b[0] + 500, b[1] + 500, *b[2:]]) for i, k, b, _ in gts]
    res = _run(shifted, gts, 3, use_07_metric=use_07)
    assert res.mean_ap() == 0.0


def test_no_detections():
    gts = [(0, 0, BOX, False), (1, 1, FAR, False)]
    res = _run([], gts, 2)
    np.testing.assert_array_equal(res.ap[:, 0], [0.0, 0.0])
    np.testing.assert_array_equal(res.num_dets, [0, 0])
    assert res.mean_ap() == 0.0


def test_no_gt_for_a_class():
    # Class 1 has detections but no GT anywhere: its AP is undefined (NaN) and not averaged.
    gts = [(0, 0, BOX, False)]
    dets = [(0, 0, 0.9, BOX), (0, 1, 0.8, BOX), (1, 1, 0.7, FAR)]
    res = _run(dets, gts, 3)
    assert res.ap[0, 0] == 1.0
    assert np.isnan(res.ap[1, 0]) and np.isnan(res.ap[2, 0])
    assert res.mean_ap() == 1.0
    np.testing.assert_array_equal(res.num_gts, [1, 0, 0])
    # Class 0 detections on an image without class-0 GT are false positives.
    res = _run(dets + [(1, 0, 0.95, FAR)], gts, 2)
    assert res.ap[0, 0] == pytest.approx(0.5)  # FP then TP: envelope 0.5 over recall (0, 1]
    np.testing.assert_allclose(
        res.ap[:, 0], ref.dataset_aps_ref(dets + [(1, 0, 0.95, FAR)], gts, 2), equal_nan=True
    )


def test_all_difficult_gt():
    gts = [(0, 0, BOX, True), (0, 1, FAR, False)]
    dets = [(0, 0, 0.9, BOX), (0, 1, 0.99, BOX), (0, 1, 0.5, FAR)]
    res = _run(dets, gts, 2)
    assert np.isnan(res.ap[0, 0])
    assert res.num_gts[0] == 0
    # Class 1: an FP (0.99 on an image region without class-1 GT) then a TP.
    assert res.ap[1, 0] == pytest.approx(0.5)
    assert res.mean_ap() == pytest.approx(0.5)


def test_detection_on_difficult_gt_is_ignored():
    gts = [(0, 0, BOX, True), (0, 0, FAR, False)]
    # The highest-scoring detection hits the difficult GT: neither TP nor FP.
    dets = [(0, 0, 0.9, BOX), (0, 0, 0.8, FAR)]
    for use_07 in (False, True):
        res = _run(dets, gts, 1, use_07_metric=use_07)
        assert res.ap[0, 0] == pytest.approx(1.0)
        np.testing.assert_allclose(res.ap[:, 0], ref.dataset_aps_ref(dets, gts, 1, 0.5, use_07))


def test_duplicate_detections():
    gts = [(0, 0, BOX, False), (0, 0, FAR, False)]
    dup = [BOX[0] + 0.5, *BOX[1:]]
    dets = [(0, 0, 0.9, BOX), (0, 0, 0.8, dup), (0, 0, 0.7, FAR)]
    res = _run(dets, gts, 1)
    # TP, FP (duplicate), TP: precision 1, 1/2, 2/3; recall 1/2, 1/2, 1.
    assert res.ap[0, 0] == pytest.approx(0.5 + 0.5 * 2 / 3)
    np.testing.assert_allclose(res.curves[0][1], [1.0, 0.5, 2 / 3])
    np.testing.assert_allclose(res.ap[:, 0], ref.dataset_aps_ref(dets, gts, 1))


def test_tied_scores_keep_input_order():
    gts = [(0, 0, BOX, False)]
    miss, hit = (0, 0, 0.5, FAR), (0, 0, 0.5, BOX)
    # Stable order: the miss first -> precision 0 then 1/2 at recall 1.
    res = _run([miss, hit], gts, 1)
    assert res.ap[0, 0] == pytest.approx(0.5)
    res = _run([hit, miss], gts, 1)
    assert res.ap[0, 0] == pytest.approx(1.0)
    # Two tied detections of the same GT: the first in input order is the TP.
    other = (0, 0, 0.5, [BOX[0] + 3, *BOX[1:]])
    res = _run([other, hit], gts, 1, iou_thresholds=(0.5,))
    np.testing.assert_allclose(res.curves[0][1], [1.0, 0.5])


def test_threshold_is_strict_and_ids_arbitrary():
    # Two identical-size boxes shifted by a third of the width: IoU exactly 0.5.
    a = [0.0, 0.0, 30.0, 10.0, 0.0]
    b = [10.0, 0.0, 30.0, 10.0, 0.0]
    res = rotated_voc_map([7], [b], [1.0], [0], [7], [a], [0], iou_thresholds=(0.5, 0.49))
    assert res.ap[0, 0] == 0.0  # IoU 0.5 is not > 0.5
    assert res.ap[0, 1] == 1.0


def test_bad_input_messages():
    with pytest.raises(ValueError, match="det_labels must lie in"):
        rotated_voc_map([0], [BOX], [1.0], [3], [0], [BOX], [0], num_classes=2)
    with pytest.raises(ValueError, match="det_boxes has 2 rows"):
        rotated_voc_map([0], [BOX, BOX], [1.0], [0], [0], [BOX], [0])
    nan_box = [float("nan"), 0.0, 1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="rotated_voc_map: gt_boxes contains NaN or inf"):
        rotated_voc_map([0], [BOX], [1.0], [0], [0], [nan_box], [0])

"""tide_errors: each error type from a hand-built case with hand-worked dAP, the fix rules,
agreement with the evaluator's AP and with a loop reference on random scenes, table and chart."""

import cv2
import numpy as np
import pytest
from script_loading import load_script

from rotated_det.evaluation import (
    ERROR_TYPES,
    as_detection_arrays,
    format_error_table,
    plot_errors,
    rotated_voc_map,
    tide_errors,
)

ref = load_script("tests/evaluation/analysis_reference.py")
PLANE, SHIP = 0, 1
BOX = [100.0, 100.0, 40.0, 20.0, 0.0]  # every object; a detection shifted by 20 px has IoU 1/3


def _shift(dx, dy=0.0):
    return [BOX[0] + dx, BOX[1] + dy, *BOX[2:]]


def _arrays(dets, gts, num_classes=2):
    """dets: (image, box, score, label); gts: (image, box, label, difficult)."""
    return as_detection_arrays(
        [d[0] for d in dets],
        np.array([d[1] for d in dets], np.float64).reshape(-1, 5),
        [d[2] for d in dets],
        [d[3] for d in dets],
        [g[0] for g in gts],
        np.array([g[1] for g in gts], np.float64).reshape(-1, 5),
        [g[2] for g in gts],
        [g[3] for g in gts],
        num_classes=num_classes,
    )


def _each_type_scene():
    """One image per case, all detections of class plane:
    0: plane A found (0.90) and a duplicate on it (0.50, IoU 0.905);
    1: plane B, detection shifted by 20 px (IoU 1/3): loc (0.80);
    2: ship C detected exactly as plane: cls (0.70);
    3: ship D, plane detection shifted by 20 px: both (0.93);
    4: plane E and a plane detection far away: bkg (0.95); E is a miss;
    5: a difficult plane detected exactly: ignored (0.85);
    6: plane G found (0.40).
    """
    gts = [
        (0, BOX, PLANE, False),
        (1, BOX, PLANE, False),
        (2, BOX, SHIP, False),
        (3, BOX, SHIP, False),
        (4, BOX, PLANE, False),
        (5, BOX, PLANE, True),
        (6, BOX, PLANE, False),
    ]
    dets = [
        (0, BOX, 0.90, PLANE),
        (0, _shift(2), 0.50, PLANE),
        (1, _shift(20), 0.80, PLANE),
        (2, BOX, 0.70, PLANE),
        (3, _shift(20), 0.93, PLANE),
        (4, _shift(300, 300), 0.95, PLANE),
        (5, BOX, 0.85, PLANE),
        (6, BOX, 0.40, PLANE),
    ]
    return _arrays(dets, gts)


def test_each_error_type_from_a_hand_built_case():
    r = tide_errors(*_each_type_scene()[:8], num_classes=2)
    tp, ign = -1, -2
    expected = [tp, "dupe", "loc", "cls", "both", "bkg", ign, tp]
    assert [ERROR_TYPES[e] if e >= 0 else e for e in r.det_error.tolist()] == expected
    np.testing.assert_array_equal(r.gt_missed, [0, 0, 0, 1, 1, 0, 0])  # D (ship) and E (plane)
    counts = dict(zip(ERROR_TYPES, r.counts[PLANE].tolist()))
    assert counts == {"cls": 1, "loc": 1, "both": 1, "dupe": 1, "bkg": 1, "miss": 1}
    assert dict(zip(ERROR_TYPES, r.counts[SHIP].tolist()))["miss"] == 1
    assert r.counts[SHIP].sum() == 1
    np.testing.assert_array_equal(r.num_gts, [4, 2])
    np.testing.assert_array_equal(r.num_tp, [2, 0])


def test_hand_worked_ap_and_dap():
    """Plane detections by score: bkg, both, TP, loc, cls, dupe, TP; 4 plane GT; 2 ship GT, no
    ship detections. Worked by hand (all-point AP):
    AP_plane = 1/4 * 1/3 + 1/4 * 2/7 = 13/84; AP_ship = 0.
    fix bkg or both (drop a FP ahead of both TPs): 1/4 * 1/2 + 1/4 * 2/6 = 5/24 -> +3/56.
    fix dupe (drop the FP between the TPs): 1/4 * 1/3 + 1/4 * 1/3 = 1/6 -> +1/84.
    fix cls: plane as for dupe (+1/84); ship gets a TP at 0.70 with 2 GT: AP 1/2 -> +1/2.
    fix loc (TP at 0.80): precisions 1/3, 2/4, 3/7 at recalls 1/4, 2/4, 3/4; envelope 1/2, 1/2,
    3/7: 5/14 -> +17/84.
    fix miss: plane npos 3: 1/3 * 1/3 + 1/3 * 2/7 = 13/63 -> +13/252; ship npos 1, AP stays 0.
    """
    r = tide_errors(*_each_type_scene()[:8], num_classes=2)
    np.testing.assert_allclose(r.ap, [13 / 84, 0.0], atol=1e-12)
    col = {t: i for i, t in enumerate(ERROR_TYPES)}
    plane = {t: r.delta_ap[PLANE, col[t]] for t in ERROR_TYPES}
    ship = {t: r.delta_ap[SHIP, col[t]] for t in ERROR_TYPES}
    expected_plane = {
        "bkg": 3 / 56,
        "both": 3 / 56,
        "dupe": 1 / 84,
        "cls": 1 / 84,
        "loc": 17 / 84,
        "miss": 13 / 252,
    }
    for t, v in expected_plane.items():
        assert plane[t] == pytest.approx(v, abs=1e-12), t
    assert ship == pytest.approx({t: 0.5 if t == "cls" else 0.0 for t in ERROR_TYPES}, abs=1e-12)
    np.testing.assert_allclose(r.delta_map, (r.delta_ap[0] + r.delta_ap[1]) / 2)
    assert r.mean_ap == pytest.approx(13 / 168)


def test_only_the_best_error_on_a_free_gt_is_fixed():
    # Two loc errors on one plane (0.8 and 0.7) and a loc error on a plane already found.
    gts = [(0, BOX, PLANE, False), (1, BOX, PLANE, False)]
    dets = [
        (0, _shift(20), 0.8, PLANE),
        (0, _shift(-20), 0.7, PLANE),
        (1, BOX, 0.9, PLANE),
        (1, _shift(0, 12), 0.95, PLANE),  # IoU 8/32 = 0.25 with the found plane
    ]
    r = tide_errors(*_arrays(dets, gts, 1)[:8], num_classes=1)
    assert [ERROR_TYPES[e] if e >= 0 else e for e in r.det_error.tolist()] == [
        "loc",
        "loc",
        -1,
        "loc",
    ]
    # Original: FP(0.95), TP(0.9), FP, FP -> AP = 1/2 * 1/2. Fixed: the 0.95 one (its GT is
    # taken) and the 0.7 one (not the best on its GT) go, 0.8 becomes a TP: AP 1.
    assert r.ap[0] == pytest.approx(0.25)
    assert r.delta_ap[0, ERROR_TYPES.index("loc")] == pytest.approx(0.75)
    assert not r.gt_missed.any()  # the loc target is not a miss


def test_thresholds_follow_the_definitions():
    gts = [(0, BOX, PLANE, False)]
    # Shifted by 40 * 0.82 px: IoU 0.18/1.82 ~ 0.099 < 0.1 -> bkg for plane; loc above 0.1.
    far = [(0, _shift(40 * 0.82), 0.9, PLANE)]
    near = [(0, _shift(40 * 0.8), 0.9, PLANE)]  # IoU 0.2 / 1.8 = 0.111
    assert ERROR_TYPES[tide_errors(*_arrays(far, gts, 1)[:8], num_classes=1).det_error[0]] == "bkg"
    assert ERROR_TYPES[tide_errors(*_arrays(near, gts, 1)[:8], num_classes=1).det_error[0]] == "loc"
    # A ship detection at IoU 0.111 with the plane: both; with bg_iou 0.2: bkg.
    ship_near = [(0, _shift(40 * 0.8), 0.9, SHIP)]
    a = _arrays(ship_near, gts)
    assert ERROR_TYPES[tide_errors(*a[:8], num_classes=2).det_error[0]] == "both"
    assert ERROR_TYPES[tide_errors(*a[:8], num_classes=2, bg_iou=0.2).det_error[0]] == "bkg"
    with pytest.raises(ValueError, match="bg_iou <= fg_iou"):
        tide_errors(*a[:8], num_classes=2, bg_iou=0.6)


def _random_scene(seed, num_images=8, ng=150, nd=400, k=4):
    rng = np.random.default_rng(seed)
    gt_img = rng.integers(0, num_images, ng)
    gt_box = np.c_[
        rng.uniform(0, 300, (ng, 2)), rng.uniform(10, 60, (ng, 2)), rng.uniform(-90, 90, ng)
    ]
    src = rng.integers(0, ng, nd)
    det_box = gt_box[src] + rng.normal(0, 1, (nd, 5)) * [6, 6, 5, 5, 15]
    bg = rng.random(nd) < 0.25
    det_box[bg, :2] = rng.uniform(0, 300, (int(bg.sum()), 2))
    det_img = np.where(bg, rng.integers(0, num_images, nd), gt_img[src])
    labels = rng.integers(0, k, ng)
    det_labels = np.where(rng.random(nd) < 0.75, labels[src], rng.integers(0, k, nd))
    scores = np.round(rng.random(nd), 2)  # ties on purpose
    return as_detection_arrays(
        det_img,
        det_box,
        scores,
        det_labels,
        gt_img,
        gt_box,
        labels,
        rng.random(ng) < 0.08,
        num_classes=k,
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_loop_reference_and_the_evaluator(seed):
    a = _random_scene(seed)
    r = tide_errors(*a[:8], num_classes=a.num_classes)
    status, missed, ap, delta = ref.tide_reference(a)
    names = {-1: "tp", -2: "ignored", **dict(enumerate(ERROR_TYPES))}
    assert [names[e] for e in r.det_error.tolist()] == status
    assert set(np.flatnonzero(r.gt_missed).tolist()) == missed
    np.testing.assert_allclose(r.ap, ap, atol=1e-12)
    np.testing.assert_allclose(r.delta_ap, delta, atol=1e-12)
    # The AP it starts from is the DOTA evaluator's.
    voc = rotated_voc_map(*a[:8], num_classes=a.num_classes)
    np.testing.assert_allclose(r.ap, voc.class_ap(0.5), atol=1e-12)
    # Fixing never lowers an AP, and each type occurs in these scenes.
    assert (r.delta_ap >= -1e-12).all()
    assert (r.counts.sum(axis=0) > 0).all(), dict(zip(ERROR_TYPES, r.counts.sum(axis=0)))


def test_table_and_chart(tmp_path):
    r = tide_errors(*_each_type_scene()[:8], num_classes=2)
    table = format_error_table(r, ["plane", "ship"])
    lines = table.splitlines()
    plane_dap = next(ln for ln in lines if ln.startswith("plane"))
    cells = [c.strip() for c in plane_dap.split("|")]
    assert cells[:3] == ["plane", "4", f"{100 * 13 / 84:.2f}"]
    assert cells[3 + ERROR_TYPES.index("loc")] == f"{100 * 17 / 84:.2f}"
    counts_all = next(ln for ln in lines if ln.startswith("all"))
    assert [c.strip() for c in counts_all.split("|")][1:] == [
        "6",
        "2",
        "1",
        "1",
        "1",
        "1",
        "1",
        "2",
    ]
    path = plot_errors(str(tmp_path / "errors.png"), r, ["plane", "ship"])
    img = cv2.imread(path)
    assert img is not None and img.shape[0] > 300

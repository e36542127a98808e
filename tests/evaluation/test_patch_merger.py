"""PatchMerger: patch -> image mapping, class-wise NMS, incremental release, and the DOTA round
trip on the real P0706 (split into patches, patch GT as predictions, merged, scored)."""

import os

import numpy as np
import pytest
import torch

from rotated_det.data.dota_split import assign_objects_to_windows, get_sliding_windows
from rotated_det.evaluation.patch_merger import PatchMerger, patch_boxes_to_image
from rotated_det.evaluation.rotated_map import COCO_IOU_THRESHOLDS, rotated_voc_map
from rotated_det.layers import batched_nms_rotated
from rotated_det.structures import poly_to_rbox
from rotated_det.structures.dota_format import parse_dota_label_file
from rotated_det.structures.dota_patch_name import format_patch_name, parse_patch_name
from sample_data import dota_samples_dir


def test_patch_boxes_to_image_hand_values():
    boxes = np.array([[10.0, 20.0, 8.0, 4.0, 30.0]])
    out = patch_boxes_to_image(boxes, 0.5, 100, 200)
    np.testing.assert_allclose(out, [[220.0, 440.0, 16.0, 8.0, 30.0]])
    out = patch_boxes_to_image(torch.tensor(boxes), 1.0, 0, 824)
    np.testing.assert_allclose(out, [[10.0, 844.0, 8.0, 4.0, 30.0]])


def _random_patch_dets(rng, n):
    boxes = np.c_[rng.uniform(0, 300, (n, 2)), rng.uniform(10, 60, (n, 2)), rng.uniform(-90, 90, n)]
    return boxes.astype(np.float32), rng.random(n).astype(np.float32), rng.integers(0, 3, n)


def test_release_on_last_patch_equals_one_shot_nms():
    rng = np.random.default_rng(0)
    names = [format_patch_name("imgA", 1.0, x, y) for x in (0, 200) for y in (0, 200)]
    names += [format_patch_name("imgB", 0.5, 0, 0)]
    dets = {n: _random_patch_dets(rng, 40) for n in names}
    merger = PatchMerger(0.3, expected_patches={"imgA": 4, "imgB": 1})
    released = {}
    for k, n in enumerate(names):
        merger.add(n + ".png", *dets[n])
        released.update(merger.pop_finished())
        if k < 3:
            assert released == {} and merger.num_buffered_detections == 40 * (k + 1)
    assert set(released) == {"imgA", "imgB"}
    assert merger.num_buffered_detections == 0
    assert merger.finish() == {}
    # Reference: map every patch by hand, then one batched NMS over the whole image.
    for img, pnames in (("imgA", names[:4]), ("imgB", names[4:])):
        boxes, scores, classes = [], [], []
        for n in pnames:
            b, s, c = dets[n]
            _, rate, x, y = parse_patch_name(n)
            b = b.copy()
            b[:, 0] += x
            b[:, 1] += y
            b[:, :4] /= rate
            boxes.append(b), scores.append(s), classes.append(c)
        b, s, c = (torch.from_numpy(np.concatenate(v)) for v in (boxes, scores, classes))
        keep = batched_nms_rotated(b, s, c, 0.3).numpy()
        got = released[img]
        np.testing.assert_allclose(got.boxes, b.numpy()[keep], atol=1e-4)
        np.testing.assert_array_equal(got.classes, c.numpy()[keep])
        assert np.all(np.diff(got.scores) <= 0)


def test_compaction_bounds_the_buffer():
    # 20 overlapping patches all see the same 60 objects (with different scores): without
    # compaction the buffer would hold 1200 detections.
    rng = np.random.default_rng(1)
    base, _, classes = _random_patch_dets(rng, 60)
    merger = PatchMerger(0.5, compact_size=100)
    everything = []
    for x in range(0, 2000, 100):
        scores = rng.random(60).astype(np.float32)
        local = base.copy()
        local[:, 0] -= x
        merger.add(format_patch_name("big", 1.0, x, 0), local, scores, classes)
        everything.append(scores)
        assert merger.num_buffered_detections <= 100 + 60
    assert merger.num_compactions > 0
    out = merger.finish()["big"]
    b = torch.from_numpy(np.tile(base, (20, 1)))
    s = torch.from_numpy(np.concatenate(everything))
    keep = batched_nms_rotated(b, s, torch.from_numpy(np.tile(classes, 20)), 0.5)
    assert len(out) == len(keep)
    np.testing.assert_allclose(np.sort(out.scores), np.sort(s.numpy()[keep.numpy()]))


def test_patch_arriving_after_release_is_an_error():
    merger = PatchMerger(expected_patches={"a": 1})
    merger.add("a__1.0__0___0", np.zeros((0, 5)), np.zeros(0), np.zeros(0))
    with pytest.raises(RuntimeError, match="arrived after image 'a'"):
        merger.add("a__1.0__0___512", np.zeros((0, 5)), np.zeros(0), np.zeros(0))
    with pytest.raises(ValueError, match="not a DOTA patch name"):
        merger.add("P0706", np.zeros((0, 5)), np.zeros(0), np.zeros(0))


def split_gt_into_patches(polys, width, height, rates=(1.0, 0.5), size=512, gap=128):
    """Patch GT like the DOTA splitter: per rate, sliding windows over the resized image; only
    objects wholly inside a window are kept (in patch coordinates).

    Returns: list of (patch_name, object indices, patch polygons [n, 8]) and the set of objects
    wholly inside some window."""
    patches, inside = [], set()
    for rate in rates:
        scaled = polys * rate
        wins = get_sliding_windows(
            int(np.ceil(width * rate)), int(np.ceil(height * rate)), (size,), (gap,)
        )
        wo = assign_objects_to_windows(scaled, wins, iof_thr=0.7)
        for w, (x0, y0, _, _) in enumerate(wins.tolist()):
            sel = (wo.win_idx == w) & ~wo.clipped
            obj = wo.obj_idx[sel]
            local = wo.polys[sel] - np.tile([x0, y0], 4)
            patches.append((format_patch_name("P0706", rate, x0, y0), obj, local))
            inside.update(obj.tolist())
    return patches, inside


@pytest.mark.parametrize("rates", [(1.0,), (1.0, 0.5)])
def test_p0706_patch_gt_merges_back_to_map_1(rates):
    labels = parse_dota_label_file(os.path.join(dota_samples_dir(), "labelTxt", "P0706.txt"))
    class_names = sorted(set(labels.class_names))
    classes = np.array([class_names.index(c) for c in labels.class_names])
    patches, inside = split_gt_into_patches(labels.polys, 1111, 1182, rates=rates)
    assert len(patches) >= 9
    if rates == (1.0,):
        # A few large objects (harbours) fit in no 512 window: they are left out of the score.
        assert 0 < len(inside) < len(labels)
    merger = PatchMerger(0.1, expected_patches={"P0706": len(patches)})
    raw = 0
    for name, obj, local in patches:
        boxes = poly_to_rbox(local)
        merger.add(name + ".png", boxes, np.ones(len(obj)), classes[obj])
        raw += len(obj)
    merged = merger.pop_finished()["P0706"]
    keep = np.array(sorted(inside))
    # Every object seen by several patches/rates comes out once.
    assert len(merged) == len(keep) < raw
    gt_boxes = poly_to_rbox(labels.polys)[keep]
    res = rotated_voc_map(
        np.zeros(len(merged)), merged.boxes, merged.scores, merged.classes,
        np.zeros(len(keep)), gt_boxes, classes[keep], labels.difficult[keep].astype(bool),
        num_classes=len(class_names), iou_thresholds=COCO_IOU_THRESHOLDS,
    )  # fmt: skip
    assert res.mean_ap(0.5) == pytest.approx(1.0, abs=1e-12)
    assert res.mean_ap_over_thresholds() == pytest.approx(1.0, abs=1e-12)
    # Against all of the image's objects, those cut by every window are misses.
    res_all = rotated_voc_map(
        np.zeros(len(merged)), merged.boxes, merged.scores, merged.classes,
        np.zeros(len(labels)), poly_to_rbox(labels.polys), classes,
        labels.difficult.astype(bool), num_classes=len(class_names),
    )  # fmt: skip
    assert (res_all.mean_ap() < 1.0) == (len(inside) < len(labels))


def test_score_threshold_and_max_dets():
    boxes = np.array([[10.0 * k, 0.0, 5.0, 5.0, 0.0] for k in range(6)], np.float32)
    scores = np.array([0.9, 0.05, 0.5, 0.7, 0.2, 0.6], np.float32)
    merger = PatchMerger(0.1, score_threshold=0.1, max_dets_per_image=3)
    merger.add("img__0.5__4___6.jpg", boxes, scores, np.zeros(6, np.int64))
    out = merger.finish()["img"]
    np.testing.assert_allclose(out.scores, [0.9, 0.7, 0.6])
    # Rate 0.5, offset (4, 6): (cx + 4) / 0.5, (cy + 6) / 0.5, sides doubled.
    np.testing.assert_allclose(out.boxes[0], [8.0, 12.0, 10.0, 10.0, 0.0])
    np.testing.assert_allclose(out.boxes[1], [68.0, 12.0, 10.0, 10.0, 0.0])

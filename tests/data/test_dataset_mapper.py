import logging

import cv2
import numpy as np
import pytest
import torch

import rotated_det.data.transforms as T
from rotated_det.data import DatasetMapper, load_dota_instances
from rotated_det.structures import BoxMode, Instances, RotatedBoxes, rbox_to_poly


@pytest.fixture(scope="module")
def p0706(dota_samples):
    dicts = load_dota_instances(str(dota_samples / "images"), str(dota_samples / "labelTxt"))
    return {d["image_id"]: d for d in dicts}["P0706"]


def test_no_augmentation_keeps_boxes(p0706):
    out = DatasetMapper(is_train=True)(p0706)
    img = out["image"]
    assert img.dtype == torch.uint8 and tuple(img.shape) == (3, 1182, 1111)
    ref = cv2.imread(p0706["file_name"])
    np.testing.assert_array_equal(img.permute(1, 2, 0).numpy(), ref)  # BGR by default
    inst = out["instances"]
    assert isinstance(inst, Instances) and isinstance(inst.gt_boxes, RotatedBoxes)
    assert inst.image_size == (1182, 1111) and inst.gt_classes.dtype == torch.int64
    boxes = np.array([a["bbox"] for a in p0706["annotations"]])
    assert len(inst) == len(boxes) == 536
    got = inst.gt_boxes.tensor.numpy()
    corners = np.asarray(rbox_to_poly(boxes)).reshape(-1, 4, 2)
    leaves = (
        (corners.min(1) < -1).any(1)
        | (corners[:, :, 0].max(1) > 1112)
        | (corners[:, :, 1].max(1) > 1183)
    )
    # boxes inside the image are unchanged; the few whose rectangle pokes out are clipped
    np.testing.assert_allclose(got[~leaves], boxes[~leaves], atol=1e-3)
    assert 0 < leaves.sum() < 10 and (got[leaves, 2] <= boxes[leaves, 2] + 1e-3).all()
    assert (out["height"], out["width"]) == (1182, 1111)
    assert "annotations" not in out and "annotations" in p0706  # input not modified


def test_rgb_and_eval_mode(p0706):
    out = DatasetMapper(is_train=False, image_format="RGB")(p0706)
    ref = cv2.imread(p0706["file_name"])[:, :, ::-1]
    np.testing.assert_array_equal(out["image"].permute(1, 2, 0).numpy(), ref)
    assert "instances" not in out and "annotations" not in out


def test_augmented_boxes_follow_the_image(p0706):
    np.random.seed(0)
    augs = [
        T.RandomRotation((20, 20), expand=False),
        T.RandomFlip(1.0),
        T.ResizeShortestEdge((600, 600)),
    ]
    mapper = DatasetMapper(is_train=True, augmentations=augs)
    out = mapper(p0706)
    h, w = out["image"].shape[1:]
    assert min(h, w) == 600 and (out["height"], out["width"]) == (1182, 1111)
    inst = out["instances"]
    # rotating the 1111x1182 image by 20 degrees without expanding cuts its corners: boxes there
    # are clipped or dropped, and counted
    s = mapper.stats
    dropped = s["outside"] + s["moved_out"] + s["degenerate"]
    assert s["moved_out"] + s["clipped"] > 0 and len(inst) + dropped == 536
    b = inst.gt_boxes.tensor.numpy()
    assert (b[:, 4] >= -180).all() and (b[:, 4] < 180).all()
    # every remaining box centre lies inside the (new) image
    assert (b[:, 0] >= 0).all() and (b[:, 0] <= w).all() and (b[:, 1] >= 0).all()


def _one_box_dict(tmp_path, boxes, size=(100, 120)):
    p = tmp_path / "x.png"
    cv2.imwrite(str(p), np.zeros((*size, 3), np.uint8))
    annos = [
        {"bbox": list(b), "bbox_mode": BoxMode.XYWHA_ABS, "category_id": i, "difficult": i % 2}
        for i, b in enumerate(boxes)
    ]
    return {
        "file_name": str(p),
        "height": size[0],
        "width": size[1],
        "image_id": "x",
        "annotations": annos,
    }


def test_degenerate_and_outside_boxes_are_dropped_with_counts(tmp_path, caplog):
    d = _one_box_dict(
        tmp_path,
        [
            [50, 50, 20, 10, 0],
            [30, 30, 0.5, 10, 0],
            [200, 50, 20, 10, 0],
            [115, 50, 20, 10, 0],
            [60, 60, 12, 6, 45],
        ],
    )
    mapper = DatasetMapper(is_train=True, log_period=1, with_difficult=True)
    with caplog.at_level(logging.INFO):
        out = mapper(d)
    inst = out["instances"]
    assert inst.gt_classes.tolist() == [0, 3, 4]
    assert inst.gt_difficult.tolist() == [0, 1, 0]
    # box 3 is 25% outside (x from 105 to 125 in a 120 px image): clipped to 15 px
    np.testing.assert_allclose(inst.gt_boxes.tensor[1].numpy()[:4], [112.5, 50, 15, 10], atol=1e-4)
    assert mapper.stats == {
        "images": 1,
        "boxes": 5,
        "degenerate": 1,
        "outside": 1,
        "moved_out": 0,
        "clipped": 1,
        "difficult": 0,
    }
    assert "1 degenerate (side < 1.0 px)" in caplog.text
    # 2 of 5 boxes dropped is above the default max_drop_fraction (5%): a warning
    assert [r.levelno for r in caplog.records if "after 1 images" in r.getMessage()] == [
        logging.WARNING
    ]
    m2 = DatasetMapper(is_train=True, filter_difficult=True, min_visible_fraction=0.8)
    assert m2(d)["instances"].gt_classes.tolist() == [0, 4]
    assert m2.stats["difficult"] == 2


def test_missing_image_names_the_path(tmp_path):
    d = {"file_name": str(tmp_path / "gone.png"), "height": 1, "width": 1, "image_id": "g"}
    with pytest.raises(OSError, match="gone.png"):
        DatasetMapper(is_train=False)(d)
    d = _one_box_dict(tmp_path, [])
    d["height"] = 99
    with pytest.raises(ValueError, match="x.png"):
        DatasetMapper(is_train=False)(d)


def test_angle_version_normalisation(tmp_path):
    d = _one_box_dict(tmp_path, [[50, 50, 10, 30, 10]])
    out = DatasetMapper(is_train=True, angle_version="le90")(d)
    np.testing.assert_allclose(
        out["instances"].gt_boxes.tensor[0].numpy(), [50, 50, 30, 10, -80], atol=1e-4
    )


def test_clip_paths_agree_and_match_shapely():
    import shapely.geometry as sg

    from rotated_det.data.detection_utils import clip_rotated_boxes

    def rboxes_to_corners(b):
        return np.asarray(rbox_to_poly(b)).reshape(-1, 4, 2)

    rng = np.random.default_rng(0)
    boxes = np.concatenate(
        [
            rng.uniform(-20, 140, (200, 2)),
            rng.uniform(4, 60, (200, 2)),
            rng.uniform(-180, 180, (200, 1)),
        ],
        axis=1,
    )
    big, keep_big, _ = clip_rotated_boxes(boxes, (100, 120), 0.4)  # vectorised path (>32 boxes)
    small = [clip_rotated_boxes(boxes[i : i + 10], (100, 120), 0.4) for i in range(0, 200, 10)]
    keep_small = np.concatenate([k for _, k, _ in small])
    assert (keep_big == keep_small).mean() > 0.98  # differ only within float32 of the threshold
    both = keep_big & keep_small
    b1 = big[both[keep_big]]
    b2 = np.concatenate([b for b, _, _ in small])[both[keep_small]]
    c1, c2 = rboxes_to_corners(b1), rboxes_to_corners(b2)
    d = np.linalg.norm(c1[:, :, None] - c2[:, None], axis=-1).min(axis=2).max(axis=1)
    # the same minimum-area rectangles, up to float32 and the choice among equal-area ones
    # (a corner cut off a box can leave a triangle, whose three side-aligned rectangles tie)
    np.testing.assert_allclose(b1[:, 2] * b1[:, 3], b2[:, 2] * b2[:, 3], rtol=1e-4, atol=1e-3)
    assert (d < 1e-2).mean() > 0.9
    img = sg.box(0, 0, 120, 100)
    for bx, kept in zip(boxes, keep_big):
        frac = sg.Polygon(rboxes_to_corners(bx[None])[0]).intersection(img).area / (bx[2] * bx[3])
        assert kept == (frac >= 0.4) or abs(frac - 0.4) < 1e-6


def _random_boxes(rng, n, size):
    """``n`` boxes around an image of ``size`` (h, w): some outside, some thinner than 2 px."""
    h, w = size
    boxes = np.concatenate(
        [
            rng.uniform(-0.2, 1.2, (n, 1)) * w,
            rng.uniform(-0.2, 1.2, (n, 1)) * h,
            rng.uniform(2, 40, (n, 2)),
            rng.uniform(-180, 180, (n, 1)),
        ],
        axis=1,
    )
    boxes[::4, 3] = 1.5
    return boxes


@pytest.mark.parametrize("n", [5, 60])  # OpenCV path (<= 32 boxes to clip) and vectorised path
def test_filter_over_a_dataset_equals_the_filter_per_image(n):
    from rotated_det.data.detection_utils import filter_rotated_boxes

    rng = np.random.default_rng(n)
    sizes = [(100, 120), (300, 80), (64, 64)]
    per_image = [_random_boxes(rng, n, s) for s in sizes]
    ref = [filter_rotated_boxes(b, s, 2.0, 0.5, 1.0) for b, s in zip(per_image, sizes)]
    h = np.repeat([s[0] for s in sizes], n)
    w = np.repeat([s[1] for s in sizes], n)
    kept, reason, n_clip = filter_rotated_boxes(np.concatenate(per_image), (h, w), 2.0, 0.5, 1.0)
    ref_reason = np.concatenate([r for _, r, _ in ref])
    assert (reason == ref_reason).all() and n_clip == sum(c for _, _, c in ref)
    assert {1, 2} <= set(reason.tolist())  # both reasons occur
    np.testing.assert_allclose(kept, np.concatenate([b for b, _, _ in ref]), atol=1e-9)
    assert len(kept) == (reason == 0).sum()


def _dataset(tmp_path, boxes_per_image, sizes, difficult=None):
    dicts = []
    for i, (boxes, size) in enumerate(zip(boxes_per_image, sizes)):
        d = _one_box_dict(tmp_path, [], size)
        p = tmp_path / f"{i}.png"
        cv2.imwrite(str(p), np.zeros((*size, 3), np.uint8))
        d.update(file_name=str(p), image_id=str(i))
        d["annotations"] = [
            {
                "bbox": list(b),
                "bbox_mode": BoxMode.XYWHA_ABS,
                "category_id": 0,
                "difficult": int(difficult[i][j]) if difficult else 0,
            }
            for j, b in enumerate(boxes)
        ]
        dicts.append(d)
    return dicts


@pytest.mark.parametrize("filter_difficult", [False, True])
def test_dataset_check_counts_what_the_mapper_drops(tmp_path, filter_difficult):
    rng = np.random.default_rng(1)
    sizes = [(100, 120), (300, 80), (64, 64), (90, 200)]
    boxes = [_random_boxes(rng, 12, s) for s in sizes]
    diff = [rng.integers(0, 2, 12) for _ in sizes]
    dicts = _dataset(tmp_path, boxes, sizes, diff)
    kw = dict(is_train=True, min_box_size=2.0, filter_difficult=filter_difficult, log_period=0)
    mapper = DatasetMapper(**kw)
    for d in dicts:
        mapper(d)
    counts = DatasetMapper(**kw).check_dataset(dicts)
    assert counts == {**mapper.stats, "images": 4} and counts["boxes"] == 48
    assert counts["outside"] > 0 and counts["degenerate"] > 0
    assert (counts["difficult"] > 0) == filter_difficult


class _TopLeftCrop(T.Augmentation):
    def get_transform(self, image):
        return T.CropTransform(0, 0, 40, 40)


def test_boxes_a_crop_moves_out_are_counted_apart_and_do_not_warn(tmp_path, caplog):
    # A 40 x 40 crop at the top-left corner of a 100 x 120 image: the boxes at x = 80, 100
    # leave the crop (inside the image as loaded: "moved_out"), the box at x = 150 (centre
    # outside the 120 px image as loaded) stays "outside".
    boxes = [[15, 15, 10, 6, 0], [80, 15, 10, 6, 0], [100, 15, 10, 6, 0], [150, 15, 10, 6, 0]]
    (d,) = _dataset(tmp_path, [boxes], [(100, 120)])
    crop = _TopLeftCrop()
    mapper = DatasetMapper(is_train=True, augmentations=[crop], log_period=1)
    with caplog.at_level(logging.INFO, logger="rotated_det"):
        out = mapper(d)
    assert len(out["instances"]) == 1
    assert (mapper.stats["outside"], mapper.stats["moved_out"]) == (1, 2)
    (rec,) = [r for r in caplog.records if "after 1 images" in r.getMessage()]
    assert "2 moved out of the image by the augmentations" in rec.getMessage()
    assert rec.levelno == logging.WARNING  # 1 of 4 outside as loaded: above 5%
    caplog.clear()
    (d,) = _dataset(tmp_path, [boxes[:3]], [(100, 120)])
    mapper = DatasetMapper(is_train=True, augmentations=[crop], log_period=1)
    with caplog.at_level(logging.INFO, logger="rotated_det"):
        mapper(d)
    (rec,) = [r for r in caplog.records if "after 1 images" in r.getMessage()]
    assert rec.levelno == logging.INFO  # only boxes the crop moved out: expected, no warning


def test_dataset_check_warns_above_max_drop_fraction(tmp_path, caplog):
    # 1 box of 10 thinner than min_box_size, 1 mostly outside the 100 x 120 image
    boxes = [[30 + 5 * i, 50, 20, 10, 0] for i in range(8)]
    boxes += [[50, 50, 20, 1, 0], [125, 50, 9, 9, 0]]
    dicts = _dataset(tmp_path, [boxes], [(100, 120)])
    with caplog.at_level(logging.INFO, logger="rotated_det"):
        counts = DatasetMapper(is_train=True, min_box_size=2.0).check_dataset(dicts, "toy")
    assert (counts["outside"], counts["degenerate"], counts["boxes"]) == (1, 1, 10)
    (rec,) = [r for r in caplog.records if "Box check of toy" in r.getMessage()]
    assert rec.levelno == logging.WARNING
    msg = rec.getMessage()
    assert "dropped 2 of 10 boxes (20.0%)" in msg and "max_drop_fraction=0.05" in msg
    assert "1 mostly outside the image" in msg and "1 degenerate (side < 2.0 px)" in msg
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="rotated_det"):
        DatasetMapper(is_train=True, min_box_size=2.0, max_drop_fraction=0.2).check_dataset(dicts)
    (rec,) = [r for r in caplog.records if "Box check of" in r.getMessage()]
    assert rec.levelno == logging.INFO  # 20% is not more than 0.2
    with pytest.raises(ValueError, match="max_drop_fraction"):
        DatasetMapper(max_drop_fraction=5)


def test_dataset_check_all_dropped_is_an_error(tmp_path):
    # YOLO-OBB pixel labels read as normalised coordinates: every box lands far outside
    boxes = [[20 * 200, 30 * 100, 40 * 200, 10 * 100, 0]]
    dicts = _dataset(tmp_path, [boxes, boxes], [(100, 200), (100, 200)])
    with pytest.raises(ValueError, match="zero box losses") as e:
        DatasetMapper(is_train=True).check_dataset(dicts, "yolo")
    msg = str(e.value)
    assert "No ground-truth box of yolo" in msg and "2 mostly outside the image" in msg
    assert "0.png (200x100 px, WxH)" in msg and "pixels" in msg
    # all dropped as difficult, or no box at all: the same
    ok = [[50, 50, 20, 10, 0]]
    hard = _dataset(tmp_path, [ok], [(100, 200)], difficult=[[1]])
    with pytest.raises(ValueError, match="1 difficult dropped"):
        DatasetMapper(is_train=True, filter_difficult=True).check_dataset(hard)
    assert DatasetMapper(is_train=True).check_dataset(hard)["boxes"] == 1
    with pytest.raises(ValueError, match="dropped 0 of 0 boxes"):
        DatasetMapper(is_train=True).check_dataset(_dataset(tmp_path, [[]], [(100, 200)]))
    # nothing to check for a test mapper or a set without annotations
    assert DatasetMapper(is_train=False).check_dataset(dicts)["boxes"] == 0
    unlabelled = [{k: v for k, v in d.items() if k != "annotations"} for d in dicts]
    assert DatasetMapper(is_train=True).check_dataset(unlabelled)["boxes"] == 0

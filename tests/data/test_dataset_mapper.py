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
    assert s["outside"] + s["clipped"] > 0 and len(inst) + s["outside"] + s["degenerate"] == 536
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
        "degenerate": 1,
        "outside": 1,
        "clipped": 1,
        "difficult": 0,
    }
    assert "1 degenerate boxes" in caplog.text
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

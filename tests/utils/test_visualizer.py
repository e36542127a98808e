"""Visualizer: rotated-box geometry, colours, labels that never pile up, dense DOTA scene."""

import os

import cv2
import numpy as np
import pytest
import torch

from rotated_det.data import DOTA_V1_CLASSES, load_dota_instances
from rotated_det.structures import Instances, RotatedBoxes, rbox_to_poly
from rotated_det.utils.visualizer import Visualizer, class_color


class Meta:
    def __init__(self, names, colors=None):
        self.thing_classes = names
        if colors is not None:
            self.thing_colors = colors


def near(img, rgb, tol=40):
    return np.abs(img.astype(int) - np.array(rgb)).max(axis=-1) <= tol


def corners(box):
    """(4, 2) corners of one (cx, cy, w, h, angle) box, from structures' rbox_to_poly."""
    return rbox_to_poly(np.asarray([box], dtype=np.float64)).reshape(4, 2)


def test_box_is_drawn_at_its_hand_worked_corners_with_heading():
    # An 80 x 40 box at 30 deg counter-clockwise on screen, centre (100, 100): its w-axis is
    # (cos 30, -sin 30), its h-axis (sin 30, cos 30) (image y down). Hand-worked corners:
    u = np.array([np.cos(np.pi / 6), -0.5]) * 40  # w/2 along the w-axis
    v = np.array([0.5, np.cos(np.pi / 6)]) * 20  # h/2 along the h-axis
    c0 = np.array([100.0, 100.0])
    hand = np.stack([c0 - u - v, c0 + u - v, c0 + u + v, c0 - u + v])
    np.testing.assert_allclose(corners([100, 100, 80, 40, 30]), hand, atol=1e-9)
    img = np.zeros((200, 200, 3), np.uint8)
    vis = Visualizer(img, Meta(["a"], colors=[(0, 255, 0)]), fill_alpha=0.0, show_legend=False)
    out = vis.draw_instance_predictions(
        Instances(
            (200, 200),
            pred_boxes=RotatedBoxes(torch.tensor([[100.0, 100.0, 80.0, 40.0, 30.0]])),
            scores=torch.tensor([0.9]),
            pred_classes=torch.tensor([0]),
        )
    )
    green = near(out.get_image(), (0, 255, 0))

    def drawn(p, r=1):
        x, y = np.round(p).astype(int)
        return green[y - r : y + r + 1, x - r : x + r + 1].any()

    # Outline: every corner and edge point drawn; the clockwise-turned box (-30 deg) is not.
    for k in range(4):
        for t in (0.0, 0.25, 0.5, 0.75):
            assert drawn(hand[k] + t * (hand[(k + 1) % 4] - hand[k])), (k, t)
    mirrored = np.stack([c0 - u * [1, -1] - v * [-1, 1], c0 + u * [1, -1] + v * [-1, 1]])
    assert not any(drawn(p) for p in mirrored)
    # Heading: from the centre towards +w-axis (up-right on screen), not the other way.
    assert drawn(c0 + 0.5 * u) and not drawn(c0 - 0.5 * u)


def test_draws_outline_heading_label_and_legend():
    img = np.zeros((200, 300, 3), np.uint8)
    inst = Instances((200, 300))
    inst.pred_boxes = RotatedBoxes(torch.tensor([[150.0, 120.0, 100.0, 40.0, 20.0]]))
    inst.scores = torch.tensor([0.87])
    inst.pred_classes = torch.tensor([1])
    meta = Meta(["car", "ship"], colors=[(255, 0, 0), (0, 255, 0)])
    out = Visualizer(img, meta, fill_alpha=0.0).draw_instance_predictions(inst)
    canvas = out.get_image()
    assert canvas.shape == (200, 300, 3) and out.num_boxes == 1 and out.num_labels_drawn == 1
    green = near(canvas, (0, 255, 0))
    # Every edge midpoint and the heading line's end are drawn in the class colour.
    c = corners([150.0, 120.0, 100.0, 40.0, 20.0])
    for k in range(4):
        x, y = np.round((c[k] + c[(k + 1) % 4]) / 2).astype(int)
        assert green[y - 1 : y + 2, x - 1 : x + 2].any(), (k, x, y)
    x, y = np.round((c[0] + c[2]) / 2 * 0.5 + (c[1] + c[2]) / 2 * 0.5).astype(int)
    assert green[y - 1 : y + 2, x - 1 : x + 2].any()  # on the heading line
    # Far from the box (bottom-right corner) nothing is drawn; the legend is at the top-left.
    assert canvas[190:, 280:].max() == 0
    assert canvas[:15, :15].any()
    # The original image is not modified.
    assert img.max() == 0


def test_colors_are_distinct_and_stable():
    colors = [class_color(i) for i in range(16)]
    assert len(set(colors)) == 16
    assert colors == [class_color(i) for i in range(16)]
    d = [np.abs(np.subtract(a, b)).sum() for i, a in enumerate(colors) for b in colors[i + 1 :]]
    assert min(d) > 30


def test_overlapping_labels_are_hidden_and_counted_best_score_first():
    # Two nearly identical boxes at the bottom-left of a small image: only the position above them
    # is inside the image, so one label fits; it must be the higher-scored box's.
    img = np.zeros((104, 80, 3), np.uint8)
    inst = Instances((104, 80))
    inst.pred_boxes = RotatedBoxes(torch.tensor([[40.0, 90.0, 60, 20, 0], [41.0, 91.0, 60, 20, 0]]))
    inst.scores = torch.tensor([0.3, 0.9])
    inst.pred_classes = torch.tensor([0, 1])
    meta = Meta(["aaaa", "bbbb"], colors=[(255, 0, 0), (0, 0, 255)])
    vis = Visualizer(img, meta, fill_alpha=0.0, show_legend=False, font_scale=0.35)
    out = vis.draw_instance_predictions(inst)
    assert out.num_labels_drawn == 1 and out.num_labels_hidden == 1
    # The label (above the boxes, y < 79) is drawn in the 0.9 box's colour (blue), not red.
    above = out.get_image()[:79]
    assert near(above, (0, 0, 255), 60).sum() > 10
    assert near(above, (255, 0, 0), 60).sum() == 0


def test_dense_dota_scene_p0706(tmp_path, dota_samples):
    dicts = load_dota_instances(
        str(dota_samples / "images"), str(dota_samples / "labelTxt"), DOTA_V1_CLASSES
    )
    (d,) = [x for x in dicts if os.path.basename(x["file_name"]).startswith("P0706")]
    assert len(d["annotations"]) == 536
    img = cv2.imread(d["file_name"])[:, :, ::-1]
    vis = Visualizer(img, Meta(list(DOTA_V1_CLASSES)), scale=2.0)
    out = vis.draw_dataset_dict(d)
    out.save(str(tmp_path / "P0706.png"))
    canvas = out.get_image()
    assert canvas.shape[:2] == (2 * img.shape[0], 2 * img.shape[1])
    assert out.num_boxes == 536
    assert out.num_labels_drawn + out.num_labels_hidden == 536
    assert out.num_labels_drawn > 200  # most objects still get a readable label
    # Labels never hide the objects: the outline of (nearly) every ship stays visible.
    ship = DOTA_V1_CLASSES.index("ship")
    color = class_color(ship)
    drawn = near(canvas, color, 60)
    visible = 0
    ships = [a for a in d["annotations"] if a["category_id"] == ship]
    for a in ships:
        c = corners(a["bbox"]) * 2.0
        mids = [np.round((c[k] + c[(k + 1) % 4]) / 2).astype(int) for k in range(4)]
        hits = sum(
            drawn[max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3].any()
            for x, y in mids
            if 0 <= x < canvas.shape[1] and 0 <= y < canvas.shape[0]
        )
        visible += hits >= 3
    assert visible >= 0.95 * len(ships), (visible, len(ships))
    assert os.path.getsize(tmp_path / "P0706.png") > 100_000


def test_dataset_dict_errors_name_file_and_annotation():
    img = np.zeros((50, 50, 3), np.uint8)
    d = {"file_name": "x.png", "annotations": [{"bbox": [1, 2, 3, 4, 5], "bbox_mode": 0}]}
    with pytest.raises(ValueError, match=r"x.png: annotation 0 has bbox"):
        Visualizer(img).draw_dataset_dict(d)
    # Horizontal XYXY boxes are accepted and drawn as angle-0 boxes.
    d["annotations"] = [{"bbox": [10, 10, 30, 20], "bbox_mode": 0, "category_id": 0}]
    out = Visualizer(img, fill_alpha=0.0).draw_dataset_dict(d)
    assert out.get_image()[10, 20].any() and out.get_image()[18, 14].sum() == 0
    with pytest.raises(ValueError, match="RGB image"):
        Visualizer(np.zeros((5, 5, 2), np.uint8))

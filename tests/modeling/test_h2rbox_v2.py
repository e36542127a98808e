"""H2RBox-v2: the views (images and boxes transformed alike), the horizontal ground truth, the
pairing of one object's predictions across views, square classes, and inference = Rotated FCOS.

Shapes are drawn here by their exact pixel coverage and measured back from their intensity
moments, both sub-pixel, in the project's pixel convention (pixel (i, j) covers
[j, j + 1] x [i, i + 1]).
"""

import copy

import numpy as np
import pytest
import torch

from rotated_det.config import instantiate
from rotated_det.modeling import H2RBoxV2, PSCCoder, RotatedFCOS
from rotated_det.modeling.losses.symmetry_loss import symmetry_losses
from rotated_det.modeling.meta_arch.h2rbox_v2 import (
    flip_boxes_vertically,
    horizontal_gt_boxes,
    rotate_boxes,
    rotate_images,
)
from rotated_det.structures import (
    Instances,
    RotatedBoxes,
    point_offsets_in_box_frame,
    rbox_to_hbox,
    rbox_to_poly,
)

from ._helpers import build_small_model, make_batch, single_thread, small_model_cfg


def _draw_box(height: int, width: int, box) -> torch.Tensor:
    """``[1, 1, H, W]`` float image: 255 x the fraction of each pixel the rotated box covers
    (8 x 8 samples per pixel; pixel (i, j) covers [j, j + 1] x [i, i + 1])."""
    k = 8
    sub = (torch.arange(k, dtype=torch.float64) + 0.5) / k
    ys = (torch.arange(height, dtype=torch.float64)[:, None] + sub).reshape(-1)
    xs = (torch.arange(width, dtype=torch.float64)[:, None] + sub).reshape(-1)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    points = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
    b = torch.tensor([box], dtype=torch.float64)
    ou, ov = point_offsets_in_box_frame(points, b, aligned=False)[:, 0].unbind(1)
    inside = ((ou.abs() < b[0, 2] / 2) & (ov.abs() < b[0, 3] / 2)).double()
    cover = inside.view(height, k, width, k).mean(dim=(1, 3))
    return (255 * cover).float()[None, None]


def _drawn_corners(img: torch.Tensor) -> np.ndarray:
    """Corners ``[4, 2]`` (project coordinates) of the filled rectangle in a ``[H, W]`` image,
    from its intensity moments: centroid, and the principal axes whose variances are
    ``w**2 / 12`` and ``h**2 / 12`` for a uniform rectangle (sub-pixel, unlike a contour)."""
    weight = img.double() / img.max()
    ys, xs = torch.meshgrid(
        torch.arange(img.shape[0], dtype=torch.float64) + 0.5,
        torch.arange(img.shape[1], dtype=torch.float64) + 0.5,
        indexing="ij",
    )
    m = weight.sum()
    cx, cy = (weight * xs).sum() / m, (weight * ys).sum() / m
    dx, dy = xs - cx, ys - cy
    cov = torch.tensor(
        [
            [(weight * dx * dx).sum() / m, (weight * dx * dy).sum() / m],
            [(weight * dx * dy).sum() / m, (weight * dy * dy).sum() / m],
        ]
    )
    var, vec = torch.linalg.eigh(cov)  # ascending
    u = vec[:, 1]
    angle = torch.rad2deg(torch.atan2(-u[1], u[0]))
    box = torch.stack([cx, cy, (12 * var[1]).sqrt(), (12 * var[0]).sqrt(), angle])
    return rbox_to_poly(box).reshape(4, 2).numpy()


def _corner_error(box: torch.Tensor, corners: np.ndarray) -> float:
    """Largest distance from a corner of ``box`` to the nearest of ``corners``."""
    ours = rbox_to_poly(box.double()).reshape(4, 2).numpy()
    return float(np.linalg.norm(ours[:, None] - corners[None], axis=2).min(axis=1).max())


@pytest.mark.parametrize("angle", [30.0, 45.0, 90.0, 123.0, -70.0])
def test_rotated_view_image_and_boxes_agree(angle):
    """A rectangle drawn in a 96 x 128 image (not square: the sampling grid is anisotropic in
    normalised coordinates) and turned with the image lands where the turned box says, within
    half a pixel at every corner (measured: drawing 0.02 px, turned 0.02-0.06 px; the turn in
    the other direction would be 16-40 px off)."""
    h, w = 96, 128
    box = torch.tensor([[52.0, 41.0, 40.0, 16.0, 20.0]])
    img = _draw_box(h, w, box[0].tolist())
    assert _corner_error(box[0], _drawn_corners(img[0, 0])) < 0.1  # the drawing itself
    turned = rotate_images(img, torch.tensor([angle]), "zeros")
    new_box = rotate_boxes(box, torch.tensor(angle), (h, w))
    assert new_box[0, 4].item() == pytest.approx(20.0 + angle)
    corners = _drawn_corners(turned[0, 0])
    assert _corner_error(new_box[0], corners) < 0.5
    assert _corner_error(rotate_boxes(box, torch.tensor(-angle), (h, w))[0], corners) > 5.0


def test_flipped_view_image_and_boxes_agree():
    h, w = 96, 128
    box = torch.tensor([[52.0, 30.0, 40.0, 16.0, 35.0]])
    img = _draw_box(h, w, box[0].tolist())
    flipped = flip_boxes_vertically(box, h)
    torch.testing.assert_close(flipped, torch.tensor([[52.0, 66.0, 40.0, 16.0, -35.0]]))
    assert _corner_error(flipped[0], _drawn_corners(img.flip(2)[0, 0])) < 0.5


def test_rotate_images_quarter_turn_and_identity():
    """A quarter turn of a square image moves pixel centres onto pixel centres: it equals
    ``torch.rot90`` (counter-clockwise as displayed) up to rounding; 0 is the identity."""
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(
        rotate_images(x, torch.tensor([90.0, 90.0])),
        torch.rot90(x, 1, dims=(2, 3)),
        atol=1e-4,
        rtol=0,
    )
    torch.testing.assert_close(rotate_images(x, torch.zeros(2)), x, atol=1e-5, rtol=0)
    # per-image angles, and a turn of 180 = flip of both axes
    out = rotate_images(x, torch.tensor([0.0, 180.0]), "zeros")
    torch.testing.assert_close(out[1], x[1].flip(1).flip(2), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="padding_mode"):
        rotate_images(x, torch.zeros(2), "mirror")


def test_rotation_fill_modes():
    x = torch.full((1, 1, 20, 20), 5.0)
    # the corners of a 45-degree turn come from outside the image
    assert rotate_images(x, torch.tensor([45.0]), "zeros")[0, 0, 0, 0].item() == 0.0
    for mode in ("reflection", "border"):
        torch.testing.assert_close(rotate_images(x, torch.tensor([45.0]), mode), x)


def test_horizontal_gt_boxes():
    boxes = torch.tensor(
        [
            [10.0, 20.0, 40.0, 10.0, 0.0],  # horizontal labels are kept exactly
            [10.0, 20.0, 40.0, 10.0, 90.0],  # a quarter turn: sides swapped, exactly
            [0.0, 0.0, 20.0, 10.0, 30.0],
        ]
    )
    out = horizontal_gt_boxes(boxes)
    assert torch.equal(out[0], boxes[0])
    assert torch.equal(out[1], torch.tensor([10.0, 20.0, 10.0, 40.0, 0.0]))
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    expected = torch.tensor([0.0, 0.0, 20 * c + 10 * s, 20 * s + 10 * c, 0.0])
    torch.testing.assert_close(out[2], expected.float())
    # the same enclosing box as structures' rbox_to_hbox for any box
    g = torch.Generator().manual_seed(1)
    rand = torch.cat([torch.rand(40, 4, generator=g) * 50, torch.rand(40, 1, generator=g) * 360], 1)
    hb = horizontal_gt_boxes(rand)
    xyxy = torch.cat([hb[:, :2] - hb[:, 2:4] / 2, hb[:, :2] + hb[:, 2:4] / 2], 1)
    torch.testing.assert_close(xyxy, rbox_to_hbox(rand), atol=1e-4, rtol=0)
    assert horizontal_gt_boxes(torch.zeros(0, 5)).shape == (0, 5)


def _h2rbox_cfg(**overrides):
    cfg = small_model_cfg("h2rbox_v2")
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


def test_views_of_rotated_labels_are_their_horizontal_boxes():
    """The model trains on the horizontal boxes of its labels: rotated and horizontal labels of
    the same objects give the same three views."""
    torch.manual_seed(0)
    model = instantiate(_h2rbox_cfg())
    images = torch.rand(1, 3, 64, 96)
    rotated = Instances(
        (64, 96),
        gt_boxes=RotatedBoxes(torch.tensor([[30.0, 20.0, 20.0, 10.0, 90.0], [60, 40, 16, 8, 30]])),
        gt_classes=torch.tensor([0, 2]),
    )
    horizontal = Instances(
        (64, 96),
        gt_boxes=RotatedBoxes(horizontal_gt_boxes(rotated.gt_boxes.tensor)),
        gt_classes=torch.tensor([0, 2]),
    )
    rotation = torch.tensor([60.0])
    views, gt_a = model.make_views(images, [rotated], rotation)
    _, gt_b = model.make_views(images, [horizontal], rotation)
    assert views.shape == (3, 3, 64, 96)
    torch.testing.assert_close(views[2], images[0].flip(1))
    torch.testing.assert_close(views[1], rotate_images(images, rotation, "reflection")[0])
    for a, b in zip(gt_a, gt_b):
        torch.testing.assert_close(a.gt_boxes.tensor, b.gt_boxes.tensor)
        assert torch.equal(a.gt_classes, torch.tensor([0, 2]))
    torch.testing.assert_close(gt_a[0].gt_boxes.tensor[0], torch.tensor([30.0, 20, 10, 20, 0]))
    torch.testing.assert_close(
        gt_a[1].gt_boxes.tensor, rotate_boxes(gt_a[0].gt_boxes.tensor, rotation[0], (64, 96))
    )
    torch.testing.assert_close(
        gt_a[2].gt_boxes.tensor, flip_boxes_vertically(gt_a[0].gt_boxes.tensor, 64)
    )


def test_symmetry_terms_pair_each_object_across_views():
    """Two images (2 and 1 objects), 3 views, 5 points per view. Only object (image 0, box 1)
    has positive points in all three views; its angle per view is decoded from the MEAN code of
    its points, so the loss equals the symmetry loss of those three angles alone."""
    torch.manual_seed(0)
    model = instantiate(_h2rbox_cfg(square_classes=[2], square_class_scales=[1.0]))
    coder = model.angle_coder
    k = model.num_classes
    gt = [
        Instances(
            (64, 64), gt_boxes=RotatedBoxes(torch.zeros(2, 5)), gt_classes=torch.tensor([0, 1])
        ),
        Instances((64, 64), gt_boxes=RotatedBoxes(torch.zeros(1, 5)), gt_classes=torch.tensor([0])),
    ]
    view_gt = gt * 3  # only lengths and classes are read
    labels = torch.full((6, 5), k)
    assigned = torch.full((6, 5), -1)
    codes = torch.zeros(6, 5, coder.encode_size)
    rotation = torch.tensor([70.0, 100.0])

    def put(view_image, point, box, angle):
        labels[view_image, point] = gt[view_image % 2].gt_classes[box]
        assigned[view_image, point] = box
        codes[view_image, point] = coder.encode(torch.tensor([angle]))[0]

    # object (image 0, box 1): two points in the original view (codes averaged), one elsewhere
    put(0, 0, 1, 20.0)
    put(0, 3, 1, 20.0)
    put(2, 4, 1, 20.0 + 70.0 + 6.0)  # rotated view (view 1 of image 0): 6 degrees off
    put(4, 1, 1, -20.0 - 10.0)  # flipped view: 10 degrees off
    # object (image 0, box 0): original and rotated views only -> no symmetry loss
    put(0, 1, 0, 50.0)
    put(2, 2, 0, -77.0)
    # object (image 1, box 0): not in its flipped view
    put(1, 0, 0, 5.0)
    put(3, 0, 0, 5.0)
    terms = model.symmetry_loss_terms(
        labels, assigned, [codes[:, :2], codes[:, 2:]], view_gt, rotation
    )
    loss_rot, loss_flip = symmetry_losses(
        torch.tensor([20.0]), torch.tensor([96.0]), torch.tensor([-30.0]), torch.tensor([70.0])
    )
    assert terms["loss_symmetry_rot"].item() == pytest.approx(loss_rot.item(), rel=1e-3)
    assert terms["loss_symmetry_flip"].item() == pytest.approx(0.05 * loss_flip.item(), rel=1e-3)
    # object (0, 1) is of class 1; declared a square class it drops out: zero losses
    model.is_square_class[1] = True
    terms = model.symmetry_loss_terms(labels, assigned, [codes], view_gt, rotation)
    assert terms["loss_symmetry_rot"].item() == 0.0 and terms["loss_symmetry_flip"].item() == 0.0


def test_square_classes_are_horizontal_and_scaled_at_inference():
    torch.manual_seed(0)
    model = instantiate(_h2rbox_cfg(square_classes=[1], square_class_scales=[0.5]))
    points = torch.tensor([[10.0, 10.0], [10.0, 10.0]])
    distances = torch.tensor([[2.0, 3.0, 4.0, 5.0]] * 2)
    codes = model.angle_coder.encode(torch.tensor([30.0, 30.0]))
    boxes = model.decode_boxes(points, distances, codes, torch.tensor([0, 1]))
    plain = model.box_coder.decode(points, distances, torch.tensor([30.0, 0.0]))
    torch.testing.assert_close(boxes[0], plain[0], atol=1e-4, rtol=0)
    torch.testing.assert_close(boxes[1, :2], plain[1, :2])
    torch.testing.assert_close(boxes[1, 2:], plain[1, 2:] * torch.tensor([0.5, 0.5, 1.0]))
    # settings are not weights: checkpoints stay those of Rotated FCOS
    assert not any(k in model.state_dict() for k in ("is_square_class", "class_box_scale"))


def test_inference_is_rotated_fcos():
    """Without square classes, H2RBox-v2 predicts exactly what a Rotated FCOS with the same
    weights predicts (the method changes training only)."""
    cfg = _h2rbox_cfg(test_score_thresh=0.0)  # random weights: scores near 0.005
    with single_thread():
        torch.manual_seed(0)
        model = instantiate(cfg).eval()
        fcos_cfg = copy.deepcopy(cfg)
        fcos_cfg._target_ = RotatedFCOS
        for key in (
            "view_range",
            "rotate_padding",
            "square_classes",
            "square_class_scales",
            "rotation_loss_weight",
            "flip_loss_weight",
            "symmetry_beta",
            "snap_loss",
        ):
            del fcos_cfg[key]
        fcos = instantiate(fcos_cfg).eval()
        fcos.load_state_dict(model.state_dict())
        batch = make_batch(96, with_gt=False)
        with torch.no_grad():
            a, b = model(batch), fcos(batch)
    for x, y in zip(a, b):
        assert len(x["instances"]) > 0
        torch.testing.assert_close(
            x["instances"].pred_boxes.tensor, y["instances"].pred_boxes.tensor
        )
        torch.testing.assert_close(x["instances"].scores, y["instances"].scores)


def test_training_losses_and_argument_checks():
    with single_thread():
        model = build_small_model("h2rbox_v2")
        model.train()
        losses = model(make_batch(96))
    assert set(losses) == {
        "loss_cls",
        "loss_box_reg",
        "loss_centerness",
        "loss_symmetry_rot",
        "loss_symmetry_flip",
    }
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_symmetry_rot"] > 0  # random weights are not consistent
    assert isinstance(model.angle_coder, PSCCoder) and not model.angle_coder.dual_freq
    for overrides, match in [
        ({"square_classes": [3]}, r"square_classes \[3\]"),
        ({"square_classes": [1], "square_class_scales": []}, "one factor"),
        ({"view_range": [90.0, 45.0]}, "view_range"),
        ({"rotate_padding": "mirror"}, "rotate_padding"),
        ({"box_loss_type": "hbox_iou"}, "box_loss_type"),
        ({"flip_loss_weight": -1.0}, "flip_loss_weight"),
    ]:
        with pytest.raises(ValueError, match=match):
            H2RBoxV2(**{**_built_args(), **overrides})


def _built_args():
    cfg = _h2rbox_cfg()
    return {
        k: instantiate(v) if hasattr(v, "get") and "_target_" in v else v
        for k, v in cfg.items()
        if k != "_target_"
    }

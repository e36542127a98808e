"""RotatedDetectorWithTTA: the views' inverse maps on hand-worked boxes, equivariance of the full
group of views under a 90-degree rotation, identity TTA = the plain model, the config switch."""

import os

import cv2
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from rotated_det.config import LazyCall as L
from rotated_det.config import LazyConfig, instantiate
from rotated_det.engine import DefaultTrainer, default_trainer
from rotated_det.engine.test_time_augmentation import (
    RotatedDetectorWithTTA,
    TTAView,
    build_tta_model,
)
from rotated_det.structures import Instances, RotatedBoxes, rbox_to_poly

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _angle_diff(a, b):
    """Distance between angles in degrees modulo 180 (a rectangle's period)."""
    d = (np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64) + 90.0) % 180.0 - 90.0
    return np.abs(d)


# ------------------------------------------------------------------ inverse maps, by hand
# W = 200, H = 100; a box near the top-left corner at 30 degrees. The box each view shows, worked
# out by hand from the maps in the module docstring (rot90 by 90: (x, y) -> (y, W - x), a + 90).
BOX = (20.0, 10.0, 16.0, 6.0, 30.0)
HAND_WORKED = [
    (TTAView(hflip=True), (180, 10, 16, 6, -30)),
    (TTAView(vflip=True), (20, 90, 16, 6, -30)),
    (TTAView(rot90=90), (10, 180, 16, 6, 120)),
    (TTAView(rot90=180), (180, 90, 16, 6, -150)),
    (TTAView(rot90=270), (90, 20, 16, 6, -60)),
    (TTAView(scale=0.5), (10, 5, 8, 3, 30)),
    # hflip first (180, 10, -30), then rot90 by 90 of the 100 x 200 flipped image: (10, 20, 60)
    (TTAView(hflip=True, rot90=90), (10, 20, 16, 6, 60)),
    (TTAView(hflip=True, vflip=True), (180, 90, 16, 6, 30)),
]


@pytest.mark.parametrize("view,expected", HAND_WORKED, ids=lambda v: str(v))
def test_view_and_inverse_on_hand_worked_box(view, expected):
    tfm = view.transform(100, 200)
    seen = tfm.apply_rotated_box(np.array([BOX]))[0]
    np.testing.assert_allclose(seen[:4], expected[:4], atol=1e-9)
    assert _angle_diff(seen[4], expected[4]) < 1e-9
    back = tfm.inverse().apply_rotated_box(seen[None])[0]
    np.testing.assert_allclose(back[:4], BOX[:4], atol=1e-9)
    assert _angle_diff(back[4], BOX[4]) < 1e-9
    # the view's image has the shape its boxes live in
    image = np.zeros((100, 200, 3), np.uint8)
    h, w = tfm.apply_image(image).shape[:2]
    assert (h, w) == (
        (200, 100) if view.rot90 % 180 else (round(100 * view.scale), 200 * view.scale)
    )


@pytest.mark.parametrize("view", [v for v, _ in HAND_WORKED], ids=lambda v: str(v))
def test_view_image_is_the_transform_image(view):
    """The view's tensor (torch flip / rot90 for speed) has the pixels of the transforms'
    apply_image, so that boxes and pixels follow the same geometry."""
    hwc = np.random.default_rng(0).integers(0, 256, size=(10, 16, 3), dtype=np.uint8)
    chw = torch.from_numpy(hwc).permute(2, 0, 1)
    expected = view.transform(10, 16).apply_image(hwc)
    got = view.apply_image(chw)
    assert got.is_contiguous()
    np.testing.assert_array_equal(got.permute(1, 2, 0).numpy(), expected)


class BlobDetector(nn.Module):
    """Finds the one bright blob of an image: the rotated box with its second moments (a filled
    rectangle's own box, up to rasterisation), score 0.9, class 0. Its answer on a flipped or
    turned image is exactly its answer on the original, flipped or turned."""

    def forward(self, batched_inputs):
        out = []
        for x in batched_inputs:
            img = x["image"][0].double()
            h, w = img.shape
            ys, xs = torch.meshgrid(
                torch.arange(h, dtype=torch.float64) + 0.5,
                torch.arange(w, dtype=torch.float64) + 0.5,
                indexing="ij",
            )
            m = img / img.sum()
            cx, cy = (m * xs).sum(), (m * ys).sum()
            sxx = (m * (xs - cx) ** 2).sum()
            syy = (m * (ys - cy) ** 2).sum()
            sxy = (m * (xs - cx) * (ys - cy)).sum()
            mean, diff = (sxx + syy) / 2, torch.sqrt(((sxx - syy) / 2) ** 2 + sxy**2)
            theta = 0.5 * torch.atan2(2 * sxy, sxx - syy)  # major axis, image y down
            box = [cx, cy, torch.sqrt(12 * (mean + diff)), torch.sqrt(12 * (mean - diff))]
            box.append(-torch.rad2deg(theta))  # counter-clockwise on screen
            inst = Instances((h, w))
            inst.pred_boxes = RotatedBoxes(torch.stack(box)[None].float())
            inst.scores = torch.tensor([0.9])
            inst.pred_classes = torch.tensor([0])
            out.append({"instances": inst})
        return out


def _blob_image(box, h=100, w=200):
    img = np.zeros((h, w, 3), np.uint8)
    # cv2 puts pixel (i, j) at (i, j), our continuous coordinates at (i + 0.5, j + 0.5)
    corners = rbox_to_poly(torch.tensor([box])).numpy().reshape(4, 2) - 0.5
    cv2.fillPoly(img, [np.round(corners * 16).astype(np.int32)], (255,) * 3, cv2.LINE_AA, 4)
    return torch.from_numpy(img).permute(2, 0, 1).float()


@pytest.mark.parametrize("view", [v for v, _ in HAND_WORKED], ids=lambda v: str(v))
def test_single_view_maps_the_detection_back(view):
    """Image and boxes follow the same geometry: the detector's box on the view, mapped back,
    is its box on the original (exactly for flips and rotations, which permute pixels)."""
    box = (40.0, 30.0, 48.0, 16.0, 30.0)  # near the top-left corner
    image = _blob_image(box)
    plain = BlobDetector()([{"image": image}])[0]["instances"].pred_boxes.tensor[0]
    # the detector works (fillPoly draws the edges' pixels whole: sides about 1 px longer)
    assert plain[:2].tolist() == pytest.approx(box[:2], abs=0.05)
    assert plain[2:4].tolist() == pytest.approx(box[2:4], abs=1.5)
    assert _angle_diff(plain[4].item(), box[4]) < 1.0
    tta = RotatedDetectorWithTTA(BlobDetector(), hflip=False).eval()
    tta.views = (view,)
    got = tta([{"image": image}])[0]["instances"].pred_boxes.tensor[0]
    tol = 1e-3 if view.scale == 1.0 else 0.5  # a resize interpolates the pixels
    assert got[:4].tolist() == pytest.approx(plain[:4].tolist(), abs=tol)
    assert _angle_diff(got[4].item(), plain[4].item()) < (1e-3 if view.scale == 1.0 else 1.0)


# ------------------------------------------------------------------ with a real detector
def _retinanet():
    """The quickstart RotatedRetinaNet (ResNet-18, GroupNorm) with random weights, every
    candidate kept (random weights score about 0.01)."""
    cfg = LazyConfig.load(os.path.join(REPO, "configs/quickstart/rotated_retinanet_R_18_FPN.py"))
    cfg.model.test_score_thresh = 0.0
    cfg.model.test_topk_candidates = 300
    torch.manual_seed(0)
    return instantiate(cfg.model).eval()


def _scene(size=96):
    rng = np.random.default_rng(0)
    img = rng.integers(90, 130, size=(size, size, 3), dtype=np.uint8)
    for box, colour in (
        ((30, 25, 40, 14, 30), (40, 40, 220)),
        ((65, 70, 30, 20, -60), (40, 200, 40)),
    ):
        pts = np.round(rbox_to_poly(torch.tensor([box])).numpy().reshape(4, 2) * 16).astype(
            np.int32
        )
        cv2.fillPoly(img, [pts], colour, lineType=cv2.LINE_AA, shift=4)
    return img


def _to_input(img):
    return {"image": torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float()}


def _assert_same_detections(a: Instances, b: Instances, box_tol=1e-3):
    """Same detections as sets: each of ``a`` has one in ``b`` with the same class, score within
    1e-5 and box within ``box_tol`` (pixels; degrees modulo 180)."""
    assert len(a) == len(b) > 0
    ba, bb = a.pred_boxes.tensor.double(), b.pred_boxes.tensor.double()
    d = (ba[:, None, :4] - bb[None, :, :4]).abs().amax(-1)
    d = torch.maximum(d, torch.as_tensor(_angle_diff(ba[:, None, 4], bb[None, :, 4])))
    d = torch.where((a.pred_classes[:, None] == b.pred_classes[None]), d, torch.inf)
    score_gap = (a.scores[:, None].double() - b.scores[None].double()).abs()
    d = torch.where(score_gap < 1e-5, d, torch.inf)
    best = d.min(1)
    assert best.values.max().item() < box_tol
    assert len(set(best.indices.tolist())) == len(a)  # a one-to-one match


@pytest.mark.parametrize("merge", ["nms", "wbf"])
def test_full_group_tta_is_equivariant_under_rot90(merge):
    """The issue's property: TTA over both flips and the four rotations, on the image turned by
    90 degrees, gives the TTA predictions of the original turned by 90 degrees. The model on its
    own is not equivariant (checked), so the merge and the inverse maps make it so."""
    model = _retinanet()
    img = _scene()
    size = img.shape[0]
    tta = RotatedDetectorWithTTA(
        model,
        hflip=True,
        vflip=True,
        rot90=(0, 90, 180, 270),
        merge=merge,
        max_detections=10_000,
        batch_size=1,
    )
    assert len(tta.views) == 8  # the 16 combinations are the 8 symmetries of the square
    turn = TTAView(rot90=90).transform(size, size)
    with torch.no_grad():
        plain = model([_to_input(img)])[0]["instances"]
        plain_turned = model([_to_input(turn.apply_image(img))])[0]["instances"]
        on_original = tta([_to_input(img)])[0]["instances"]
        on_turned = tta([_to_input(turn.apply_image(img))])[0]["instances"]
    # the bare model is not equivariant: its turned predictions differ
    moved = RotatedBoxes(torch.as_tensor(turn.apply_rotated_box(plain.pred_boxes.tensor.numpy())))
    with pytest.raises(AssertionError):
        _assert_same_detections(
            Instances(
                (size, size), pred_boxes=moved, scores=plain.scores, pred_classes=plain.pred_classes
            ),
            plain_turned,
        )
    back = turn.apply_rotated_box(on_original.pred_boxes.tensor.numpy())
    expected = Instances(
        (size, size),
        pred_boxes=RotatedBoxes(torch.as_tensor(back)),
        scores=on_original.scores,
        pred_classes=on_original.pred_classes,
    )
    _assert_same_detections(expected, on_turned)


@pytest.mark.parametrize("merge", ["nms", "wbf"])
def test_identity_tta_equals_the_plain_model(merge):
    model = _retinanet()
    x = _to_input(_scene())
    x.update(height=144, width=192)  # reported in a larger frame: the wrapper rescales too
    tta = RotatedDetectorWithTTA(model, hflip=False, merge=merge, max_detections=10_000)
    assert tta.views == (TTAView(),)
    with torch.no_grad():
        plain = model([x])[0]["instances"]
        got = tta([x])[0]["instances"]
    assert got.image_size == plain.image_size == (144, 192)
    # the model's NMS (0.1) leaves nothing for the wrapper's (0.5) to remove
    _assert_same_detections(got, plain, box_tol=1e-3)


def test_views_are_deduplicated_and_arguments_checked():
    model = nn.Identity()
    tta = RotatedDetectorWithTTA(model, hflip=True, vflip=True, rot90=(0, 180), scales=(1.0, 0.5))
    # hflip + vflip = rot180: 2 scales x {id, h, v, hv=rot180, h+rot180=v, ...} = 2 x 4
    assert len(tta.views) == 8
    for bad, match in (
        (dict(rot90=(45,)), "rot90"),
        (dict(scales=(0.0,)), "scales"),
        (dict(merge="mean"), "merge"),
        (dict(nms_thresh=2.0), "nms_thresh"),
        (dict(max_detections=0), "max_detections"),
    ):
        with pytest.raises(ValueError, match=match):
            RotatedDetectorWithTTA(model, **bad)
    with pytest.raises(ValueError, match="rot90"):
        TTAView(rot90=45)
    train_mode = RotatedDetectorWithTTA(nn.Linear(1, 1))
    with pytest.raises(RuntimeError, match="eval"):
        train_mode([{"image": torch.zeros(3, 8, 8)}])


# ------------------------------------------------------------------ the config switch
def test_config_switch_wraps_the_evaluated_model(monkeypatch):
    seen = []
    monkeypatch.setattr(
        default_trainer, "inference_on_dataset", lambda model, loader, ev: seen.append(model) or {}
    )
    cfg = OmegaConf.create(
        {
            "dataloader": {"test": L(list)(), "evaluator": L(list)()},
            "train": LazyConfig.load(os.path.join(REPO, "configs/common/train.py")).train,
        }
    )
    model = nn.Identity()
    DefaultTrainer.test(cfg, model)
    assert seen[-1] is model  # off by default
    cfg = LazyConfig.apply_overrides(
        cfg, ["train.tta.enabled=True", "train.tta.vflip=True", "train.tta.merge=wbf"]
    )
    DefaultTrainer.test(cfg, model)
    wrapped = seen[-1]
    assert isinstance(wrapped, RotatedDetectorWithTTA) and wrapped.model is model
    assert wrapped.merge == "wbf" and len(wrapped.views) == 4
    with pytest.raises(KeyError, match="train.tta: unknown keys \\['flip'\\]"):
        build_tta_model(model, {"enabled": True, "flip": True})

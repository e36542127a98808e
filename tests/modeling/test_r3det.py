"""R3Det specifics: the best-box selection, the feature refinement module's wiring, the first
stage's matching against enclosing horizontal boxes, the refinement stages' own matching, several
stages and their weights, detached boxes, config errors. The generic detector tests (empty
images, overfit, export, AMP, configs) cover it through _helpers.py."""

import copy

import pytest
import torch

from rotated_det.config import LazyCall as L
from rotated_det.config import instantiate
from rotated_det.layers import box_iou_rotated, rotated_feature_align
from rotated_det.modeling import FeatureRefineModule, Matcher, RotatedATSSAssigner
from rotated_det.structures import Instances, RotatedBoxes

from ._helpers import build_small_model, make_batch, single_thread, small_model_cfg


def test_best_boxes_decode_the_best_scoring_anchor_of_each_location():
    model = build_small_model("r3det")
    a, k = model._anchors_per_cell, model.num_classes
    assert a == 9
    gen = torch.Generator().manual_seed(0)
    n, locations = 2, 6
    anchors = torch.cat(
        [torch.rand(locations * a, 2, generator=gen) * 100, torch.rand(locations * a, 3) * 40 + 8],
        dim=1,
    )
    logits = torch.randn(n, locations * a, k, generator=gen)
    deltas = torch.randn(n, locations * a, 5, generator=gen) * 0.2
    (boxes,) = model.best_boxes([anchors], [logits], [deltas])
    assert boxes.shape == (n, locations, 5) and not boxes.requires_grad
    coder = model.box2box_transform
    for i in range(n):
        for loc in range(locations):
            rows = slice(loc * a, (loc + 1) * a)  # the location's anchors are consecutive
            best = int(logits[i, rows].max(dim=1).values.argmax()) + loc * a
            expected = coder.apply_deltas(deltas[i, best : best + 1], anchors[best : best + 1])
            torch.testing.assert_close(boxes[i, loc], expected[0])


def test_feature_refine_module_aligns_at_each_locations_box():
    """With the 1 x 1 conv an identity and the others zero, the module returns
    ``x + rotated_feature_align(x, boxes)``: the [N, H * W, 5] boxes are read row-major."""
    frm = FeatureRefineModule(in_channels=3, strides=[8, 16])
    with torch.no_grad():
        for conv in (frm.conv_1x5, frm.conv_5x1):
            conv.weight.zero_()
        frm.conv_1x1.weight.copy_(torch.eye(3)[:, :, None, None])
    gen = torch.Generator().manual_seed(1)
    feats = [torch.randn(2, 3, 6, 7, generator=gen), torch.randn(2, 3, 3, 4, generator=gen)]
    boxes = []
    for f, stride in zip(feats, [8, 16]):
        h, w = f.shape[2:]
        b = torch.cat(
            [
                torch.rand(2, h * w, 2, generator=gen) * stride * w,
                torch.rand(2, h * w, 2, generator=gen) * 40 + 4,
                torch.rand(2, h * w, 1, generator=gen) * 180 - 90,
            ],
            dim=2,
        )
        boxes.append(b)
    out = frm(feats, boxes)
    for x, b, y, stride in zip(feats, boxes, out, [8, 16]):
        n, _, h, w = x.shape
        expected = x + rotated_feature_align(x, b.view(n, h, w, 5), 1 / stride)
        torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"2 strides \[8, 16\] but 1 feature levels"):
        frm(feats[:1], boxes[:1])


def test_refinement_stage_matches_with_its_own_thresholds():
    model = build_small_model("r3det")
    gt = Instances(
        (100, 100),
        gt_boxes=RotatedBoxes(torch.tensor([[50.0, 50.0, 40.0, 20.0, 0.0]])),
        gt_classes=torch.tensor([2]),
    )
    # shifted by d along the 40 px side: IoU = (40 - d) / (40 + d): 1.0, 0.575, 0.449, then 0
    boxes = torch.tensor(
        [
            [50.0, 50.0, 40.0, 20.0, 0.0],
            [60.8, 50.0, 40.0, 20.0, 0.0],
            [65.2, 50.0, 40.0, 20.0, 0.0],
            [10.0, 10.0, 8.0, 8.0, 0.0],
        ]
    )
    iou = box_iou_rotated(gt.gt_boxes.tensor, boxes)[0]
    assert 0.55 < iou[1] < 0.6 and 0.4 < iou[2] < 0.5, iou
    first = Matcher(thresholds=[0.4, 0.5], labels=[0, -1, 1], allow_low_quality_matches=True)
    labels_first, _ = model.label_boxes(first, boxes, gt)
    labels_refine, matched = model.label_boxes(model.refine_matchers[0], boxes, gt)
    assert labels_first.tolist() == [2, 2, -1, 3]  # class 2, background = num_classes (3)
    assert labels_refine.tolist() == [2, -1, 3, 3]
    torch.testing.assert_close(matched[0], gt.gt_boxes.tensor[0])


def test_first_stage_matches_anchors_against_enclosing_horizontal_boxes():
    """The overfit test's thin object (35 x 15 px at -50 degrees) and two neighbouring 32 px
    anchors: by rotated IoU the second falls in the ignore band; against the object's enclosing
    horizontal box (34.0 x 36.5 px) it is foreground, still regressed to the rotated box."""
    model = build_small_model("r3det")
    assert model.assign_by_circumhbbox  # the config's setting (MMRotate 0.x's)
    gt = Instances(
        (128, 128),
        gt_boxes=RotatedBoxes(torch.tensor([[90.0, 85.0, 35.0, 15.0, -50.0]])),
        gt_classes=torch.tensor([1]),
    )
    anchors = torch.tensor(
        [
            [88.0, 88.0, 32.0, 32.0, 0.0],
            [88.0, 80.0, 32.0, 32.0, 0.0],
            [20.0, 20.0, 32.0, 32.0, 0.0],
        ]
    )
    rotated_iou = box_iou_rotated(gt.gt_boxes.tensor, anchors)[0]
    torch.testing.assert_close(rotated_iou[:2], torch.tensor([0.460, 0.426]), atol=2e-3, rtol=0)
    # by hand: 35 cos 50 + 15 sin 50 = 33.988 wide, 35 sin 50 + 15 cos 50 = 36.453 tall
    enclosing = torch.tensor([[90.0, 85.0, 33.988, 36.453, 0.0]])
    assert abs(float(box_iou_rotated(enclosing, anchors[1:2])) - 0.6675) < 1e-3
    (labels,), (matched,) = model.label_anchors([anchors], [gt])
    assert labels.tolist() == [1, 1, 3]  # background = num_classes (3)
    torch.testing.assert_close(matched[:2], gt.gt_boxes.tensor.expand(2, 5))
    model.assign_by_circumhbbox = False
    (labels,), _ = model.label_anchors([anchors], [gt])
    assert labels.tolist() == [1, -1, 3]  # the best anchor only as a low-quality match


def _two_stage_cfg(weights):
    cfg = small_model_cfg("r3det")
    for key in ("refine_modules", "refine_heads", "refine_matchers"):
        cfg[key] = [cfg[key][0], copy.deepcopy(cfg[key][0])]
    cfg.stage_loss_weights = weights
    return cfg


def test_two_refinement_stages_and_their_loss_weights():
    batch = make_batch(96)
    with single_thread():
        losses = {}
        for weights in ([1.0, 1.0], [1.0, 0.5]):
            torch.manual_seed(0)
            model = instantiate(_two_stage_cfg(weights)).train()
            losses[weights[1]] = model(batch)
        assert set(losses[1.0]) == {
            "loss_cls",
            "loss_box_reg",
            "loss_refine0_cls",
            "loss_refine0_box_reg",
            "loss_refine1_cls",
            "loss_refine1_box_reg",
        }
        for key, value in losses[1.0].items():
            factor = 0.5 if key.startswith("loss_refine1") else 1.0
            torch.testing.assert_close(losses[0.5][key], factor * value)
        assert float(losses[1.0]["loss_refine1_box_reg"]) > 0  # stage 1 has foreground
        model.eval()
        model.test_score_thresh = 0.0
        with torch.no_grad():
            out = model(make_batch(96, with_gt=False))
    assert all(len(o["instances"]) > 0 for o in out)


def test_refined_boxes_are_detached_from_the_first_stage():
    """The refinement losses train the backbone and the refinement stage, not the first stage's
    box regression (the boxes are passed on detached, as in R3Det)."""
    with single_thread():
        model = build_small_model("r3det").train()
        losses = model(make_batch(96))
        refine = losses["loss_refine0_cls"] + losses["loss_refine0_box_reg"]
        refine.backward()
    assert model.head.bbox_pred.weight.grad is None
    assert model.refine_heads[0].bbox_pred.weight.grad.abs().sum() > 0
    assert model.backbone.fpn_output3.weight.grad.abs().sum() > 0  # through the aligned features


def test_config_errors_name_the_keys():
    cfg = small_model_cfg("r3det")
    bad = copy.deepcopy(cfg)
    bad.refine_heads[0].num_anchors = 9
    with pytest.raises(ValueError, match=r"refine_heads\[0\] must predict one box"):
        instantiate(bad)
    bad = copy.deepcopy(cfg)
    bad.stage_loss_weights = [1.0, 1.0]
    with pytest.raises(ValueError, match="one entry per refinement stage"):
        instantiate(bad)
    bad = copy.deepcopy(cfg)
    bad.refine_modules[0].strides = [8, 16, 32, 64]
    with pytest.raises(ValueError, match=r"refine_modules\[0\]\.strides"):
        instantiate(bad)
    bad = copy.deepcopy(cfg)
    bad.anchor_matcher = L(RotatedATSSAssigner)(topk=9)
    with pytest.raises(ValueError, match="assign_by_circumhbbox=True needs anchor_matcher"):
        instantiate(bad)
    bad = copy.deepcopy(cfg)
    bad.refine_heads[0].num_classes = 5
    with pytest.raises(ValueError, match=r"refine_heads\[0\]\.num_classes=5"):
        instantiate(bad)

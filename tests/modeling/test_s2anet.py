"""S2A-Net specifics: the projected box coder (MMRotate's proj_xy), anchor refinement, the ODM's
per-image anchors, the head's orientation structure, config errors and mixed precision. The
generic detector tests (empty images, overfit, export, configs) cover it through _helpers.py."""

import copy
import math

import pytest
import torch

from rotated_det.config import instantiate
from rotated_det.modeling import Box2BoxTransformRotated
from rotated_det.structures import Instances, RotatedBoxes, pairwise_iou_rotated

from ._helpers import build_small_model, make_batch, single_thread, small_model_cfg


def random_boxes(n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.cat(
        [
            torch.rand(n, 2, generator=g, dtype=torch.float64) * 200,
            torch.rand(n, 2, generator=g, dtype=torch.float64) * 60 + 4,
            torch.rand(n, 1, generator=g, dtype=torch.float64) * 360 - 180,
        ],
        dim=1,
    )


def test_projected_deltas_hand_example_and_round_trip():
    coder = Box2BoxTransformRotated(proj_xy=True)
    src = torch.tensor([[0.0, 0.0, 20.0, 10.0, 90.0]])
    # 20 px up is along the 90-degree source's width axis (cos 90, -sin 90) = (0, -1)
    up = torch.tensor([[0.0, -20.0, 20.0, 10.0, 90.0]])
    deltas = coder.get_deltas(src, up)
    torch.testing.assert_close(deltas, torch.tensor([[1.0, 0.0, 0.0, 0.0, 0.0]]))
    plain = Box2BoxTransformRotated().get_deltas(src, up)
    torch.testing.assert_close(plain, torch.tensor([[0.0, -2.0, 0.0, 0.0, 0.0]]))
    # 45 degrees: 10 px along the height axis (sin 45, cos 45) is dy = 10 / h
    src45 = torch.tensor([[5.0, 5.0, 20.0, 10.0, 45.0]])
    tgt = src45.clone()
    tgt[0, :2] += 10 * torch.tensor([math.sin(math.pi / 4), math.cos(math.pi / 4)])
    torch.testing.assert_close(
        coder.get_deltas(src45, tgt), torch.tensor([[0.0, 1.0, 0.0, 0.0, 0.0]]), atol=1e-6, rtol=0
    )
    # round trip through S2A-Net's coder (le135, angle delta / pi)
    s2a = Box2BoxTransformRotated(
        weights=(1.0, 1.0, 1.0, 1.0, 1 / math.pi), angle_version="le135", proj_xy=True
    )
    src, tgt = random_boxes(200, 0), random_boxes(200, 1)
    back = s2a.apply_deltas(s2a.get_deltas(src, tgt), src)
    iou = pairwise_iou_rotated(RotatedBoxes(back.float()), RotatedBoxes(tgt.float())).diagonal()
    assert iou.min() > 0.999
    # angle-0 sources: projected and plain deltas agree
    src[:, 4] = 0
    torch.testing.assert_close(
        Box2BoxTransformRotated(proj_xy=True).get_deltas(src, tgt),
        Box2BoxTransformRotated().get_deltas(src, tgt),
    )


def test_zero_deltas_refine_to_the_anchors_and_large_ones_are_clamped():
    model = build_small_model("s2anet")
    anchors = torch.tensor([[16.0, 24.0, 32.0, 32.0, 0.0], [40.0, 8.0, 32.0, 32.0, 0.0]])
    refined = model.refine(torch.zeros(2, 2, 5), anchors)
    assert refined.shape == (2, 2, 5)
    torch.testing.assert_close(refined, anchors.expand(2, -1, -1))
    deltas = torch.tensor([[[0.0, 0.0, -50.0, 50.0, 0.0]]])
    side = model.refine(deltas, anchors[:1])[0, 0, 2:4]
    clamp = math.exp(model.refine_scale_clamp)
    assert {round(float(v), 3) for v in side} == {round(32 / clamp, 3), round(32 * clamp, 3)}


def test_odm_labels_follow_each_images_own_anchors():
    """The ODM matches the refined anchors of each image: the same location is foreground in the
    image whose refined anchor lies on the object and background in the other."""
    model = build_small_model("s2anet")
    gt_box = torch.tensor([[50.0, 50.0, 40.0, 12.0, 30.0]])
    gt = [
        Instances((100, 100), gt_boxes=RotatedBoxes(gt_box), gt_classes=torch.tensor([2]))
        for _ in range(2)
    ]
    anchors = torch.tensor([[20.0, 20.0, 16.0, 16.0, 0.0], [80.0, 80.0, 16.0, 16.0, 0.0]])
    anchors = anchors.expand(2, -1, -1).clone()
    anchors[0, 1] = gt_box[0] + torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0])  # refined onto it
    labels, matched = model.label_anchors(model.odm_matcher, anchors, gt)
    assert labels[0].tolist() == [3, 2]  # K = 3 is background
    # image 1: nothing overlaps, and no low-quality match from zero IoU
    assert labels[1].tolist() == [3, 3]
    torch.testing.assert_close(matched[0, 1], gt_box[0])


def test_head_shapes_and_orientation_channels():
    model = build_small_model("s2anet")
    head = model.head
    assert head.or_conv.out_channels * 8 == 64  # C / N filters x N orientations
    assert head.cls_subnet[0].in_channels == 8  # pooled: one channel per filter
    assert head.bbox_subnet[0].in_channels == 64
    feats = [torch.randn(2, 64, 6, 5), torch.randn(2, 64, 3, 3)]
    logits, deltas = head.alignment(feats)
    assert [tuple(x.shape) for x in logits] == [(2, 3, 6, 5), (2, 3, 3, 3)]
    boxes = [torch.rand(2, 30, 5) * 40 + 1, torch.rand(2, 9, 5) * 40 + 1]
    logits, deltas = head.detection(feats, boxes, [8, 16])
    assert [tuple(x.shape) for x in deltas] == [(2, 5, 6, 5), (2, 5, 3, 3)]


def test_config_errors_name_the_key():
    cfg = small_model_cfg("s2anet")
    bad = copy.deepcopy(cfg)
    bad.anchor_generator.aspect_ratios = [1.0, 0.5]
    with pytest.raises(ValueError, match=r"ONE anchor per location.*\[2, 2, 2, 2, 2\]"):
        instantiate(bad)
    bad = copy.deepcopy(cfg)
    bad.head.num_orientations = 3
    with pytest.raises(ValueError, match="in_channels=64 must be a multiple of num_orientations=3"):
        instantiate(bad)
    bad = copy.deepcopy(cfg)
    bad.head_in_features = ["p3", "p4"]
    with pytest.raises(ValueError, match="anchor_generator.strides"):
        instantiate(bad)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_training_step_under_autocast(dtype):
    """Half activations (the alignment convolution runs in float32 inside): finite losses within
    10% of float32, gradients everywhere."""
    batch = make_batch(96)
    with single_thread():
        model = build_small_model("s2anet").train()
        torch.manual_seed(1)
        ref = {k: v.item() for k, v in copy.deepcopy(model)(batch).items()}
        m = copy.deepcopy(model)
        with torch.autocast("cpu", dtype=dtype):
            losses = m(batch)
        sum(losses.values()).backward()
        for k, v in losses.items():
            assert v.dtype == torch.float32 and math.isfinite(v.item()), k
            assert abs(v.item() - ref[k]) <= 0.1 * abs(ref[k]) + 1e-3, (k, v.item(), ref[k])
        missing = [n for n, p in m.named_parameters() if p.requires_grad and p.grad is None]
        assert not missing, missing
        m.eval()
        m.test_score_thresh = 0.005  # the classifiers start at the 0.01 prior
        with torch.no_grad(), torch.autocast("cpu", dtype=dtype):
            inst = m(make_batch(96, with_gt=False))[0]["instances"]
        assert len(inst) > 0 and inst.pred_boxes.tensor.dtype == torch.float32

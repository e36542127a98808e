"""The horizontal RPN's angle-0 proposals and the heads that start from them: their rotated NMS is
horizontal NMS, their ROIAlignRotated features are torchvision's aligned RoIAlign, and
RROIHeads(match_bounding_boxes=True) labels them by the ground truth's bounding boxes."""

import torch
import torchvision

from rotated_det.layers import ShapeSpec, batched_nms_rotated
from rotated_det.modeling import (
    RPN,
    Box2BoxTransform,
    Box2BoxTransformRotated,
    DefaultAnchorGenerator,
    FastRCNNConvFCHead,
    Matcher,
    ROIPooler,
    RotatedFastRCNNOutputLayers,
    RROIHeads,
    StandardRPNHead,
)
from rotated_det.structures import ImageList, Instances, RotatedBoxes, hbox_to_rbox, rbox_to_hbox


def _random_hboxes(n: int, seed: int, size: float = 200.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size
    wh = 4 + torch.rand(n, 2, generator=g) * 60
    return torch.cat([xy, xy + wh], dim=1)


def test_hbox_to_rbox_inverts_rbox_to_hbox():
    boxes = _random_hboxes(100, seed=0)
    rboxes = hbox_to_rbox(boxes)
    assert torch.equal(rboxes[:, 4], torch.zeros(100))
    torch.testing.assert_close(rbox_to_hbox(rboxes), boxes, atol=1e-4, rtol=0)  # float32 rounding
    torch.testing.assert_close(hbox_to_rbox(boxes.numpy()), rboxes.numpy())  # numpy in, numpy out
    hand = hbox_to_rbox(torch.tensor([[10.0, 20.0, 50.0, 30.0]]))
    assert hand.tolist() == [[30.0, 25.0, 40.0, 10.0, 0.0]]


def test_rotated_nms_of_angle_0_boxes_is_horizontal_nms():
    boxes = _random_hboxes(300, seed=1)
    scores = torch.rand(300, generator=torch.Generator().manual_seed(2))
    groups = torch.randint(0, 3, (300,), generator=torch.Generator().manual_seed(3))
    for thr in (0.3, 0.7):
        rotated = batched_nms_rotated(hbox_to_rbox(boxes), scores, groups, thr)
        horizontal = torchvision.ops.batched_nms(boxes, scores, groups, thr)
        assert torch.equal(rotated, horizontal)


def test_roi_align_rotated_of_angle_0_boxes_is_aligned_roi_align():
    g = torch.Generator().manual_seed(4)
    features = [torch.randn(2, 8, 64, 64, generator=g), torch.randn(2, 8, 32, 32, generator=g)]
    boxes = [_random_hboxes(20, seed=5, size=180), _random_hboxes(15, seed=6, size=180)]
    for sampling_ratio in (0, 2):
        rotated = ROIPooler(7, [1 / 4, 1 / 8], sampling_ratio, "ROIAlignRotated")
        horizontal = ROIPooler(7, [1 / 4, 1 / 8], sampling_ratio, "ROIAlignV2")
        a = rotated(features, [hbox_to_rbox(b) for b in boxes])
        b = horizontal(features, boxes)
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)  # sample positions rounded differently


def _rpn() -> RPN:
    return RPN(
        in_features=["p3"],
        head=StandardRPNHead(in_channels=4, num_anchors=1, box_dim=4),
        anchor_generator=DefaultAnchorGenerator(
            sizes=[[32]], aspect_ratios=[1.0], strides=[8], offset=0.5
        ),
        anchor_matcher=Matcher([0.3, 0.7], [0, -1, 1], allow_low_quality_matches=True),
        box2box_transform=Box2BoxTransform((1.0, 1.0, 1.0, 1.0)),
        pre_nms_topk=50,
        post_nms_topk=20,
    )


def test_rpn_proposals_are_decoded_horizontal_boxes_at_angle_0():
    rpn = _rpn().eval()
    anchors = torch.tensor([[10.0, 20.0, 42.0, 52.0]])
    deltas = torch.tensor([[0.25, -0.5, 0.0, 0.6931472]])  # centre (34, 20), 32 x 64
    decoded = rpn._decode(deltas, anchors)
    torch.testing.assert_close(decoded, torch.tensor([[34.0, 20.0, 32.0, 64.0, 0.0]]))


def test_rpn_regresses_the_bounding_box_of_rotated_ground_truth():
    """One anchor per cell; the loss of the anchor that matches a 45-degree box is the smooth L1
    distance of its deltas to the Box2BoxTransform deltas of the box's bounding box."""
    torch.manual_seed(0)
    rpn = _rpn().train()
    features = {"p3": torch.zeros(1, 4, 8, 8)}  # zero features: head outputs are its biases
    bias = torch.tensor([0.1, -0.2, 0.05, 0.3])
    with torch.no_grad():
        rpn.rpn_head.anchor_deltas.bias.copy_(bias)
    gt = Instances(
        (64, 64), gt_boxes=RotatedBoxes(torch.tensor([[36.0, 36.0, 22.627, 22.627, 45.0]]))
    )
    _, losses = rpn(ImageList(torch.zeros(1, 3, 64, 64), [(64, 64)]), features, [gt])
    # anchor at cell (4, 4): centre (36, 36), 32 x 32; the bounding box is 32 x 32 at (36, 36)
    # (IoU 1 with that anchor, the only foreground): deltas target 0
    expected = torch.nn.functional.smooth_l1_loss(bias, torch.zeros(4), beta=0.0, reduction="sum")
    torch.testing.assert_close(
        losses["loss_rpn_loc"] * rpn.batch_size_per_image, expected, atol=1e-3, rtol=1e-3
    )


def _roi_heads(match_bounding_boxes: bool) -> RROIHeads:
    return RROIHeads(
        num_classes=2,
        box_in_features=["p2"],
        box_pooler=ROIPooler(7, [1 / 4], 0, "ROIAlignRotated"),
        box_head=FastRCNNConvFCHead(ShapeSpec(channels=4, height=7, width=7), fc_dims=[16]),
        box_predictor=RotatedFastRCNNOutputLayers(
            16,
            box2box_transform=Box2BoxTransformRotated((10.0, 10.0, 5.0, 5.0, 1.0)),
            num_classes=2,
        ),
        proposal_matcher=Matcher([0.5], [0, 1]),
        batch_size_per_image=64,
        positive_fraction=1.0,
        match_bounding_boxes=match_bounding_boxes,
    )


def test_match_bounding_boxes_labels_proposals_by_horizontal_iou():
    """A thin box at 45 degrees and its bounding box as the proposal: horizontal IoU 1 (so
    foreground, regressing the rotated box), rotated IoU about 0.29 (background)."""
    gt_box = torch.tensor([[50.0, 50.0, 60.0, 15.0, 45.0]])
    targets = [Instances((100, 100), gt_boxes=RotatedBoxes(gt_box), gt_classes=torch.tensor([1]))]
    proposal = Instances((100, 100))
    proposal.proposal_boxes = RotatedBoxes(hbox_to_rbox(rbox_to_hbox(gt_box)))
    proposal.objectness_logits = torch.zeros(1)
    for match_bounding_boxes, appended_box, label in (
        (True, proposal.proposal_boxes.tensor, 1),
        (False, gt_box, 2),
    ):
        heads = _roi_heads(match_bounding_boxes).train()
        heads.proposal_append_gt = False
        (sampled,) = heads.label_and_sample_proposals([proposal], targets)
        assert sampled.gt_classes.tolist() == [label]
        if label == 1:
            assert torch.equal(sampled.gt_boxes.tensor, gt_box)
        heads.proposal_append_gt = True
        (sampled,) = heads.label_and_sample_proposals([proposal], targets)
        appended = sampled.proposal_boxes.tensor[sampled.objectness_logits > 20]
        torch.testing.assert_close(appended, appended_box)

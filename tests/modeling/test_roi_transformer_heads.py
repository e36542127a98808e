"""RoITransformerROIHeads: hand-worked cascade at inference (the RRoI learner's angle becomes the
rotated RoI, class logits of the two stages are averaged), per-stage loss weights, and the
learner's appended ground truth kept out of the rotated stage."""

import math

import pytest
import torch

from rotated_det.layers import ShapeSpec
from rotated_det.modeling import (
    Box2BoxTransformRotated,
    FastRCNNConvFCHead,
    Matcher,
    ROIPooler,
    RoITransformerROIHeads,
    RotatedFastRCNNOutputLayers,
    RotatedRoIPredictor,
    RROIHeads,
)
from rotated_det.modeling.proposal_generator.proposal_utils import GT_PROPOSAL_LOGIT
from rotated_det.structures import ImageList, Instances, RotatedBoxes

ANGLE_WEIGHT = 1.0 / (2 * math.pi)  # the learner's angle weight (MMRotate: angle / (2 pi))


def _heads(stage_loss_weights=(1.0, 1.0)) -> RoITransformerROIHeads:
    torch.manual_seed(0)

    def stage_parts(sampling_ratio):
        return dict(
            box_in_features=["p2"],
            box_pooler=ROIPooler(7, [1 / 4], sampling_ratio, "ROIAlignRotated"),
            box_head=FastRCNNConvFCHead(ShapeSpec(channels=4, height=7, width=7), fc_dims=[8]),
            proposal_matcher=Matcher([0.5], [0, 1]),
            batch_size_per_image=64,
            positive_fraction=0.25,
        )

    learner = RROIHeads(
        num_classes=2,
        box_predictor=RotatedRoIPredictor(
            8,
            box2box_transform=Box2BoxTransformRotated(
                (10.0, 10.0, 5.0, 5.0, ANGLE_WEIGHT), angle_version="le90", edge_swap=True
            ),
            num_classes=2,
            cls_agnostic_bbox_reg=True,
            smooth_l1_beta=1.0,
        ),
        match_bounding_boxes=True,
        **stage_parts(0),
    )
    return RoITransformerROIHeads(
        rroi_learner=learner,
        stage_loss_weights=stage_loss_weights,
        num_classes=2,
        box_predictor=RotatedFastRCNNOutputLayers(
            8,
            box2box_transform=Box2BoxTransformRotated(
                (20.0, 20.0, 10.0, 10.0, 2.0), angle_version="le90", edge_swap=True
            ),
            num_classes=2,
            test_score_thresh=0.05,
            test_nms_thresh=0.1,
            smooth_l1_beta=1.0,
        ),
        **stage_parts(2),
    )


def _proposals(boxes) -> list[Instances]:
    p = Instances((96, 96))
    p.proposal_boxes = RotatedBoxes(torch.tensor(boxes, dtype=torch.float32))
    p.objectness_logits = torch.zeros(len(boxes))
    return [p]


def _features():
    return {"p2": torch.randn(1, 4, 24, 24, generator=torch.Generator().manual_seed(1))}


def test_inference_hand_worked_cascade():
    """Predictors with zero weights output their biases: the learner turns the angle-0 proposal
    (40, 30, 40, 20, 0) by 30 degrees (delta (pi / 6) / (2 pi) = 1 / 12), the rotated stage keeps
    that box, and the class probabilities are the softmax of the mean of the stages' logits
    (1, 0, 0) and (3, -1, 0): (2, -0.5, 0)."""
    heads = _heads().eval()
    learner = heads.rroi_learner.box_predictor
    final = heads.box_predictor
    with torch.no_grad():
        for layer in (learner.cls_score, learner.bbox_pred, final.cls_score, final.bbox_pred):
            layer.weight.zero_()
            layer.bias.zero_()
        learner.bbox_pred.bias[4] = 1.0 / 12
        learner.cls_score.bias.copy_(torch.tensor([1.0, 0.0, 0.0]))
        final.cls_score.bias.copy_(torch.tensor([3.0, -1.0, 0.0]))
    images = ImageList(torch.zeros(1, 3, 96, 96), [(96, 96)])
    with torch.no_grad():
        (det,), _ = heads(images, _features(), _proposals([[40.0, 30.0, 40.0, 20.0, 0.0]]))
    logits = torch.tensor([2.0, -0.5, 0.0])
    probs = torch.softmax(logits, 0)
    assert det.pred_classes.tolist() == [0, 1]
    torch.testing.assert_close(det.scores, probs[:2], atol=1e-6, rtol=0)
    expected = torch.tensor([[40.0, 30.0, 40.0, 20.0, 30.0]] * 2)
    torch.testing.assert_close(det.pred_boxes.tensor, expected, atol=1e-4, rtol=0)


def _train_losses(heads, spy=None):
    targets = [
        Instances(
            (96, 96),
            gt_boxes=RotatedBoxes(torch.tensor([[40.0, 30.0, 40.0, 20.0, 30.0]])),
            gt_classes=torch.tensor([1]),
        )
    ]
    proposals = _proposals(
        [
            [40.0, 30.0, 44.0, 30.0, 0.0],
            [42.0, 28.0, 40.0, 26.0, 0.0],
            [70.0, 70.0, 20.0, 20.0, 0.0],
        ]
    )
    images = ImageList(torch.zeros(1, 3, 96, 96), [(96, 96)])
    torch.manual_seed(0)  # the same sampling in every call
    _, losses = heads.train()(images, _features(), proposals, targets)
    return losses


def test_stage_loss_weights_scale_each_stage():
    plain = _train_losses(_heads((1.0, 1.0)))
    assert set(plain) == {"loss_rroi_cls", "loss_rroi_box_reg", "loss_cls", "loss_box_reg"}
    assert all(v > 0 for v in plain.values()), plain
    weighted = _train_losses(_heads((2.0, 0.5)))
    for name, value in plain.items():
        factor = 2.0 if name.startswith("loss_rroi") else 0.5
        torch.testing.assert_close(weighted[name], value * factor)


def test_rotated_stage_gets_learner_boxes_without_the_appended_ground_truth():
    heads = _heads()
    seen = {}
    learner_sample = heads.rroi_learner.label_and_sample_proposals
    stage_sample = heads.label_and_sample_proposals

    def learner_spy(proposals, targets):
        seen["learner"] = learner_sample(proposals, targets)
        return seen["learner"]

    def stage_spy(proposals, targets):
        seen["stage"] = proposals
        return stage_sample(proposals, targets)

    heads.rroi_learner.label_and_sample_proposals = learner_spy
    heads.label_and_sample_proposals = stage_spy
    _train_losses(heads)
    (learner_rois,) = seen["learner"]
    (stage_input,) = seen["stage"]
    appended = int((learner_rois.objectness_logits == GT_PROPOSAL_LOGIT).sum())
    assert appended == 1  # the ground truth's bounding box, appended by the learner
    assert len(stage_input) == len(learner_rois) - appended == 3


def test_learner_must_regress_one_box_per_roi():
    heads = _heads()
    bad = heads.rroi_learner
    bad.box_predictor = RotatedRoIPredictor(
        8, box2box_transform=Box2BoxTransformRotated(), num_classes=2
    )  # class-specific
    with pytest.raises(ValueError, match="cls_agnostic_bbox_reg=True"):
        RoITransformerROIHeads(
            rroi_learner=bad,
            num_classes=2,
            box_in_features=["p2"],
            box_pooler=heads.box_pooler,
            box_head=heads.box_head,
            box_predictor=heads.box_predictor,
            proposal_matcher=heads.proposal_matcher,
        )

"""GlidingVertexOutputLayers: hand-worked losses (smooth L1 per term, obliquity weight 16) and
detections that are the glided rectangle or, above the obliquity threshold, the bounding box."""

import math

import pytest
import torch

from rotated_det.modeling import GlidingVertexCoder, GlidingVertexOutputLayers
from rotated_det.structures import Instances, RotatedBoxes

# The rectangle with corners (0, 10), (20, 0), (26, 12), (6, 22) (see test_gliding_vertex_coder)
HAND_BOX = (13.0, 11.0, math.sqrt(500.0), math.sqrt(180.0), math.degrees(math.atan2(10, 20)))
GLIDES = [20 / 26, 12 / 22, 20 / 26, 12 / 22]
OBLIQUITY = 300 / (26 * 22)


def _predictor() -> GlidingVertexOutputLayers:
    predictor = GlidingVertexOutputLayers(
        8,
        box2box_transform=GlidingVertexCoder(weights=(10.0, 10.0, 5.0, 5.0)),
        num_classes=2,
        test_score_thresh=0.05,
        loss_weight={"loss_obliquity": 16.0},
    )
    with torch.no_grad():  # outputs are the biases: box deltas 0, glides and obliquity 0.5
        for layer in (
            predictor.cls_score,
            predictor.bbox_pred,
            predictor.glide_pred,
            predictor.obliquity_pred,
        ):
            layer.weight.zero_()
            layer.bias.zero_()
    return predictor


def _smooth_l1(d: float, beta: float) -> float:
    d = abs(d)
    return 0.5 * d * d / beta if d < beta else d - 0.5 * beta


def test_hand_worked_losses():
    """Two sampled RoIs: a foreground one at (0, 0, 20, 20) whose target is HAND_BOX (bounding box
    (0, 0, 26, 22)), and a background one. Every loss is summed over the foreground and divided by
    the 2 RoIs."""
    predictor = _predictor()
    rois = Instances((64, 64))
    rois.proposal_boxes = RotatedBoxes(
        torch.tensor([[10.0, 10.0, 20.0, 20.0, 0.0], [40.0, 40.0, 10.0, 10.0, 0.0]])
    )
    rois.gt_classes = torch.tensor([1, 2])
    rois.gt_boxes = RotatedBoxes(torch.tensor([HAND_BOX, [0.0] * 5]))
    losses = predictor.losses(predictor(torch.randn(2, 8)), [rois])
    box_target = [10 * 3 / 20, 10 * 1 / 20, 5 * math.log(26 / 20), 5 * math.log(22 / 20)]
    expected = {
        "loss_cls": math.log(3.0),  # uniform over 2 classes + background
        "loss_box_reg": sum(_smooth_l1(t, 1.0) for t in box_target) / 2,
        "loss_glide": sum(_smooth_l1(0.5 - g, 1 / 3) for g in GLIDES) / 2,
        "loss_obliquity": 16 * _smooth_l1(0.5 - OBLIQUITY, 1 / 3) / 2,
    }
    assert set(losses) == set(expected)
    for name, value in expected.items():
        assert losses[name].item() == pytest.approx(value, rel=1e-5), name


def test_detections_glided_or_horizontal_by_obliquity():
    predictor = _predictor().eval()
    with torch.no_grad():
        predictor.cls_score.bias.copy_(torch.tensor([0.0, 3.0, 0.0]))
        predictor.glide_pred.bias.copy_(torch.logit(torch.tensor(GLIDES)))
    rois = Instances((64, 64))
    rois.proposal_boxes = RotatedBoxes(torch.tensor([[13.0, 11.0, 26.0, 22.0, 0.0]]))
    features = torch.randn(1, 8)
    for obliquity, expected in ((OBLIQUITY, HAND_BOX), (0.9, (13.0, 11.0, 26.0, 22.0, 0.0))):
        with torch.no_grad():
            predictor.obliquity_pred.bias.fill_(math.log(obliquity / (1 - obliquity)))
            (det,), _ = predictor.inference(predictor(features), [rois])
        assert det.pred_classes.tolist() == [1]
        torch.testing.assert_close(
            det.pred_boxes.tensor, torch.tensor([expected]), atol=1e-3, rtol=0
        )


def test_bad_loss_settings_are_named():
    coder = GlidingVertexCoder()
    with pytest.raises(ValueError, match="loss_weight keys"):
        GlidingVertexOutputLayers(8, box2box_transform=coder, num_classes=2, loss_weight={"x": 1})
    with pytest.raises(ValueError, match="smooth_l1_beta keys"):
        GlidingVertexOutputLayers(
            8, box2box_transform=coder, num_classes=2, smooth_l1_beta={"loss_cls": 1.0}
        )
    with pytest.raises(TypeError, match="GlidingVertexCoder"):
        GlidingVertexOutputLayers(8, box2box_transform=object(), num_classes=2)  # type: ignore[arg-type]

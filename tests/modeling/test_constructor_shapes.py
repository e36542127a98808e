"""Constructors that size their layers from a ShapeSpec say which size is missing (ShapeSpec
fields may be None), instead of failing later with a TypeError on None arithmetic."""

import pytest
import torch

from rotated_det.layers import ShapeSpec
from rotated_det.modeling import Box2BoxTransformRotated
from rotated_det.modeling.backbone.backbone import Backbone
from rotated_det.modeling.backbone.fpn import FPN
from rotated_det.modeling.roi_heads.box_head import FastRCNNConvFCHead
from rotated_det.modeling.roi_heads.rotated_fast_rcnn import RotatedFastRCNNOutputLayers


class _UnknownStrideBackbone(Backbone):
    """Outputs "res4" (stride 16) and "res5", whose stride it does not know."""

    def __init__(self) -> None:
        super().__init__()
        self._out_features = ["res4", "res5"]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def output_shape(self) -> dict[str, ShapeSpec]:
        return {"res4": ShapeSpec(channels=8, stride=16), "res5": ShapeSpec(channels=8)}


def test_fpn_names_the_feature_without_a_stride():
    with pytest.raises(ValueError, match="stride and channels of the bottom-up feature 'res5'"):
        FPN(_UnknownStrideBackbone(), ["res4", "res5"], out_channels=16)


def test_box_head_needs_the_pooled_size():
    with pytest.raises(ValueError, match="channels, height and width"):
        FastRCNNConvFCHead(ShapeSpec(channels=8), fc_dims=(32,))
    head = FastRCNNConvFCHead(ShapeSpec(channels=8, height=7, width=7), fc_dims=(32,))
    assert head(torch.zeros(2, 8, 7, 7)).shape == (2, 32)


def test_box_predictor_needs_the_channels():
    coder = Box2BoxTransformRotated(weights=(10.0, 10.0, 5.0, 5.0, 1.0))
    with pytest.raises(ValueError, match="output channels"):
        RotatedFastRCNNOutputLayers(ShapeSpec(), box2box_transform=coder, num_classes=3)
    layers = RotatedFastRCNNOutputLayers(32, box2box_transform=coder, num_classes=3)
    scores, deltas = layers(torch.zeros(4, 32))
    assert scores.shape == (4, 4) and deltas.shape == (4, 15)

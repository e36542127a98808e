from .box_head import FastRCNNConvFCHead
from .gliding_vertex import GlidingVertexOutputLayers
from .roi_transformer_heads import RoITransformerROIHeads
from .rotated_fast_rcnn import (
    RotatedFastRCNNOutputLayers,
    RotatedRoIPredictor,
    fast_rcnn_inference_rotated,
)
from .rotated_roi_heads import RROIHeads

__all__ = [
    "FastRCNNConvFCHead",
    "GlidingVertexOutputLayers",
    "RoITransformerROIHeads",
    "RROIHeads",
    "RotatedFastRCNNOutputLayers",
    "RotatedRoIPredictor",
    "fast_rcnn_inference_rotated",
]

from .box_head import FastRCNNConvFCHead
from .rotated_fast_rcnn import RotatedFastRCNNOutputLayers, fast_rcnn_inference_rotated
from .rotated_roi_heads import RROIHeads

__all__ = [
    "FastRCNNConvFCHead",
    "RROIHeads",
    "RotatedFastRCNNOutputLayers",
    "fast_rcnn_inference_rotated",
]

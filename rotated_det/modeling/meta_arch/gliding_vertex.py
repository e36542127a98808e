"""Gliding Vertex (Xu et al., TPAMI 2020): a horizontal RPN, then RoI heads that predict each
object's bounding box, the glides of its vertices along it and its obliquity."""

from torch import nn

from ..proposal_generator.rpn import RPN
from ..roi_heads.gliding_vertex import GlidingVertexOutputLayers
from ..roi_heads.rotated_roi_heads import RROIHeads
from .rcnn import GeneralizedRCNN

__all__ = ["GlidingVertex"]


class GlidingVertex(GeneralizedRCNN):
    """GeneralizedRCNN whose proposal generator is an RPN (horizontal anchors and proposals) and
    whose RoI heads are RROIHeads matching proposals to the ground truth's bounding boxes
    (``match_bounding_boxes=True``) with a GlidingVertexOutputLayers predictor. Arguments,
    inputs and outputs are those of GeneralizedRCNN."""

    def __init__(self, *, proposal_generator: nn.Module, roi_heads: nn.Module, **kwargs):
        if not isinstance(proposal_generator, RPN):
            raise TypeError(
                "GlidingVertex needs an RPN proposal_generator (horizontal proposals), got "
                f"{type(proposal_generator).__name__}"
            )
        if not (
            isinstance(roi_heads, RROIHeads)
            and isinstance(roi_heads.box_predictor, GlidingVertexOutputLayers)
            and roi_heads.match_bounding_boxes
        ):
            raise TypeError(
                "GlidingVertex needs RROIHeads with match_bounding_boxes=True and a "
                "GlidingVertexOutputLayers box_predictor"
            )
        super().__init__(proposal_generator=proposal_generator, roi_heads=roi_heads, **kwargs)

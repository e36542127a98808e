"""RoI Transformer (Ding et al., CVPR 2019): a horizontal RPN, then a cascade of an RRoI
learner and rotated RoI heads."""

from torch import nn

from ..proposal_generator.rpn import RPN
from ..roi_heads.roi_transformer_heads import RoITransformerROIHeads
from .rcnn import GeneralizedRCNN

__all__ = ["RoITransformer"]


class RoITransformer(GeneralizedRCNN):
    """GeneralizedRCNN whose proposal generator is an RPN (horizontal anchors and proposals) and
    whose RoI heads are RoITransformerROIHeads. Arguments, inputs and outputs are those of
    GeneralizedRCNN."""

    def __init__(self, *, proposal_generator: nn.Module, roi_heads: nn.Module, **kwargs):
        if not isinstance(proposal_generator, RPN):
            raise TypeError(
                "RoITransformer needs an RPN proposal_generator (horizontal proposals), got "
                f"{type(proposal_generator).__name__}"
            )
        if not isinstance(roi_heads, RoITransformerROIHeads):
            raise TypeError(
                f"RoITransformer needs RoITransformerROIHeads, got {type(roi_heads).__name__}"
            )
        super().__init__(proposal_generator=proposal_generator, roi_heads=roi_heads, **kwargs)

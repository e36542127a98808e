"""Oriented R-CNN (Xie et al. 2021): an oriented RPN followed by rotated RoI heads."""

from torch import nn

from ..proposal_generator.oriented_rpn import OrientedRPN
from .rcnn import GeneralizedRCNN

__all__ = ["OrientedRCNN"]


class OrientedRCNN(GeneralizedRCNN):
    """GeneralizedRCNN whose proposal generator is an OrientedRPN (horizontal anchors,
    midpoint-offset proposals) and whose RoI heads are RROIHeads. Arguments, inputs and outputs
    are those of GeneralizedRCNN."""

    def __init__(self, *, proposal_generator: nn.Module, **kwargs):
        if not isinstance(proposal_generator, OrientedRPN):
            raise TypeError(
                "OrientedRCNN needs an OrientedRPN proposal_generator, got "
                f"{type(proposal_generator).__name__}"
            )
        super().__init__(proposal_generator=proposal_generator, **kwargs)

"""ReDet (Han et al., CVPR 2021): RoI Transformer on rotation-equivariant features, whose rotated
stage pools rotation-invariant RoI features with RiRoIAlign."""

from torch import nn

from rotated_det.modeling import RoITransformer

__all__ = ["ReDet"]


class ReDet(RoITransformer):
    """A RoITransformer whose backbone yields regular C_N feature maps (``ReFPN`` on
    ``ReResNet``) and whose rotated RoI stage pools them with ``RiRoIAlignRotated``: bilinear
    samples on the RoI's rotated grid, with each field's N orientation channels rolled (and
    interpolated between neighbours) by the RoI angle, so that the pooled features do not change
    when the object turns. The horizontal RPN and the RRoI learner read the same maps as plain
    channels. Arguments, inputs and outputs are those of RoITransformer (GeneralizedRCNN).

    Raises ValueError when the backbone's ``num_orientations`` and the rotated stage pooler's
    differ, or when that pooler does not align orientations.
    """

    def __init__(self, *, backbone: nn.Module, roi_heads: nn.Module, **kwargs) -> None:
        super().__init__(backbone=backbone, roi_heads=roi_heads, **kwargs)
        orientations = getattr(backbone, "num_orientations", None)
        if not isinstance(orientations, int):
            raise ValueError(
                "ReDet needs a backbone of regular C_N feature maps with a num_orientations "
                f"attribute (ReFPN), got {type(backbone).__name__}"
            )
        poolers = list(getattr(roi_heads.box_pooler, "level_poolers", []))
        values = [getattr(p, "num_orientations", None) for p in poolers]
        if not poolers or any(v is None for v in values):
            raise ValueError(
                "ReDet: roi_heads.box_pooler must pool with RiRoIAlignRotated "
                "(pooler_type='RiRoIAlignRotated'), the rotation-invariant RoI align"
            )
        pooled = sorted({int(v) for v in values if v is not None})
        if pooled != [orientations]:
            raise ValueError(
                f"ReDet: roi_heads.box_pooler aligns {pooled} orientations but the "
                f"backbone's features have num_orientations={orientations}"
            )

"""ShapeSpec: the shape of a feature map passed between modules."""

from dataclasses import dataclass


@dataclass(frozen=True)
class ShapeSpec:
    """Describes a feature map: channels, spatial size in pixels of the map, and stride.

    Attributes:
        channels: number of channels C.
        height, width: spatial size (may be None when unknown until an image is seen).
        stride: the map's stride with respect to the input image, in input pixels per cell.
    """

    channels: int | None = None
    height: int | None = None
    width: int | None = None
    stride: int | None = None

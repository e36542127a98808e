"""Abstract base class of all backbones."""

from abc import ABCMeta, abstractmethod

import torch
from torch import nn

from rotated_det.layers.shape_spec import ShapeSpec

__all__ = ["Backbone"]


class Backbone(nn.Module, metaclass=ABCMeta):
    """A network that maps an image batch ``[N, 3, H, W]`` to named feature maps.

    Subclasses set ``_out_features`` (names, e.g. ``["p2", ..., "p6"]``),
    ``_out_feature_channels`` and ``_out_feature_strides`` (dicts by name).
    """

    _out_features: list[str]
    _out_feature_channels: dict[str, int]
    _out_feature_strides: dict[str, int]

    @abstractmethod
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return ``{name: [N, C_name, H / stride_name, W / stride_name]}``."""

    @property
    def size_divisibility(self) -> int:
        """Input height and width must be multiples of this (0: no constraint)."""
        return 0

    def output_shape(self) -> dict[str, ShapeSpec]:
        """Channels and stride of each output feature, by name."""
        return {
            name: ShapeSpec(
                channels=self._out_feature_channels[name],
                stride=self._out_feature_strides[name],
            )
            for name in self._out_features
        }

"""ResNet backbones (ResNet-18/34/50/101) with Detectron2's module names.

Module names follow the MSRA / Detectron2 layout (``stem.conv1``, ``res2.0.conv1``,
``res2.0.shortcut``, each conv holding its ``norm``) so that checkpoints in that layout load
directly; :mod:`rotated_det.checkpoint.resnet_conversion` maps torchvision and MSRA names
onto it.
"""

from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

from rotated_det.layers.batch_norm import FrozenBatchNorm2d, get_norm
from rotated_det.layers.shape_spec import ShapeSpec
from rotated_det.layers.wrappers import Conv2d

from .backbone import Backbone

__all__ = [
    "BasicBlock",
    "BottleneckBlock",
    "BasicStem",
    "ResNet",
    "build_resnet_backbone",
    "RESNET_BLOCKS_PER_STAGE",
]

RESNET_BLOCKS_PER_STAGE = {
    18: [2, 2, 2, 2],
    34: [3, 4, 6, 3],
    50: [3, 4, 6, 3],
    101: [3, 4, 23, 3],
    152: [3, 8, 36, 3],
}


def _init_conv(conv: nn.Conv2d) -> None:
    # He initialisation (fan_out) for convs followed by ReLU, zero bias.
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class CNNBlockBase(nn.Module):
    """A block with known ``in_channels``, ``out_channels`` and ``stride`` that can be frozen."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride

    def freeze(self) -> "CNNBlockBase":
        """Stop gradients to all parameters and turn batch norms into FrozenBatchNorm2d."""
        for p in self.parameters():
            p.requires_grad = False
        FrozenBatchNorm2d.convert_frozen_batchnorm(self)
        return self


class BasicBlock(CNNBlockBase):
    """Two 3x3 convs with a residual connection (ResNet-18/34).

    Input ``[N, in_channels, H, W]`` -> output ``[N, out_channels, H / stride, W / stride]``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, stride: int = 1, norm="BN"):
        super().__init__(in_channels, out_channels, stride)
        if in_channels != out_channels or stride != 1:
            self.shortcut: Conv2d | None = Conv2d(
                in_channels,
                out_channels,
                1,
                stride=stride,
                bias=False,
                norm=get_norm(norm, out_channels),
            )
        else:
            self.shortcut = None
        self.conv1 = Conv2d(
            in_channels,
            out_channels,
            3,
            stride=stride,
            padding=1,
            bias=False,
            norm=get_norm(norm, out_channels),
        )
        self.conv2 = Conv2d(
            out_channels,
            out_channels,
            3,
            stride=1,
            padding=1,
            bias=False,
            norm=get_norm(norm, out_channels),
        )
        for layer in (self.conv1, self.conv2, self.shortcut):
            if layer is not None:
                _init_conv(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self.conv1(x))
        out = self.conv2(out)
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return F.relu_(out + shortcut)


class BottleneckBlock(CNNBlockBase):
    """1x1 reduce, 3x3, 1x1 expand convs with a residual connection (ResNet-50/101).

    Args:
        bottleneck_channels: channels of the 3x3 conv.
        stride_in_1x1: put the stride on the first 1x1 conv (MSRA / Caffe2 models) instead of the
            3x3 conv (torchvision models).
        num_groups, dilation: of the 3x3 conv.

    Input ``[N, in_channels, H, W]`` -> output ``[N, out_channels, H / stride, W / stride]``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        bottleneck_channels: int,
        stride: int = 1,
        num_groups: int = 1,
        norm="BN",
        stride_in_1x1: bool = False,
        dilation: int = 1,
    ):
        super().__init__(in_channels, out_channels, stride)
        if in_channels != out_channels or stride != 1:
            self.shortcut: Conv2d | None = Conv2d(
                in_channels,
                out_channels,
                1,
                stride=stride,
                bias=False,
                norm=get_norm(norm, out_channels),
            )
        else:
            self.shortcut = None
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = Conv2d(
            in_channels,
            bottleneck_channels,
            1,
            stride=stride_1x1,
            bias=False,
            norm=get_norm(norm, bottleneck_channels),
        )
        self.conv2 = Conv2d(
            bottleneck_channels,
            bottleneck_channels,
            3,
            stride=stride_3x3,
            padding=dilation,
            bias=False,
            groups=num_groups,
            dilation=dilation,
            norm=get_norm(norm, bottleneck_channels),
        )
        self.conv3 = Conv2d(
            bottleneck_channels, out_channels, 1, bias=False, norm=get_norm(norm, out_channels)
        )
        for layer in (self.conv1, self.conv2, self.conv3, self.shortcut):
            if layer is not None:
                _init_conv(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self.conv1(x))
        out = F.relu_(self.conv2(out))
        out = self.conv3(out)
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return F.relu_(out + shortcut)


class BasicStem(CNNBlockBase):
    """7x7 stride-2 conv, norm, ReLU and 3x3 stride-2 max pool: stride 4 overall.

    Input ``[N, in_channels, H, W]`` -> ``[N, out_channels, ceil(H / 4), ceil(W / 4)]``.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 64, norm="BN"):
        super().__init__(in_channels, out_channels, 4)
        self.conv1 = Conv2d(
            in_channels,
            out_channels,
            7,
            stride=2,
            padding=3,
            bias=False,
            norm=get_norm(norm, out_channels),
        )
        _init_conv(self.conv1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu_(self.conv1(x))
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


class ResNet(Backbone):
    """ResNet as a Backbone; outputs any of "stem", "res2", ..., "res5".

    Args:
        stem: a BasicStem.
        stages: list of stages, each a list of blocks; stage i is named "res{i + 2}".
        out_features: names of the outputs to return.
        freeze_at: number of leading parts to freeze: 0 none, 1 the stem, 2 stem + res2, ...
    """

    def __init__(
        self,
        stem: CNNBlockBase,
        stages: list[list[CNNBlockBase]],
        out_features: list[str] | tuple[str, ...] = ("res5",),
        freeze_at: int = 0,
    ):
        super().__init__()
        self.stem = stem
        current_stride = stem.stride
        self._out_feature_strides = {"stem": current_stride}
        self._out_feature_channels = {"stem": stem.out_channels}
        self.stage_names: list[str] = []
        self.stages: list[nn.Sequential] = []
        out_features = list(out_features)
        known = ["stem"] + [f"res{i + 2}" for i in range(len(stages))]
        for name in out_features:
            if name not in known:
                raise ValueError(f"ResNet out_features has {name!r}; available: {known}")
        num_stages = max(known.index(f) for f in out_features)
        for i, blocks in enumerate(stages[:num_stages]):
            if len(blocks) == 0:
                raise ValueError(f"ResNet stage res{i + 2} has no blocks")
            name = f"res{i + 2}"
            stage = nn.Sequential(*blocks)
            self.add_module(name, stage)
            self.stage_names.append(name)
            self.stages.append(stage)
            for block in blocks:
                current_stride *= block.stride
            self._out_feature_strides[name] = current_stride
            self._out_feature_channels[name] = blocks[-1].out_channels
        self._out_features = out_features
        self.freeze(freeze_at)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``x``: ``[N, C, H, W]`` image batch; returns ``{name: feature map}``."""
        if x.dim() != 4:
            raise ValueError(f"ResNet takes [N, C, H, W] inputs, got shape {tuple(x.shape)}")
        outputs = {}
        x = self.stem(x)
        if "stem" in self._out_features:
            outputs["stem"] = x
        for name, stage in zip(self.stage_names, self.stages):
            x = stage(x)
            if name in self._out_features:
                outputs[name] = x
        return outputs

    def output_shape(self) -> dict[str, ShapeSpec]:
        return {
            name: ShapeSpec(
                channels=self._out_feature_channels[name], stride=self._out_feature_strides[name]
            )
            for name in self._out_features
        }

    def freeze(self, freeze_at: int = 0) -> "ResNet":
        """Freeze the stem (``freeze_at >= 1``) and the first ``freeze_at - 1`` stages."""
        if freeze_at >= 1:
            self.stem.freeze()
        for idx, stage in enumerate(self.stages, start=2):
            if freeze_at >= idx:
                for block in stage.children():
                    cast(CNNBlockBase, block).freeze()
        return self

    @staticmethod
    def make_stage(
        block_class,
        num_blocks: int,
        *,
        in_channels: int,
        out_channels: int,
        first_stride: int,
        **kwargs,
    ) -> list[CNNBlockBase]:
        """Blocks of one stage; only the first block has stride ``first_stride``."""
        blocks = []
        for i in range(num_blocks):
            blocks.append(
                block_class(
                    in_channels=in_channels,
                    out_channels=out_channels,
                    stride=first_stride if i == 0 else 1,
                    **kwargs,
                )
            )
            in_channels = out_channels
        return blocks

    @staticmethod
    def make_default_stages(
        depth: int,
        *,
        norm="FrozenBN",
        num_groups: int = 1,
        width_per_group: int = 64,
        stride_in_1x1: bool = True,
        res5_dilation: int = 1,
        stem_out_channels: int = 64,
    ) -> list[list[CNNBlockBase]]:
        """The four stages (res2..res5) of a standard ResNet of ``depth`` 18/34/50/101/152."""
        if depth not in RESNET_BLOCKS_PER_STAGE:
            raise ValueError(
                f"ResNet depth {depth} is not supported; use one of "
                f"{sorted(RESNET_BLOCKS_PER_STAGE)}"
            )
        num_blocks = RESNET_BLOCKS_PER_STAGE[depth]
        stages = []
        if depth in (18, 34):
            if res5_dilation != 1:
                raise ValueError("res5_dilation must be 1 for ResNet-18/34")
            in_channels = stem_out_channels
            for i, n in enumerate(num_blocks):
                out_channels = 64 * 2**i
                stages.append(
                    ResNet.make_stage(
                        BasicBlock,
                        n,
                        in_channels=in_channels,
                        out_channels=out_channels,
                        first_stride=1 if i == 0 else 2,
                        norm=norm,
                    )
                )
                in_channels = out_channels
            return stages
        in_channels = stem_out_channels
        bottleneck = num_groups * width_per_group
        for i, n in enumerate(num_blocks):
            dilation = res5_dilation if i == 3 else 1
            first_stride = 1 if i == 0 or dilation > 1 else 2
            out_channels = 256 * 2**i
            stages.append(
                ResNet.make_stage(
                    BottleneckBlock,
                    n,
                    in_channels=in_channels,
                    out_channels=out_channels,
                    first_stride=first_stride,
                    bottleneck_channels=bottleneck,
                    num_groups=num_groups,
                    norm=norm,
                    stride_in_1x1=stride_in_1x1,
                    dilation=dilation,
                )
            )
            in_channels = out_channels
            bottleneck *= 2
        return stages


def build_resnet_backbone(
    depth: int = 50,
    *,
    norm="FrozenBN",
    freeze_at: int = 2,
    out_features=("res2", "res3", "res4", "res5"),
    stride_in_1x1: bool = True,
    in_channels: int = 3,
    num_groups: int = 1,
    width_per_group: int = 64,
) -> ResNet:
    """A standard ResNet backbone.

    ``stride_in_1x1=True`` matches MSRA / Detectron2 .pkl weights; use False with torchvision
    weights. ``norm="FrozenBN"`` with ``freeze_at=2`` is the usual fine-tuning setting.
    """
    stem = BasicStem(in_channels=in_channels, out_channels=64, norm=norm)
    stages = ResNet.make_default_stages(
        depth,
        norm=norm,
        num_groups=num_groups,
        width_per_group=width_per_group,
        stride_in_1x1=stride_in_1x1,
    )
    return ResNet(stem, stages, out_features=out_features, freeze_at=freeze_at)

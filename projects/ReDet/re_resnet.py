"""ReResNet: the rotation-equivariant ResNet of ReDet (Han et al., CVPR 2021) on C_N (N = 8).

Every convolution is a ``RegularConv2d`` between regular fields of C_N (the stem's from the image's
scalar channels), every normalisation a ``FieldNorm``, so that turning the image by a multiple of
360 / N degrees turns each output map and rolls its orientation channels (exactly for quarter
turns, when every strided layer samples a grid that the turn maps onto itself: odd map sizes).

The layout follows ResNet (7x7 stride-2 stem, 3x3 stride-2 max pooling, four stages of basic or
bottleneck blocks with the stride on the 3x3 convolution) with ResNet's channel counts, each
``channels / N`` regular fields: ReResNet-50 outputs 256, 512, 1024, 2048 channels (32 ... 256
fields of 8 orientations) with about N times fewer weights than ResNet-50. Module names follow
the authors' release (``conv1``, ``bn1``, ``layer1.0.conv2.weights``, ``layer1.0.downsample.0``)
so that its state dicts use the same keys.
"""

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from rotated_det.layers import FrozenBatchNorm2d, ShapeSpec
from rotated_det.modeling import Backbone

from .regular_layers import FieldNorm, RegularConv2d

__all__ = ["ReResNet", "ReBasicBlock", "ReBottleneck", "RE_RESNET_DEPTHS"]


class _ReBlock(nn.Module):
    """Shared by the two block kinds: the projection shortcut and freezing."""

    expansion: int

    def __init__(self, in_channels: int, out_channels: int, stride: int, norm: str, n: int):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                RegularConv2d(in_channels, out_channels, 1, stride=stride, num_orientations=n),
                FieldNorm(norm, out_channels, n),
            )

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.downsample is None else self.downsample(x)

    def freeze(self) -> None:
        for p in self.parameters():
            p.requires_grad = False
        FrozenBatchNorm2d.convert_frozen_batchnorm(self)


class ReBasicBlock(_ReBlock):
    """Two 3x3 equivariant convolutions with a residual connection (ReResNet-18 / 34)."""

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        norm: str = "BN",
        num_orientations: int = 8,
    ) -> None:
        n = num_orientations
        super().__init__(in_channels, out_channels, stride, norm, n)
        self.conv1 = RegularConv2d(
            in_channels, out_channels, 3, stride=stride, padding=1, num_orientations=n
        )
        self.bn1 = FieldNorm(norm, out_channels, n)
        self.conv2 = RegularConv2d(out_channels, out_channels, 3, padding=1, num_orientations=n)
        self.bn2 = FieldNorm(norm, out_channels, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu_(out + self.shortcut(x))


class ReBottleneck(_ReBlock):
    """1x1, 3x3 (strided), 1x1 equivariant convolutions with a residual connection
    (ReResNet-50 / 101); the middle width is ``out_channels / 4``."""

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        norm: str = "BN",
        num_orientations: int = 8,
    ) -> None:
        n = num_orientations
        super().__init__(in_channels, out_channels, stride, norm, n)
        mid = out_channels // self.expansion
        self.conv1 = RegularConv2d(in_channels, mid, 1, num_orientations=n)
        self.bn1 = FieldNorm(norm, mid, n)
        self.conv2 = RegularConv2d(mid, mid, 3, stride=stride, padding=1, num_orientations=n)
        self.bn2 = FieldNorm(norm, mid, n)
        self.conv3 = RegularConv2d(mid, out_channels, 1, num_orientations=n)
        self.bn3 = FieldNorm(norm, out_channels, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self.bn1(self.conv1(x)))
        out = F.relu_(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu_(out + self.shortcut(x))


# depth -> (block, blocks per stage), as ResNet
RE_RESNET_DEPTHS: dict[int, tuple[type[ReBasicBlock | ReBottleneck], tuple[int, int, int, int]]] = {
    18: (ReBasicBlock, (2, 2, 2, 2)),
    34: (ReBasicBlock, (3, 4, 6, 3)),
    50: (ReBottleneck, (3, 4, 6, 3)),
    101: (ReBottleneck, (3, 4, 23, 3)),
}


class ReResNet(Backbone):
    """ReResNet as a Backbone: outputs any of "res2" ... "res5" (strides 4 ... 32), each
    ``[B, C, H / stride, W / stride]`` in the regular representation of C_N (``C = fields * N``,
    orientation the fast channel axis).

    Args:
        depth: 18, 34 (basic blocks), 50 or 101 (bottlenecks).
        stem_channels: channels of the stem (ResNet: 64).
        base_channels: channels of the first stage before the block expansion (ResNet: 64); stage
            ``i`` has ``base_channels * 2**i * expansion`` output channels.
        num_orientations: N of C_N (ReDet: 8); every channel count must be a multiple of it.
        norm: "BN" (the authors'), "SyncBN", "FrozenBN" or "GN" (groups of whole fields), applied
            per field (``FieldNorm``).
        out_features: names of the outputs.
        freeze_at: 0 trains everything, 1 freezes the stem, k the stem and the first k - 1
            stages (parameters fixed, batch norms frozen); the authors' DOTA config: 2.
        input_format: "RGB" (the authors' ImageNet weights) or "BGR" (the library's loaders: the
            channels are reversed before the stem).
    """

    def __init__(
        self,
        depth: int = 50,
        *,
        stem_channels: int = 64,
        base_channels: int = 64,
        num_orientations: int = 8,
        norm: str = "BN",
        out_features: Sequence[str] = ("res2", "res3", "res4", "res5"),
        freeze_at: int = 0,
        input_format: str = "RGB",
    ) -> None:
        super().__init__()
        if depth not in RE_RESNET_DEPTHS:
            raise ValueError(f"ReResNet depth={depth}; expected one of {sorted(RE_RESNET_DEPTHS)}")
        if input_format not in ("RGB", "BGR"):
            raise ValueError(f"ReResNet input_format={input_format!r}; expected 'RGB' or 'BGR'")
        names = ["res2", "res3", "res4", "res5"]
        for name in out_features:
            if name not in names:
                raise ValueError(f"ReResNet out_features has {name!r}; available: {names}")
        n = num_orientations
        self.num_orientations = n
        self.input_format = input_format
        block, blocks_per_stage = RE_RESNET_DEPTHS[depth]
        self.conv1 = RegularConv2d(
            3, stem_channels, 7, stride=2, padding=3, num_orientations=n, trivial_input=True
        )
        self.bn1 = FieldNorm(norm, stem_channels, n)
        self.stage_names: list[str] = []
        in_channels = stem_channels
        self._out_feature_channels: dict[str, int] = {}
        self._out_feature_strides: dict[str, int] = {}
        num_stages = max(names.index(f) for f in out_features) + 1
        for i in range(num_stages):
            out_channels = base_channels * 2**i * block.expansion
            blocks = [
                block(
                    in_channels if j == 0 else out_channels,
                    out_channels,
                    stride=(1 if i == 0 else 2) if j == 0 else 1,
                    norm=norm,
                    num_orientations=n,
                )
                for j in range(blocks_per_stage[i])
            ]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            self.stage_names.append(f"layer{i + 1}")
            self._out_feature_channels[names[i]] = out_channels
            self._out_feature_strides[names[i]] = 4 * 2**i
            in_channels = out_channels
        self._out_features = list(out_features)
        self.freeze(freeze_at)

    def freeze(self, freeze_at: int) -> "ReResNet":
        """Freeze the stem (``freeze_at >= 1``) and the first ``freeze_at - 1`` stages."""
        if freeze_at >= 1:
            for module in (self.conv1, self.bn1):
                for p in module.parameters():
                    p.requires_grad = False
            FrozenBatchNorm2d.convert_frozen_batchnorm(self.bn1)
        for i, name in enumerate(self.stage_names, start=2):
            if freeze_at >= i:
                for b in getattr(self, name):
                    b.freeze()
        return self

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``x``: ``[B, 3, H, W]`` images; returns ``{name: [B, C, H / s, W / s]}``."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"ReResNet takes [B, 3, H, W] images, got {tuple(x.shape)}")
        if self.input_format == "BGR":
            x = x.flip(1)
        x = F.relu_(self.bn1(self.conv1(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
        outputs = {}
        for i, name in enumerate(self.stage_names):
            x = getattr(self, name)(x)
            feature = f"res{i + 2}"
            if feature in self._out_features:
                outputs[feature] = x
        return outputs

    def output_shape(self) -> dict[str, ShapeSpec]:
        return {
            name: ShapeSpec(
                channels=self._out_feature_channels[name], stride=self._out_feature_strides[name]
            )
            for name in self._out_features
        }

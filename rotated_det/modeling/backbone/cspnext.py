"""CSPNeXt: the backbone of RTMDet (Lyu et al., "RTMDet: An Empirical Study of Designing Real-Time
Object Detectors", 2022), as MMDetection's ``CSPNeXt`` (arch "P5").

A stem of three 3x3 convs (stride 2) and four stages, each a stride-2 3x3 conv followed by a CSP
layer (the last stage with an SPPF block before its CSP layer). A CSP layer splits its input into
two 1x1-conv branches, runs CSPNeXt blocks (a 3x3 conv then a 5x5 depthwise-separable conv) on
one, concatenates both, reweights the channels (channel attention: global average pool, 1x1 conv,
hard sigmoid) and fuses them with a 1x1 conv. Every conv is followed by a norm and SiLU.

Sizes: channels are scaled by ``widen_factor`` and block counts by ``deepen_factor``
(``CSPNEXT_SIZES``: tiny 0.167 / 0.375, s 0.33 / 0.5, m 0.67 / 0.75, l 1.0 / 1.0). Module names
follow MMDetection's (``stem``, ``stage1`` ... ``stage4``, ``main_conv``, ``blocks``,
``attention.fc``, ``conv`` / ``bn`` inside each conv unit), so that its ImageNet checkpoints
load into ``bottom_up`` by name.
"""

import torch
from torch import nn
from torch.nn import functional as F

from rotated_det.layers.batch_norm import get_norm

from .backbone import Backbone

__all__ = [
    "CSPNEXT_SIZES",
    "CSPLayer",
    "CSPNeXt",
    "CSPNeXtBlock",
    "ChannelAttention",
    "ConvNormAct",
    "DepthwiseSeparableConv",
    "SPPFBottleneck",
]

# size -> (deepen_factor, widen_factor), MMDetection's / MMRotate's RTMDet configs
CSPNEXT_SIZES: dict[str, tuple[float, float]] = {
    "tiny": (0.167, 0.375),
    "s": (0.33, 0.5),
    "m": (0.67, 0.75),
    "l": (1.0, 1.0),
}

# arch "P5": per stage (input channels, output channels, blocks, identity shortcut, SPPF), at
# widen_factor = deepen_factor = 1
_P5_STAGES = (
    (64, 128, 3, True, False),
    (128, 256, 6, True, False),
    (256, 512, 6, True, False),
    (512, 1024, 3, False, True),
)


class ConvNormAct(nn.Module):
    """Conv (no bias when normalised) + norm + SiLU: ``[N, C_in, H, W]`` ->
    ``[N, C_out, H / stride, W / stride]`` (padding ``kernel_size // 2``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        norm: str = "BN",
    ) -> None:
        super().__init__()
        bn = get_norm(norm, out_channels)
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            groups=groups,
            bias=bn is None,
        )
        self.bn = bn if bn is not None else nn.Identity()
        self.activate = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.bn(self.conv(x)))


class DepthwiseSeparableConv(nn.Module):
    """A ``kernel_size`` depthwise ConvNormAct then a 1x1 pointwise ConvNormAct."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, norm: str = "BN"
    ) -> None:
        super().__init__()
        self.depthwise_conv = ConvNormAct(
            in_channels, in_channels, kernel_size, groups=in_channels, norm=norm
        )
        self.pointwise_conv = ConvNormAct(in_channels, out_channels, 1, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


class CSPNeXtBlock(nn.Module):
    """3x3 ConvNormAct, then a 5x5 depthwise-separable conv, plus the input when
    ``add_identity`` (``[N, C, H, W]`` -> ``[N, C, H, W]``)."""

    def __init__(self, channels: int, add_identity: bool, norm: str = "BN") -> None:
        super().__init__()
        self.conv1 = ConvNormAct(channels, channels, 3, norm=norm)
        self.conv2 = DepthwiseSeparableConv(channels, channels, 5, norm=norm)
        self.add_identity = add_identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        return out + x if self.add_identity else out


class ChannelAttention(nn.Module):
    """Per-channel gate: ``x * hardsigmoid(fc(mean over H, W of x))``, ``fc`` a 1x1 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.float().mean(dim=(2, 3), keepdim=True).to(x.dtype)
        return x * F.hardsigmoid(self.fc(pooled))


class CSPLayer(nn.Module):
    """Cross-stage-partial layer of CSPNeXt blocks: ``[N, C_in, H, W]`` -> ``[N, C_out, H, W]``.

    Args:
        in_channels, out_channels: C_in, C_out.
        num_blocks: CSPNeXt blocks on the main branch.
        add_identity: identity shortcut inside each block.
        expand_ratio: width of each branch, as a fraction of C_out.
        channel_attention: gate the concatenated branches (backbone: yes; PAFPN: no).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_blocks: int,
        add_identity: bool = True,
        expand_ratio: float = 0.5,
        channel_attention: bool = False,
        norm: str = "BN",
    ) -> None:
        super().__init__()
        mid = int(out_channels * expand_ratio)
        self.main_conv = ConvNormAct(in_channels, mid, 1, norm=norm)
        self.short_conv = ConvNormAct(in_channels, mid, 1, norm=norm)
        self.final_conv = ConvNormAct(2 * mid, out_channels, 1, norm=norm)
        self.blocks = nn.Sequential(
            *(CSPNeXtBlock(mid, add_identity, norm=norm) for _ in range(num_blocks))
        )
        self.attention = ChannelAttention(2 * mid) if channel_attention else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat([self.blocks(self.main_conv(x)), self.short_conv(x)], dim=1)
        if self.attention is not None:
            out = self.attention(out)
        return self.final_conv(out)


class SPPFBottleneck(nn.Module):
    """Spatial pyramid pooling, fast form: a 1x1 conv to half the channels, three chained 5x5
    stride-1 max-pools, the four maps concatenated and fused by a 1x1 conv
    (``[N, C_in, H, W]`` -> ``[N, C_out, H, W]``).

    Chained 5x5 max-pools see 5x5, 9x9 and 13x13 windows, so the output equals MMDetection's
    ``SPPBottleneck`` with parallel 5 / 9 / 13 pools (same parameters), at a third of the pooling
    work.
    """

    def __init__(self, in_channels: int, out_channels: int, norm: str = "BN") -> None:
        super().__init__()
        mid = in_channels // 2
        self.conv1 = ConvNormAct(in_channels, mid, 1, norm=norm)
        self.conv2 = ConvNormAct(4 * mid, out_channels, 1, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        maps = [x]
        for _ in range(3):
            maps.append(F.max_pool2d(maps[-1], kernel_size=5, stride=1, padding=2))
        return self.conv2(torch.cat(maps, dim=1))


class CSPNeXt(Backbone):
    """CSPNeXt (arch P5), see the module docstring.

    Args:
        deepen_factor: multiplier of the blocks per stage (rounded, at least 1).
        widen_factor: multiplier of the channels.
        expand_ratio: branch width of the CSP layers.
        channel_attention: channel attention in the stages' CSP layers.
        norm: normalisation after every conv ("BN", "SyncBN", "GN", "FrozenBN").
        out_features: among "res3", "res4", "res5" (the outputs of stages 2, 3, 4: strides 8,
            16, 32; channels ``int(256 w)``, ``int(512 w)``, ``int(1024 w)``).
        in_channels: input image channels.

    ``forward``: ``[N, in_channels, H, W]`` -> ``{name: [N, C, H / stride, W / stride]}``
    (sizes rounded up at each stride-2 conv).
    """

    def __init__(
        self,
        *,
        deepen_factor: float = 1.0,
        widen_factor: float = 1.0,
        expand_ratio: float = 0.5,
        channel_attention: bool = True,
        norm: str = "BN",
        out_features: tuple[str, ...] | list[str] = ("res3", "res4", "res5"),
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if deepen_factor <= 0 or widen_factor <= 0:
            raise ValueError(
                f"CSPNeXt: deepen_factor and widen_factor must be > 0, got {deepen_factor} and "
                f"{widen_factor}"
            )
        stem_out = int(_P5_STAGES[0][0] * widen_factor)
        stem_mid = int(_P5_STAGES[0][0] * widen_factor // 2)
        self.stem = nn.Sequential(
            ConvNormAct(in_channels, stem_mid, 3, stride=2, norm=norm),
            ConvNormAct(stem_mid, stem_mid, 3, norm=norm),
            ConvNormAct(stem_mid, stem_out, 3, norm=norm),
        )
        channels, strides = {}, {}
        self._stage_names = []
        for i, (c_in, c_out, blocks, add_identity, use_sppf) in enumerate(_P5_STAGES):
            c_in, c_out = int(c_in * widen_factor), int(c_out * widen_factor)
            layers: list[nn.Module] = [ConvNormAct(c_in, c_out, 3, stride=2, norm=norm)]
            if use_sppf:
                layers.append(SPPFBottleneck(c_out, c_out, norm=norm))
            layers.append(
                CSPLayer(
                    c_out,
                    c_out,
                    num_blocks=max(round(blocks * deepen_factor), 1),
                    add_identity=add_identity,
                    expand_ratio=expand_ratio,
                    channel_attention=channel_attention,
                    norm=norm,
                )
            )
            self.add_module(f"stage{i + 1}", nn.Sequential(*layers))
            self._stage_names.append(f"stage{i + 1}")
            channels[f"res{i + 2}"], strides[f"res{i + 2}"] = c_out, 2 ** (i + 2)
        unknown = [f for f in out_features if f not in ("res3", "res4", "res5")]
        if unknown or not out_features:
            raise ValueError(
                f"CSPNeXt: out_features must be among ['res3', 'res4', 'res5'], got "
                f"{list(out_features)}"
            )
        self._out_features = list(out_features)
        self._out_feature_channels = {f: channels[f] for f in self._out_features}
        self._out_feature_strides = {f: strides[f] for f in self._out_features}

    @property
    def size_divisibility(self) -> int:
        return 32

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.stem(x)
        outputs = {}
        for i, name in enumerate(self._stage_names):
            x = getattr(self, name)(x)
            feature = f"res{i + 2}"
            if feature in self._out_feature_channels:
                outputs[feature] = x
        return outputs

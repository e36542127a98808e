"""LSKNet: the Large Selective Kernel Network (Li et al., ICCV 2023), as a Backbone.

Each of the four stages is a strided patch embedding (conv + norm) followed by blocks of
``x + s1 * Attention(norm1(x))`` then ``x + s2 * MLP(norm2(x))`` (``s1``, ``s2``: per-channel
layer scales, 0.01 at start; stochastic depth on both branches), then a LayerNorm over channels.
The attention branch is 1x1 conv, GELU, the LSK module, 1x1 conv, plus its own shortcut; the MLP is
1x1 conv (x ``mlp_ratio``), 3x3 depthwise conv, GELU, 1x1 conv.

The LSK module (:class:`LSKModule`) is where the paper's idea sits:

1. a large kernel decomposed into a sequence of depthwise convolutions with growing kernel and
   dilation: ``U1 = DW5x5(x)`` and ``U2 = DW7x7,dilation 3(U1)``, receptive fields 5 and
   ``5 + (7 - 1) * 3 = 23`` pixels;
2. each is projected to half the channels by a 1x1 conv (``U1'``, ``U2'``) and concatenated;
3. spatial selection: the channel-wise mean and max of the concatenation (2 maps) go through a
   7x7 conv to 2 maps, and a sigmoid of each gives ``SA_i`` in (0, 1) per pixel. The weights are
   independent sigmoids, not a softmax over the kernels (unlike SKNet's selection): they need not
   sum to 1;
4. ``S = conv1x1(SA_1 * U1' + SA_2 * U2')`` back to full width, and the output is ``x * S``.

Parameter names follow the authors' release (``patch_embed1.proj``, ``block1.0.attn.
spatial_gating_unit.conv0``, ``norm1``, ...) so that their ImageNet backbone weights load through
``train.init_checkpoint`` (placed under the backbone's prefix by the checkpointer); the code here
is this project's own.

Variants (embedding widths, blocks per stage; MLP ratios 8, 8, 4, 4):
LSKNet-T ``(32, 64, 160, 256)``, ``(3, 3, 5, 2)``: 3.99 M parameters here, 4.25 M with an
ImageNet classifier (the paper: 4.3 M); LSKNet-S ``(64, 128, 320, 512)``, ``(2, 2, 4, 2)``:
13.84 M, 14.35 M with the classifier (the paper: 14.4 M).
"""

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.ops import stochastic_depth

from rotated_det.layers import get_norm
from rotated_det.modeling.backbone import Backbone

__all__ = ["LSKModule", "LSKBlock", "LSKNet", "LSKNET_T", "LSKNET_S"]

LSKNET_T = dict(embed_dims=(32, 64, 160, 256), depths=(3, 3, 5, 2))
LSKNET_S = dict(embed_dims=(64, 128, 320, 512), depths=(2, 2, 4, 2))


def _norm(norm: str, channels: int) -> nn.Module:
    layer = get_norm(norm, channels)
    if layer is None:
        raise ValueError(f"LSKNet needs a normalisation layer, got norm={norm!r}")
    return layer


class LSKModule(nn.Module):
    """Large selective kernel: ``[N, C, H, W]`` -> ``[N, C, H, W]`` (``C`` even), see the module
    docstring. Receptive field: 23 px for the large kernel, 29 px for the selection weights."""

    def __init__(self, dim: int):
        super().__init__()
        if dim % 2:
            raise ValueError(f"LSKModule needs an even channel count, got {dim}")
        self.conv0 = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.conv_spatial = nn.Conv2d(dim, dim, 7, padding=9, dilation=3, groups=dim)
        self.conv1 = nn.Conv2d(dim, dim // 2, 1)
        self.conv2 = nn.Conv2d(dim, dim // 2, 1)
        self.conv_squeeze = nn.Conv2d(2, 2, 7, padding=3)
        self.conv = nn.Conv2d(dim // 2, dim, 1)

    def branches(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two kernels' features projected to half width: 2 x ``[N, C / 2, H, W]``."""
        small = self.conv0(x)
        large = self.conv_spatial(small)
        return self.conv1(small), self.conv2(large)

    def selection_weights(self, u1: torch.Tensor, u2: torch.Tensor) -> torch.Tensor:
        """``[N, 2, H, W]`` in (0, 1): per pixel, the weight of each branch."""
        both = torch.cat([u1, u2], dim=1)
        pooled = torch.cat([both.mean(dim=1, keepdim=True), both.amax(dim=1, keepdim=True)], 1)
        return self.conv_squeeze(pooled).sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u1, u2 = self.branches(x)
        weights = self.selection_weights(u1, u2)
        selected = u1 * weights[:, 0:1] + u2 * weights[:, 1:2]
        return x * self.conv(selected)


class _Attention(nn.Module):
    """1x1 conv, GELU, LSK module, 1x1 conv, plus the input."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj_1 = nn.Conv2d(dim, dim, 1)
        self.spatial_gating_unit = LSKModule(dim)
        self.proj_2 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.proj_2(self.spatial_gating_unit(F.gelu(self.proj_1(x))))


class _DepthwiseConv(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dwconv(x)


class _MLP(nn.Module):
    """1x1 conv to ``hidden`` channels, 3x3 depthwise conv, GELU, dropout, 1x1 conv, dropout."""

    def __init__(self, dim: int, hidden: int, drop: float):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dwconv = _DepthwiseConv(hidden)
        self.fc2 = nn.Conv2d(hidden, dim, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(F.gelu(self.dwconv(self.fc1(x))))
        return self.drop(self.fc2(x))


class LSKBlock(nn.Module):
    """One LSKNet block: ``[N, dim, H, W]`` -> same shape.

    Args:
        dim: channels.
        mlp_ratio: hidden width of the MLP over ``dim``.
        drop: dropout probability in the MLP.
        drop_path: probability of dropping each residual branch per sample (training only).
        norm: "BN" (the paper, SyncBN over GPUs), "SyncBN", "GN" or "FrozenBN".
    """

    def __init__(
        self, dim: int, mlp_ratio: float, drop: float = 0.0, drop_path: float = 0.0, norm="BN"
    ):
        super().__init__()
        self.norm1 = _norm(norm, dim)
        self.attn = _Attention(dim)
        self.norm2 = _norm(norm, dim)
        self.mlp = _MLP(dim, int(dim * mlp_ratio), drop)
        self.layer_scale_1 = nn.Parameter(torch.full((dim,), 1e-2))
        self.layer_scale_2 = nn.Parameter(torch.full((dim,), 1e-2))
        self.drop_path = drop_path

    def _residual(self, branch: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        out = scale.view(1, -1, 1, 1) * branch
        return stochastic_depth(out, self.drop_path, "row", self.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self._residual(self.attn(self.norm1(x)), self.layer_scale_1)
        return x + self._residual(self.mlp(self.norm2(x)), self.layer_scale_2)


class _PatchEmbed(nn.Module):
    """Overlapping patch embedding: conv (kernel ``k``, stride ``s``, padding ``k // 2``) + norm;
    ``[N, C_in, H, W]`` -> ``[N, C_out, ceil(H / s), ceil(W / s)]``."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, norm):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, out_channels, kernel, stride, padding=kernel // 2)
        self.norm = _norm(norm, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))


class LSKNet(Backbone):
    """LSKNet as a Backbone with outputs "res2".."res5" (strides 4, 8, 16, 32).

    Args:
        embed_dims: channels of the four stages (LSKNET_T / LSKNET_S hold the paper's).
        depths: blocks per stage.
        mlp_ratios: MLP width over the stage width, per stage.
        drop_rate: dropout in the MLPs (0.1 in the paper's detection configs).
        drop_path_rate: stochastic depth of the last block, rising linearly from 0 over the
            blocks (0.1 in the paper's detection configs).
        norm: normalisation inside the stages ("BN" as the paper, "SyncBN" on several GPUs, "GN"
            for small batches); the stage-end norms are LayerNorms over channels in every case.
        out_features: which of "res2".."res5" to return.
        in_channels: image channels.
        input_format: channel order of the images given to ``forward``; the authors' ImageNet
            weights take RGB, so "BGR" (the library's loaders) reverses the channels first.

    ``forward(x)``: ``[N, in_channels, H, W]`` -> ``{"res{k}": [N, embed_dims[k - 2],
    ceil(H / 2**k), ceil(W / 2**k)]}``.
    """

    def __init__(
        self,
        embed_dims: Sequence[int] = LSKNET_T["embed_dims"],
        depths: Sequence[int] = LSKNET_T["depths"],
        mlp_ratios: Sequence[float] = (8, 8, 4, 4),
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm: str = "BN",
        out_features: Sequence[str] = ("res2", "res3", "res4", "res5"),
        in_channels: int = 3,
        input_format: str = "RGB",
    ):
        super().__init__()
        if input_format not in ("RGB", "BGR"):
            raise ValueError(f"LSKNet input_format must be 'RGB' or 'BGR', got {input_format!r}")
        if not len(embed_dims) == len(depths) == len(mlp_ratios) == 4:
            raise ValueError(
                "LSKNet has 4 stages: embed_dims, depths and mlp_ratios need 4 values each, got "
                f"{list(embed_dims)}, {list(depths)}, {list(mlp_ratios)}"
            )
        names = [f"res{i + 2}" for i in range(4)]
        unknown = [f for f in out_features if f not in names]
        if unknown or not out_features:
            raise ValueError(f"LSKNet out_features {list(out_features)}: choose from {names}")
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        first = 0
        previous = in_channels
        for i, (dim, depth, ratio) in enumerate(zip(embed_dims, depths, mlp_ratios)):
            kernel, stride = (7, 4) if i == 0 else (3, 2)
            self.add_module(f"patch_embed{i + 1}", _PatchEmbed(previous, dim, kernel, stride, norm))
            blocks = [LSKBlock(dim, ratio, drop_rate, rates[first + j], norm) for j in range(depth)]
            self.add_module(f"block{i + 1}", nn.ModuleList(blocks))
            self.add_module(f"norm{i + 1}", nn.LayerNorm(dim, eps=1e-6))
            first += depth
            previous = dim
        self.input_format = input_format
        self._out_features = list(out_features)
        self._out_feature_channels = dict(zip(names, embed_dims))
        self._out_feature_strides = {name: 2 ** (i + 2) for i, name in enumerate(names)}
        self._num_stages = 1 + max(names.index(f) for f in out_features)
        self._init_weights()

    def _init_weights(self) -> None:
        # as the authors' random initialisation: He-normal convs (fan-out over groups), zero
        # biases, LayerNorms at identity
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``x``: ``[N, C, H, W]`` images; returns ``{name: feature map}``."""
        if x.dim() != 4:
            raise ValueError(f"LSKNet takes [N, C, H, W] inputs, got shape {tuple(x.shape)}")
        if self.input_format == "BGR":
            x = x.flip(1)
        outputs = {}
        for i in range(self._num_stages):
            x = getattr(self, f"patch_embed{i + 1}")(x)
            for block in getattr(self, f"block{i + 1}"):
                x = block(x)
            # LayerNorm over channels at each pixel
            x = getattr(self, f"norm{i + 1}")(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            x = x.contiguous()
            name = f"res{i + 2}"
            if name in self._out_features:
                outputs[name] = x
        return outputs

"""Layers on feature maps in the regular representation of the cyclic group C_N (ReDet's fields).

A feature map of ``F`` regular fields has ``C = F * N`` channels ``[N_batch, C, H, W]``, field
major and orientation minor: channel ``f * N + g`` is field ``f`` at orientation ``g`` (e2cnn's
layout). Turning the input image by ``k * 360 / N`` degrees counter-clockwise on screen turns each
such map spatially and rolls every field's orientations by ``k`` (orientation ``g`` moves to
``g + k mod N``).

``RegularConv2d`` draws its filters from e2cnn's steerable basis (ReDet's choice: sampled on the
kernel grid, frequencies up to ``3 r`` at radius ``r``) and computes them with one einsum from its
weights, so that the forward pass is plain torch (it traces and exports, and holds no cached filter
that could go stale). ReLU and max pooling act on each channel and need nothing special; a
normalisation must share its statistics and affine parameters across a field's orientations
(``FieldNorm``).
"""

import functools
import math
import warnings
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from rotated_det.layers import get_norm

__all__ = ["RegularConv2d", "FieldNorm", "field_norm", "regular_fields"]


def regular_fields(channels: int, num_orientations: int, name: str = "channels") -> int:
    """The number of regular fields in ``channels`` channels; raises ValueError naming ``name``
    unless ``channels`` is a positive multiple of ``num_orientations``."""
    if channels <= 0 or channels % num_orientations:
        raise ValueError(
            f"{name}={channels} is not a positive multiple of num_orientations="
            f"{num_orientations} (regular fields of C{num_orientations})"
        )
    return channels // num_orientations


def _redet_frequency_cutoff(radius: float) -> float:
    # ReDet's band limit: angular frequencies up to 3x the ring radius (in pixels).
    return 3.0 * radius


@functools.cache
def _pair_basis(
    num_orientations: int, trivial_input: bool, kernel_size: int, dilation: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """e2cnn's steerable basis between one input and one output field.

    Returns ``(basis [B, N, N_in, k * k], he_std [B], bias_column [N])``: ``N_in`` is 1 for a
    trivial (scalar) input field and N for a regular one; ``he_std`` is e2cnn's generalized He
    standard deviation of each coefficient for one input field (it scales as
    ``1 / sqrt(input fields)``); ``bias_column`` maps a field's bias to its N channels.
    """
    try:
        from e2cnn import gspaces
        from e2cnn import nn as enn
        from e2cnn.nn.init import _generalized_he_init_variances
    except ImportError as e:
        raise ImportError(
            f"ReDet's equivariant layers need e2cnn ({e}): pip install -e '.[redet]'"
        ) from e

    space = gspaces.Rot2dOnR2(N=num_orientations)
    in_repr = space.trivial_repr if trivial_input else space.regular_repr
    with warnings.catch_warnings():  # e2cnn indexes with uint8 masks (deprecated in torch)
        warnings.simplefilter("ignore", UserWarning)
        conv = enn.R2Conv(
            enn.FieldType(space, [in_repr]),
            enn.FieldType(space, [space.regular_repr]),
            kernel_size,
            dilation=dilation,
            bias=True,
            sigma=None,
            frequencies_cutoff=_redet_frequency_cutoff,
            initialize=False,
        )
    expansion = conv.basisexpansion
    (block,) = [m for name, m in expansion.named_children() if name.startswith("block_expansion")]
    basis = block.sampled_basis.detach().clone()
    he_std = _generalized_he_init_variances(expansion).detach().clone()
    bias_column = conv.bias_expansion[:, 0].detach().clone()
    return basis, he_std, bias_column


class RegularConv2d(nn.Module):
    """A C_N-equivariant convolution between regular fields (or from scalar channels).

    The filter of each (output field, input field) pair is a combination of e2cnn's steerable
    basis with learnt coefficients (``weights``, e2cnn's flat layout: output field major, then
    input field, then basis element), so the layer commutes with turns of the input by multiples
    of 360 / N degrees (exactly for quarter turns, whose kernel grid maps onto itself).

    Args:
        in_channels: input channels; ``in_fields * N`` (or any count with ``trivial_input``).
        out_channels: output channels, ``out_fields * N``.
        kernel_size, stride, padding, dilation: as in ``nn.Conv2d`` (square kernels).
        bias: one learnt bias per output field, shared by its N orientation channels.
        num_orientations: N (ReDet: 8).
        trivial_input: the input channels are scalars (an image): each is one trivial field.

    Input ``[B, in_channels, H, W]``, output ``[B, out_channels, H', W']`` (``nn.Conv2d``'s sizes).
    The initialisation is e2cnn's generalized He initialisation.
    """

    basis: torch.Tensor
    bias_column: torch.Tensor

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        bias: bool = False,
        num_orientations: int = 8,
        trivial_input: bool = False,
    ) -> None:
        super().__init__()
        if num_orientations < 2:
            raise ValueError(f"num_orientations={num_orientations} must be at least 2")
        self.num_orientations = num_orientations
        self.in_fields = (
            in_channels
            if trivial_input
            else regular_fields(in_channels, num_orientations, "in_channels")
        )
        self.out_fields = regular_fields(out_channels, num_orientations, "out_channels")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding, self.dilation = (
            kernel_size,
            stride,
            padding,
            dilation,
        )
        self.trivial_input = trivial_input
        basis, he_std, bias_column = _pair_basis(
            num_orientations, trivial_input, kernel_size, dilation
        )
        self.register_buffer("basis", basis, persistent=False)  # [B, N, N_in, k * k]
        self.register_buffer("bias_column", bias_column, persistent=False)  # [N]
        pairs = self.out_fields * self.in_fields
        std = (he_std / math.sqrt(self.in_fields)).repeat(pairs)
        self.weights = nn.Parameter(torch.randn(pairs * basis.shape[0]) * std)
        self.bias = nn.Parameter(torch.zeros(self.out_fields)) if bias else None
        self._cache: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self._cache_key: tuple | None = None

    @property
    def basis_size(self) -> int:
        """Learnt coefficients per (output field, input field) pair."""
        return int(self.basis.shape[0])

    def expanded_filter(self) -> torch.Tensor:
        """The convolution filter ``[out_channels, in_channels, k, k]`` of the current weights."""
        n_out, n_in = self.basis.shape[1], self.basis.shape[2]
        k = self.kernel_size
        coefficients = self.weights.view(self.out_fields, self.in_fields, self.basis_size)
        filt = torch.einsum("fib,bpqs->fpiqs", coefficients, self.basis.to(self.weights.dtype))
        return filt.reshape(self.out_fields * n_out, self.in_fields * n_in, k, k)

    def expanded_bias(self) -> torch.Tensor | None:
        """The per-channel bias ``[out_channels]`` (None without bias)."""
        if self.bias is None:
            return None
        return (self.bias[:, None] * self.bias_column.to(self.bias.dtype)).reshape(-1)

    def _filter_and_bias(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The expanded filter and bias; in plain inference (eval mode, no autograd, no tracing
        or export) cached until the weights change (in place or replaced), since the expansion
        of every filter costs about a tenth of a ReResNet-50 forward pass at 512 px."""
        if (
            self.training
            or torch.is_grad_enabled()
            or torch.jit.is_tracing()
            or torch.compiler.is_compiling()
            or torch.compiler.is_exporting()
        ):
            return self.expanded_filter(), self.expanded_bias()
        key = tuple(
            (p._version, p.data_ptr(), p.dtype, p.device)
            for p in (self.weights, self.bias)
            if p is not None
        )
        if self._cache_key != key:
            # in the weights' dtype even under autocast: the cache outlives the autocast region
            with torch.autocast(self.weights.device.type, enabled=False):
                self._cache = (self.expanded_filter(), self.expanded_bias())
            self._cache_key = key
        assert self._cache is not None
        return self._cache

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"RegularConv2d expects [B, {self.in_channels}, H, W] inputs, got {tuple(x.shape)}"
            )
        weight, bias = self._filter_and_bias()
        weight = weight.to(x.dtype)
        return F.conv2d(
            x,
            weight,
            None if bias is None else bias.to(x.dtype),
            self.stride,
            self.padding,
            self.dilation,
        )

    def extra_repr(self) -> str:
        kind = "scalars" if self.trivial_input else "fields"
        return (
            f"{self.in_fields} {kind} -> {self.out_fields} fields of C{self.num_orientations}, "
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, bias={self.bias is not None}, "
            f"basis_size={self.basis_size}"
        )


def _field_group_norm(fields: int) -> nn.Module:
    # 32 groups as the library's GN where the field count allows, else fewer (each group holds
    # whole fields; 8 fields: one field per group)
    return nn.GroupNorm(math.gcd(32, fields), fields)


class FieldNorm(nn.Module):
    """A normalisation of regular fields: statistics over a field's N orientation channels
    together (with the batch and pixels), and one scale and shift per field, so that it commutes
    with the roll of orientations. ``BN`` is e2cnn's InnerBatchNorm.

    The library norm ``norm`` ("BN", "SyncBN", "FrozenBN", "GN") of ``fields`` channels is applied
    to the input viewed as ``[B, fields, N, H * W]`` (GN: groups of whole fields, 32 groups where
    the field count allows). Its child keeps e2cnn's name ``batch_norm_[N]``, so that state dicts
    of ReDet's e2cnn models use the same keys.

    Input and output ``[B, fields * N, H, W]``.
    """

    def __init__(
        self, norm: str | Callable[[int], nn.Module], channels: int, num_orientations: int
    ):
        super().__init__()
        self.fields = regular_fields(channels, num_orientations)
        self.num_orientations = num_orientations
        layer = get_norm(_field_group_norm if norm == "GN" else norm, self.fields)
        if layer is None:
            raise ValueError("FieldNorm needs a norm (got an empty one)")
        self._child = f"batch_norm_[{num_orientations}]"
        self.add_module(self._child, layer)

    @property
    def norm(self) -> nn.Module:
        """The library norm over fields."""
        return getattr(self, self._child)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        # [B, fields, N, H * W]: (with N * H as one axis, torch.export cannot prove its
        # reshape for every dynamic height)
        y = self.norm(x.reshape(b, self.fields, self.num_orientations, h * w))
        return y.reshape(b, c, h, w)


def field_norm(norm: str, channels: int, num_orientations: int) -> nn.Module | None:
    """A FieldNorm, or None for ``norm == ""``."""
    return FieldNorm(norm, channels, num_orientations) if norm else None

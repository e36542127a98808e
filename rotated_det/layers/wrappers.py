"""Thin wrappers around torch functions and modules used across the models."""

from collections.abc import Callable
from typing import Any, cast

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["Conv2d", "cat", "nonzero_tuple", "shapes_to_tensor"]


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` followed by an optional normalization layer and an optional activation.

    Args (beyond those of ``nn.Conv2d``):
        norm: a module applied to the convolution output (e.g. from ``get_norm``) or None.
        activation: a callable applied after the norm (e.g. ``F.relu``) or None.

    Input ``[N, C_in, H, W]``, output ``[N, C_out, H', W']``.
    """

    def __init__(
        self,
        *args: Any,
        norm: nn.Module | None = None,
        activation: Callable[[torch.Tensor], torch.Tensor] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.norm = norm
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(
            x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x


def cat(tensors: list[torch.Tensor], dim: int = 0) -> torch.Tensor:
    """``torch.cat`` that skips the copy when the list holds a single tensor."""
    if len(tensors) == 1:
        return tensors[0]
    return torch.cat(tensors, dim)


def nonzero_tuple(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Indices of the non-zero entries of ``x``, one int64 tensor per dimension (like numpy)."""
    if x.dim() == 0:
        return x.unsqueeze(0).nonzero().unbind(1)
    return x.nonzero().unbind(1)


def shapes_to_tensor(
    x: list[int] | list[torch.Tensor], device: torch.device | None = None
) -> torch.Tensor:
    """Turn a list of ints (or 0-dim tensors while tracing) into an int64 tensor."""
    if torch.jit.is_scripting():
        return torch.as_tensor(x, device=device)
    if torch.jit.is_tracing() and all(isinstance(t, torch.Tensor) for t in x):
        return torch.stack(cast(list[torch.Tensor], x))
    return torch.as_tensor(x, device=device)

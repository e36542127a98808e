"""Normalization layers: FrozenBatchNorm2d and the ``get_norm`` factory."""

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["FrozenBatchNorm2d", "get_norm"]


class FrozenBatchNorm2d(nn.Module):
    """Batch normalization with fixed statistics and affine parameters.

    Computes ``y = (x - running_mean) / sqrt(running_var + eps) * weight + bias`` per channel,
    i.e. a per-channel affine map ``y = x * scale + shift``. All four tensors are buffers, so no
    optimizer touches them and ``model.train()`` does not change the statistics. This is the usual
    choice for a pre-trained backbone trained with small per-GPU batches.

    Input and output: ``[N, C, H, W]`` (or ``[N, C]``) tensors.
    """

    _version = 3
    # Buffers (registered in __init__), declared for the type checker.
    weight: torch.Tensor
    bias: torch.Tensor
    running_mean: torch.Tensor
    running_var: torch.Tensor

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features) - eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Inference-mode batch_norm is one fused kernel (and differentiable w.r.t. x).
        return F.batch_norm(
            x,
            self.running_mean.to(x.dtype),
            self.running_var.to(x.dtype),
            self.weight.to(x.dtype),
            self.bias.to(x.dtype),
            training=False,
            momentum=0.0,
            eps=self.eps,
        )

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # Checkpoints of nn.BatchNorm2d carry a step counter that has no meaning here.
        state_dict.pop(prefix + "num_batches_tracked", None)
        # Some checkpoints store only the affine part (scale / bias); statistics are then identity.
        if prefix + "running_mean" not in state_dict and prefix + "weight" in state_dict:
            state_dict[prefix + "running_mean"] = torch.zeros_like(self.running_mean)
            state_dict[prefix + "running_var"] = torch.ones_like(self.running_var) - self.eps
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def __repr__(self) -> str:
        return f"FrozenBatchNorm2d(num_features={self.num_features}, eps={self.eps})"

    @classmethod
    def convert_frozen_batchnorm(cls, module: nn.Module) -> nn.Module:
        """Return ``module`` with every BatchNorm2d / SyncBatchNorm replaced by a frozen copy.

        The conversion happens in place for children; the converted root is returned (it is a new
        object when ``module`` itself is a batch norm layer).
        """
        if isinstance(module, (nn.BatchNorm2d, nn.SyncBatchNorm)):
            frozen = cls(module.num_features, module.eps)
            if module.affine:
                frozen.weight.data.copy_(module.weight.data)
                frozen.bias.data.copy_(module.bias.data)
            if module.running_mean is not None and module.running_var is not None:
                frozen.running_mean.data.copy_(module.running_mean.data)
                frozen.running_var.data.copy_(module.running_var.data)
            return frozen
        for name, child in module.named_children():
            new_child = cls.convert_frozen_batchnorm(child)
            if new_child is not child:
                module.add_module(name, new_child)
        return module


def _group_norm(channels: int) -> nn.Module:
    return nn.GroupNorm(32, channels)


_NORMS: dict[str, Callable[[int], nn.Module]] = {
    "BN": nn.BatchNorm2d,
    "SyncBN": nn.SyncBatchNorm,
    "FrozenBN": FrozenBatchNorm2d,
    "GN": _group_norm,
}


def get_norm(norm: str | Callable[[int], nn.Module] | None, out_channels: int) -> nn.Module | None:
    """Build a normalization layer for ``out_channels`` channels.

    Args:
        norm: one of "BN", "SyncBN", "FrozenBN", "GN" (32 groups), "" / None (no normalization),
            or a callable taking the channel count and returning a module.
        out_channels: number of channels C of the ``[N, C, H, W]`` input.

    Returns:
        the layer, or None when ``norm`` is empty.
    """
    if norm is None or norm == "":
        return None
    if isinstance(norm, str):
        if norm not in _NORMS:
            raise ValueError(f"Unknown norm {norm!r}; expected one of {sorted(_NORMS)} or ''")
        return _NORMS[norm](out_channels)
    return norm(out_channels)

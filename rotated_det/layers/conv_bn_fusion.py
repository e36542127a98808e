"""Folding inference-mode batch norms into the convolutions before them.

In eval mode a batch norm is a per-channel affine map, ``y = (x - mean) / sqrt(var + eps) *
weight + bias``, so ``bn(conv(x))`` equals one convolution with scaled weights and a shifted bias.
Folding removes a pass over every feature map: Ultralytics does it before YOLO inference, and
RTMDet's CSPNeXt has a norm after every one of its convolutions.

Two module patterns are folded (the ones rotated_det's backbones, necks and heads use):

- a module with ``conv`` (``nn.Conv2d``) and ``bn`` attributes, e.g. CSPNeXt's ``ConvNormAct``:
  ``conv`` is replaced by a new fused convolution and ``bn`` by ``nn.Identity``. A new module is
  made because RTMDet's head shares one convolution between levels that have their own norms:
  each level gets its own fused copy;
- :class:`rotated_det.layers.Conv2d` whose ``norm`` is a batch norm (ResNet, FPN): its weight and
  bias are replaced, ``norm`` becomes None.

Group norm and other per-sample normalisations are left alone (their statistics depend on the
input).
"""

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from .batch_norm import FrozenBatchNorm2d
from .wrappers import Conv2d

__all__ = ["fuse_conv_bn"]

_BATCH_NORMS = (nn.BatchNorm2d, nn.SyncBatchNorm, FrozenBatchNorm2d)


def _foldable(norm: object) -> bool:
    """A batch norm that normalises with stored statistics (a BatchNorm2d built with
    ``track_running_stats=False`` uses each batch's own, even in eval mode)."""
    if not isinstance(norm, _BATCH_NORMS):
        return False
    return getattr(norm, "running_mean", None) is not None


def _fused_weights(conv: nn.Conv2d, norm: nn.Module) -> tuple[nn.Parameter, nn.Parameter]:
    """The weight ``[C_out, C_in / groups, kh, kw]`` and bias ``[C_out]`` of ``norm(conv(x))``."""
    stats: dict[str, torch.Tensor] = {
        name: getattr(norm, name) for name in ("running_mean", "running_var", "weight", "bias")
    }
    weight, bias = fuse_conv_bn_weights(
        conv.weight.detach(),
        None if conv.bias is None else conv.bias.detach(),
        stats["running_mean"],
        stats["running_var"],
        float(norm.eps),  # type: ignore[arg-type]
        stats["weight"],
        stats["bias"],
    )
    return nn.Parameter(weight.detach(), requires_grad=False), nn.Parameter(
        bias.detach(), requires_grad=False
    )


def fuse_conv_bn(model: nn.Module) -> int:
    """Fold every batch norm that directly follows a convolution into it, in place.

    Args:
        model: a module in eval mode (its batch norms must not be training: a training batch
            norm normalises with the batch's statistics, which no fixed convolution can).

    Returns:
        The number of batch norms folded (0 when there is none, e.g. a model with group norms).

    Raises:
        ValueError: a batch norm of ``model`` is in training mode (call ``model.eval()``).

    The outputs are unchanged up to rounding (float32: relative differences around 1e-6). The
    fused parameters do not require gradients: fusion is for inference and export.
    """
    # a FrozenBatchNorm2d uses its stored statistics whatever its mode
    training = [
        n
        for n, m in model.named_modules()
        if isinstance(m, (nn.BatchNorm2d, nn.SyncBatchNorm)) and m.training
    ]
    if training:
        raise ValueError(
            f"fuse_conv_bn: {len(training)} batch norms are in training mode (first: "
            f"{training[0]!r}); call model.eval() before fusing"
        )
    folded = 0
    for module in list(model.modules()):
        if isinstance(module, Conv2d) and _foldable(module.norm):
            assert module.norm is not None  # for the type checker; _foldable checked it
            weight, bias = _fused_weights(module, module.norm)
            module.weight, module.bias = weight, bias
            module.norm = None
            folded += 1
            continue
        conv, norm = getattr(module, "conv", None), getattr(module, "bn", None)
        if type(conv) is nn.Conv2d and _foldable(norm):
            assert norm is not None  # for the type checker; _foldable checked it
            fused = nn.Conv2d(
                conv.in_channels,
                conv.out_channels,
                conv.kernel_size,  # type: ignore[arg-type]
                stride=conv.stride,  # type: ignore[arg-type]
                padding=conv.padding,  # type: ignore[arg-type]
                dilation=conv.dilation,  # type: ignore[arg-type]
                groups=conv.groups,
                padding_mode=conv.padding_mode,
                device=conv.weight.device,
                dtype=conv.weight.dtype,
            )
            fused.weight, fused.bias = _fused_weights(conv, norm)
            module.conv = fused
            module.bn = nn.Identity()
            folded += 1
    return folded

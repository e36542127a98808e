"""Optimizer helpers: parameter groups (weight decay / lr per parameter) and gradient clipping."""

import copy
import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = ["get_default_optimizer_params", "maybe_add_gradient_clipping", "NORM_MODULE_TYPES"]

NORM_MODULE_TYPES: tuple[type, ...] = (
    torch.nn.modules.batchnorm._NormBase,  # BatchNorm{1,2,3}d, SyncBatchNorm, InstanceNorm*
    torch.nn.GroupNorm,
    torch.nn.LayerNorm,
    torch.nn.LocalResponseNorm,
)


def _is_norm(module: torch.nn.Module, extra_types: tuple[type, ...]) -> bool:
    if isinstance(module, NORM_MODULE_TYPES + extra_types):
        return True
    # e.g. FrozenBatchNorm2d or custom norms that hold (affine) parameters
    return type(module).__name__.endswith(("Norm", "Norm1d", "Norm2d", "Norm3d"))


def get_default_optimizer_params(
    model: torch.nn.Module,
    base_lr: float | None = None,
    weight_decay: float | None = None,
    weight_decay_norm: float | None = None,
    weight_decay_bias: float | None = None,
    lr_factor_func: Callable[[str], float] | None = None,
    lr_multipliers: dict[str, float] | None = None,
    overrides: dict[str, dict[str, float]] | None = None,
    norm_module_types: Iterable[type] = (),
) -> list[dict[str, Any]]:
    """
    Split the trainable parameters of ``model`` into optimizer parameter groups.

    Args:
        model: the model.
        base_lr: lr of every group (None: leave to the optimizer's default ``lr``).
        weight_decay: weight decay of every group (None: the optimizer's default).
        weight_decay_norm: weight decay of parameters of normalization layers (BatchNorm,
            GroupNorm, LayerNorm, ...). Commonly 0.
        weight_decay_bias: weight decay of parameters named ``bias`` (outside norm layers).
        lr_factor_func: ``f(full_param_name) -> float``; multiplies the group's lr.
        lr_multipliers: ``{regex: factor}``; the lr of a parameter whose full name matches the
            regex (``re.search``) is multiplied by ``factor`` (several matches multiply).
            Needs ``base_lr``.
        overrides: ``{param_name: {"lr": ..., "weight_decay": ...}}`` for parameters whose
            own (module-level) name is ``param_name``, e.g. ``{"embedding": {"weight_decay":
            0.0}}``.
        norm_module_types: extra module classes treated as normalization layers.

    Returns:
        a list of param groups (dicts with "params" and hyper-parameters), ready for any
        ``torch.optim`` optimizer. Parameters with identical hyper-parameters share a group;
        the order is deterministic (model order) so optimizer state dicts line up on resume.
    """
    overrides = dict(overrides or {})
    defaults: dict[str, float] = {}
    if base_lr is not None:
        defaults["lr"] = base_lr
    if weight_decay is not None:
        defaults["weight_decay"] = weight_decay
    bias_overrides: dict[str, float] = {}
    if weight_decay_bias is not None:
        bias_overrides["weight_decay"] = weight_decay_bias
    if bias_overrides:
        if "bias" in overrides:
            raise ValueError("Conflicting overrides for 'bias'")
        overrides["bias"] = bias_overrides
    if (lr_factor_func is not None or lr_multipliers) and base_lr is None:
        raise ValueError("lr_factor_func / lr_multipliers need base_lr to be set")
    patterns = [(re.compile(p), float(f)) for p, f in (lr_multipliers or {}).items()]
    extra_norm = tuple(norm_module_types)

    params: list[dict[str, Any]] = []
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        is_norm = _is_norm(module, extra_norm)
        for param_name, value in module.named_parameters(recurse=False):
            if not value.requires_grad or id(value) in seen:
                continue
            seen.add(id(value))
            hp = copy.copy(defaults)
            if is_norm and weight_decay_norm is not None:
                hp["weight_decay"] = weight_decay_norm
            full_name = f"{module_name}.{param_name}" if module_name else param_name
            factor = 1.0
            if lr_factor_func is not None:
                factor *= lr_factor_func(full_name)
            for pattern, f in patterns:
                if pattern.search(full_name):
                    factor *= f
            if factor != 1.0:
                hp["lr"] = hp["lr"] * factor
            hp.update(overrides.get(param_name, {}))
            params.append({"params": [value], **hp})
    return _merge_groups(params)


def _merge_groups(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge groups with identical hyper-parameters, keeping first-appearance order."""
    merged: dict[tuple, list[torch.nn.Parameter]] = defaultdict(list)
    for g in groups:
        key = tuple(sorted((k, v) for k, v in g.items() if k != "params"))
        merged[key].extend(g["params"])
    return [{"params": ps, **dict(key)} for key, ps in merged.items()]


def _clip_fn(clip_type: str, clip_value: float, norm_type: float) -> Callable:
    if clip_type == "value":
        return lambda ps: torch.nn.utils.clip_grad_value_(ps, clip_value)
    if clip_type == "norm":
        return lambda ps: torch.nn.utils.clip_grad_norm_(ps, clip_value, norm_type)
    raise ValueError(f"clip_type must be 'value' or 'norm', got {clip_type!r}")


_CLIPPED_CLASSES: dict[tuple[type, str, float, float], type] = {}


def maybe_add_gradient_clipping(
    optimizer: torch.optim.Optimizer | type,
    clip_type: str = "norm",
    clip_value: float = 35.0,
    norm_type: float = 2.0,
    enabled: bool = True,
) -> Any:
    """
    Make ``optimizer.step()`` clip the gradients of all its parameters first.

    Args:
        optimizer: an optimizer instance (its class is swapped in place for a clipping
            subclass, state kept) or an optimizer class (a clipping subclass is returned).
        clip_type: "value" (clamp each gradient element to [-clip_value, clip_value]) or
            "norm" (rescale so the total ``norm_type``-norm is at most clip_value).
        enabled: if False, return ``optimizer`` unchanged (handy in configs).

    Usable from a LazyConfig::

        optimizer = L(maybe_add_gradient_clipping)(
            optimizer=L(torch.optim.SGD)(params=..., lr=0.01), clip_type="norm", clip_value=35)
    """
    if not enabled:
        return optimizer
    clip = _clip_fn(clip_type, float(clip_value), float(norm_type))
    base = optimizer if isinstance(optimizer, type) else type(optimizer)
    if getattr(base, "_rotated_det_clipping", None) is not None:
        raise ValueError(f"{base.__name__} already clips gradients")
    key = (base, clip_type, float(clip_value), float(norm_type))
    if key not in _CLIPPED_CLASSES:

        def step(self, closure=None):
            all_params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
            clip(all_params)
            return base.step(self, closure)

        _CLIPPED_CLASSES[key] = type(
            base.__name__ + "WithGradientClip",
            (base,),
            {"step": step, "_rotated_det_clipping": (clip_type, clip_value, norm_type)},
        )
    new_cls = _CLIPPED_CLASSES[key]
    if isinstance(optimizer, type):
        return new_cls
    optimizer.__class__ = new_cls
    logging.getLogger(__name__).info(
        "Gradient clipping enabled: %s, clip_value=%s, norm_type=%s",
        clip_type,
        clip_value,
        norm_type,
    )
    return optimizer

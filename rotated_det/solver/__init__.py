"""Optimizer parameter groups, gradient clipping and learning-rate schedules."""

from .build import NORM_MODULE_TYPES, get_default_optimizer_params, maybe_add_gradient_clipping
from .lr_scheduler import LRMultiplier, WarmupParamScheduler
from .schedules import cosine_with_warmup, flat_cosine_with_warmup, multistep_with_warmup

__all__ = [
    "NORM_MODULE_TYPES",
    "get_default_optimizer_params",
    "maybe_add_gradient_clipping",
    "LRMultiplier",
    "WarmupParamScheduler",
    "multistep_with_warmup",
    "cosine_with_warmup",
    "flat_cosine_with_warmup",
]

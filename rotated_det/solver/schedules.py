"""Ready-made LR multipliers (warm-up + multi-step, warm-up + cosine) in iterations."""

from collections.abc import Sequence

from fvcore.common.param_scheduler import CosineParamScheduler, MultiStepParamScheduler

from .lr_scheduler import WarmupParamScheduler

__all__ = ["multistep_with_warmup", "cosine_with_warmup"]


def multistep_with_warmup(
    max_iter: int,
    steps: Sequence[int],
    gamma: float = 0.1,
    warmup_iters: int = 500,
    warmup_factor: float = 1.0 / 3,
    warmup_method: str = "linear",
) -> WarmupParamScheduler:
    """
    LR multiplier: warm-up over ``warmup_iters`` iterations, then 1, multiplied by ``gamma``
    at each iteration in ``steps``.

    E.g. MMRotate's "1x" schedule (12 epochs, decay at epochs 8 and 11, 500 linear warm-up
    iterations from 1/3) for ``max_iter`` iterations: ``steps=(max_iter * 8 // 12,
    max_iter * 11 // 12)``.
    """
    steps = [int(s) for s in steps]
    if any(not 0 < s < max_iter for s in steps) or steps != sorted(steps):
        raise ValueError(f"steps must be increasing and inside (0, {max_iter}), got {steps}")
    values = [gamma**i for i in range(len(steps) + 1)]
    main = MultiStepParamScheduler(values=values, milestones=steps, num_updates=max_iter)
    return WarmupParamScheduler(
        main,
        warmup_factor=warmup_factor,
        warmup_length=min(warmup_iters, max_iter - 1) / max_iter,
        warmup_method=warmup_method,
    )


def cosine_with_warmup(
    max_iter: int,
    warmup_iters: int = 500,
    warmup_factor: float = 0.001,
    end_value: float = 0.0,
    warmup_method: str = "linear",
) -> WarmupParamScheduler:
    """LR multiplier: warm-up, then cosine decay from 1 to ``end_value`` over all of training."""
    return WarmupParamScheduler(
        CosineParamScheduler(1.0, end_value),
        warmup_factor=warmup_factor,
        warmup_length=min(warmup_iters, max_iter - 1) / max_iter,
        warmup_method=warmup_method,
    )

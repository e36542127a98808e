"""Ready-made LR multipliers (warm-up + multi-step, warm-up + cosine) in iterations."""

import logging
from collections.abc import Sequence

from fvcore.common.param_scheduler import (
    CompositeParamScheduler,
    ConstantParamScheduler,
    CosineParamScheduler,
    MultiStepParamScheduler,
)

from .lr_scheduler import WarmupParamScheduler

__all__ = ["multistep_with_warmup", "cosine_with_warmup", "flat_cosine_with_warmup"]


def multistep_with_warmup(
    max_iter: int,
    steps: Sequence[int] | None = None,
    gamma: float = 0.1,
    warmup_iters: int = 500,
    warmup_factor: float = 1.0 / 3,
    warmup_method: str = "linear",
    step_fractions: Sequence[float] | None = None,
) -> WarmupParamScheduler:
    """
    LR multiplier: warm-up over ``warmup_iters`` iterations, then 1, multiplied by ``gamma``
    at each step.

    Args:
        max_iter: training length in iterations.
        steps: iterations at which the lr drops (strictly increasing, inside (0, max_iter)).
        step_fractions: instead of ``steps``: the drops as fractions of ``max_iter``, e.g.
            MMRotate's "1x" (12 epochs, drops after epochs 8 and 11) is ``(8/12, 11/12)``. With
            very short runs, drops that fall on the same iteration are merged (with a warning).
        warmup_iters: clamped to ``max_iter - 1``.
    """
    max_iter = int(max_iter)
    if (steps is None) == (step_fractions is None):
        raise ValueError("give exactly one of steps (iterations) or step_fractions")
    if step_fractions is not None:
        if any(not 0.0 < f < 1.0 for f in step_fractions):
            raise ValueError(f"step_fractions must be inside (0, 1), got {list(step_fractions)}")
        wanted = [round(f * max_iter) for f in step_fractions]
        steps = sorted({s for s in wanted if 0 < s < max_iter})
        if len(steps) != len(wanted):
            logging.getLogger(__name__).warning(
                "LR steps %s of a %d-iteration run collapse to %s", wanted, max_iter, steps
            )
    assert steps is not None  # exactly one of steps and step_fractions was given
    steps = [int(s) for s in steps]
    if any(not 0 < s < max_iter for s in steps) or any(
        a >= b for a, b in zip(steps, steps[1:], strict=False)
    ):
        raise ValueError(
            f"steps must be strictly increasing and inside (0, {max_iter}), got {steps}"
        )
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
    max_iter = int(max_iter)
    return WarmupParamScheduler(
        CosineParamScheduler(1.0, end_value),
        warmup_factor=warmup_factor,
        warmup_length=min(warmup_iters, max_iter - 1) / max_iter,
        warmup_method=warmup_method,
    )


def flat_cosine_with_warmup(
    max_iter: int,
    flat_fraction: float = 0.5,
    end_value: float = 0.05,
    warmup_iters: int = 1000,
    warmup_factor: float = 1e-5,
    warmup_method: str = "linear",
) -> WarmupParamScheduler:
    """LR multiplier: warm-up, 1 until ``flat_fraction`` of training, then cosine decay from 1 to
    ``end_value`` over the rest (RTMDet's schedule: flat for the first half of the epochs, cosine
    to 0.05 over the second; warm-up from 1e-5 over 1000 iterations).

    Args:
        max_iter: training length in iterations.
        flat_fraction: the part of training at lr x1, in (0, 1).
        end_value: multiplier at the end of training.
        warmup_iters: clamped to ``max_iter - 1``.
    """
    max_iter = int(max_iter)
    if not 0.0 < flat_fraction < 1.0:
        raise ValueError(f"flat_fraction must be inside (0, 1), got {flat_fraction}")
    main = CompositeParamScheduler(
        [ConstantParamScheduler(1.0), CosineParamScheduler(1.0, end_value)],
        interval_scaling=["rescaled", "rescaled"],
        lengths=[flat_fraction, 1.0 - flat_fraction],
    )
    return WarmupParamScheduler(
        main,
        warmup_factor=warmup_factor,
        warmup_length=min(warmup_iters, max_iter - 1) / max_iter,
        warmup_method=warmup_method,
    )

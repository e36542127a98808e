"""LR schedules: fvcore ParamSchedulers (with warm-up) driving a torch LR scheduler."""

import math

import torch
from fvcore.common.param_scheduler import (
    CompositeParamScheduler,
    ConstantParamScheduler,
    LinearParamScheduler,
    ParamScheduler,
)

__all__ = ["WarmupParamScheduler", "LRMultiplier"]


class WarmupParamScheduler(CompositeParamScheduler):
    """
    Prepend a warm-up to a ParamScheduler.

    For ``where`` (training progress in [0, 1)) below ``warmup_length``, the value is
    ``scheduler(warmup_length) * f`` with ``f`` rising linearly from ``warmup_factor`` to 1
    (``warmup_method="linear"``) or constant ``warmup_factor`` (``"constant"``); after that it
    is ``scheduler(where)`` (or, with ``rescale_interval=True``, the scheduler is stretched over
    the remaining interval).

    Args:
        scheduler: the main schedule, a ParamScheduler over [0, 1].
        warmup_factor: multiplier at the start of warm-up (e.g. 1/3 or 0.001).
        warmup_length: length of warm-up as a fraction of training (e.g. 500 / max_iter).
    """

    def __init__(
        self,
        scheduler: ParamScheduler,
        warmup_factor: float,
        warmup_length: float,
        warmup_method: str = "linear",
        rescale_interval: bool = False,
    ):
        if not 0.0 <= warmup_length < 1.0:
            raise ValueError(f"warmup_length must be a fraction in [0, 1), got {warmup_length}")
        end_value = scheduler(warmup_length)
        start_value = warmup_factor * scheduler(0.0)
        if warmup_method == "constant":
            warmup = ConstantParamScheduler(start_value)
        elif warmup_method == "linear":
            warmup = LinearParamScheduler(start_value, end_value)
        else:
            raise ValueError(f"warmup_method must be 'linear' or 'constant', got {warmup_method!r}")
        if warmup_length == 0.0:
            warmup_length = 1e-12  # CompositeParamScheduler needs positive lengths
        super().__init__(
            [warmup, scheduler],
            interval_scaling=["rescaled", "rescaled" if rescale_interval else "fixed"],
            lengths=[warmup_length, 1 - warmup_length],
        )


class LRMultiplier(torch.optim.lr_scheduler.LRScheduler):
    """
    A torch LR scheduler whose lr at iteration ``i`` is ``base_lr * multiplier(i / max_iter)``
    for every param group (so per-group lrs keep their ratios). Call ``step()`` once per
    iteration, after ``optimizer.step()``.

    Its state dict holds only ``base_lrs`` and ``last_epoch`` (the multiplier comes from the
    config), so checkpoints stay loadable with ``torch.load(weights_only=True)``.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        multiplier: ParamScheduler,
        max_iter: int,
        last_iter: int = -1,
    ):
        if not isinstance(multiplier, ParamScheduler):
            raise ValueError(
                f"LRMultiplier needs an fvcore ParamScheduler as multiplier, got {multiplier!r}"
            )
        if max_iter <= 0:
            raise ValueError(f"max_iter must be positive, got {max_iter}")
        self._multiplier = multiplier
        self._max_iter = int(max_iter)
        super().__init__(optimizer, last_epoch=last_iter)

    def state_dict(self) -> dict:
        return {"base_lrs": list(self.base_lrs), "last_epoch": self.last_epoch}

    def load_state_dict(self, state_dict: dict) -> None:
        self.base_lrs = list(state_dict["base_lrs"])
        self.last_epoch = int(state_dict["last_epoch"])
        # re-apply the lr of the restored iteration to the optimizer
        for group, lr in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
            group["lr"] = lr
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def get_lr(self) -> list[float | torch.Tensor]:
        where = self.last_epoch / self._max_iter
        value = self._multiplier(min(where, math.nextafter(1.0, 0.0)))
        return [base_lr * value for base_lr in self.base_lrs]

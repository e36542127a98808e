# LR schedules (multipliers of the optimizer's lr over training) as LazyCalls.
# Use: `lr_multiplier = mmrotate_1x(train.max_iter)`; each value stays overridable,
# e.g. `lr_multiplier.warmup_iters=1000`.
from rotated_det.config import LazyCall as L
from rotated_det.solver import cosine_with_warmup, multistep_with_warmup


def multistep(max_iter, steps, gamma=0.1, warmup_iters=500, warmup_factor=1.0 / 3):
    """Linear warm-up for `warmup_iters` iterations from `warmup_factor`, then x`gamma` at each
    iteration in `steps`."""
    return L(multistep_with_warmup)(
        max_iter=max_iter,
        steps=list(steps),
        gamma=gamma,
        warmup_iters=warmup_iters,
        warmup_factor=warmup_factor,
    )


def mmrotate_1x(max_iter, warmup_iters=500):
    """MMRotate's 1x schedule mapped to iterations: 12 "epochs" of max_iter / 12 iterations,
    lr x0.1 after epochs 8 and 11, linear warm-up over 500 iterations from 1/3."""
    return multistep(
        max_iter,
        steps=(max_iter * 8 // 12, max_iter * 11 // 12),
        warmup_iters=warmup_iters,
        warmup_factor=1.0 / 3,
    )


def mmrotate_3x(max_iter, warmup_iters=500):
    """MMRotate's 3x schedule: 36 epochs, lr x0.1 after epochs 24 and 33."""
    return multistep(
        max_iter,
        steps=(max_iter * 24 // 36, max_iter * 33 // 36),
        warmup_iters=warmup_iters,
        warmup_factor=1.0 / 3,
    )


def cosine(max_iter, warmup_iters=500, warmup_factor=0.001, end_value=0.0):
    """Linear warm-up, then cosine decay to `end_value` times the base lr."""
    return L(cosine_with_warmup)(
        max_iter=max_iter,
        warmup_iters=warmup_iters,
        warmup_factor=warmup_factor,
        end_value=end_value,
    )

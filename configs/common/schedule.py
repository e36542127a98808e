# LR schedules (multipliers of the optimizer's lr over training) as LazyCalls.
#
#   lr_multiplier = mmrotate_1x()
#
# By default `max_iter` follows `train.max_iter` (an interpolation), so `train.max_iter=3000` on
# the command line also moves the lr drops; every value stays overridable, e.g.
# `lr_multiplier.warmup_iters=1000`.
from rotated_det.config import LazyCall as L
from rotated_det.solver import cosine_with_warmup, flat_cosine_with_warmup, multistep_with_warmup

FOLLOW_TRAIN = "${train.max_iter}"


def multistep(max_iter=FOLLOW_TRAIN, steps=None, step_fractions=None, gamma=0.1,
              warmup_iters=500, warmup_factor=1.0 / 3):  # fmt: skip
    """Linear warm-up for `warmup_iters` iterations from `warmup_factor`, then x`gamma` at each
    iteration in `steps` (or at each fraction of training in `step_fractions`)."""
    return L(multistep_with_warmup)(
        max_iter=max_iter,
        steps=None if steps is None else list(steps),
        step_fractions=None if step_fractions is None else list(step_fractions),
        gamma=gamma,
        warmup_iters=warmup_iters,
        warmup_factor=warmup_factor,
    )


def mmrotate_1x(max_iter=FOLLOW_TRAIN, warmup_iters=500):
    """MMRotate's 1x schedule in iterations: 12 "epochs", lr x0.1 after epochs 8 and 11, linear
    warm-up over 500 iterations from 1/3."""
    return multistep(max_iter, step_fractions=(8 / 12, 11 / 12), warmup_iters=warmup_iters)


def mmrotate_3x(max_iter=FOLLOW_TRAIN, warmup_iters=500):
    """MMRotate's 3x schedule: 36 epochs, lr x0.1 after epochs 24 and 33."""
    return multistep(max_iter, step_fractions=(24 / 36, 33 / 36), warmup_iters=warmup_iters)


def cosine(max_iter=FOLLOW_TRAIN, warmup_iters=500, warmup_factor=0.001, end_value=0.0):
    """Linear warm-up, then cosine decay to `end_value` times the base lr."""
    return L(cosine_with_warmup)(
        max_iter=max_iter,
        warmup_iters=warmup_iters,
        warmup_factor=warmup_factor,
        end_value=end_value,
    )


def flat_cosine(max_iter=FOLLOW_TRAIN, flat_fraction=0.5, end_value=0.05, warmup_iters=1000,
                warmup_factor=1e-5):  # fmt: skip
    """RTMDet's schedule: linear warm-up from `warmup_factor` over `warmup_iters`, lr x1 until
    `flat_fraction` of training, then cosine decay to `end_value` times the base lr."""
    return L(flat_cosine_with_warmup)(
        max_iter=max_iter,
        flat_fraction=flat_fraction,
        end_value=end_value,
        warmup_iters=warmup_iters,
        warmup_factor=warmup_factor,
    )

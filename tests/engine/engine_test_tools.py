"""Helpers shared by the engine tests: stopping a training run at an iteration (a simulated
kill) and importing ``tools/lazyconfig_train_net.py`` as a module."""

import types

from script_loading import load_script

from rotated_det.engine import hooks


class StopTraining(Exception):
    """Raised by :func:`stop_at` before the step of its iteration runs."""


def stop_at(iteration: int) -> hooks.CallbackHook:
    """A hook that raises :class:`StopTraining` before iteration ``iteration`` (a kill there)."""

    def before_step(trainer):
        if trainer.iter == iteration:
            raise StopTraining()

    return hooks.CallbackHook(before_step=before_step)


def load_train_tool() -> types.ModuleType:
    """``tools/lazyconfig_train_net.py`` imported as a module (its ``main``, ``do_test``...)."""
    return load_script("tools/lazyconfig_train_net.py")

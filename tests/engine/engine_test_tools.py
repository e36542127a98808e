"""Helpers shared by the engine tests: stopping a training run at an iteration (a simulated
kill) and importing ``tools/lazyconfig_train_net.py`` as a module."""

import importlib.util
import os
import types

from rotated_det.engine import hooks

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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
    path = os.path.join(REPO, "tools", "lazyconfig_train_net.py")
    spec = importlib.util.spec_from_file_location("lazyconfig_train_net", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

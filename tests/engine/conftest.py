"""Restore the logging set-up after each engine test.

default_setup() / DefaultTrainer configure the "rotated_det" and "fvcore" loggers like an
application does (own handlers, propagate=False). Undo that after each test, so later tests
of the session (and pytest's caplog) see the default logging behaviour again.
"""

import logging

import pytest

from rotated_det.utils.logger import setup_logger

_NAMES = ("rotated_det", "fvcore")


@pytest.fixture(autouse=True)
def _restore_logging():
    saved = {}
    for name in _NAMES:
        lg = logging.getLogger(name)
        saved[name] = (list(lg.handlers), lg.propagate, lg.level)
    yield
    for name, (handlers, propagate, level) in saved.items():
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            if h not in handlers:
                lg.removeHandler(h)
        lg.propagate, lg.level = propagate, level
    setup_logger.cache_clear()

"""Fixtures shared by all tests."""

import logging
from pathlib import Path

import pytest

from sample_data import dota_samples_dir


class LogCapture(logging.Handler):
    """Collect records of a logger, whatever its propagate flag (setup_logger clears it)."""

    def __init__(self, name: str):
        super().__init__(logging.DEBUG)
        self.records: list[str] = []
        self._logger = logging.getLogger(name)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())

    def __enter__(self):
        self._logger.addHandler(self)
        self._old_level = self._logger.level
        self._logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc):
        self._logger.removeHandler(self)
        self._logger.setLevel(self._old_level)

    @property
    def text(self) -> str:
        return "\n".join(self.records)


@pytest.fixture
def capture_logs():
    """``with capture_logs("rotated_det.x") as logs: ...`` then ``logs.records`` / ``logs.text``."""
    return LogCapture


@pytest.fixture(scope="session")
def dota_samples() -> Path:
    """The real DOTA samples folder, ``tests/data/dota_samples`` (images/, labelTxt/, unlabeled/).

    The one way tests reach it; fails with the missing files named when it is incomplete.
    """
    return dota_samples_dir()

"""Logging setup (console + file, rank aware) and rate-limited logging helpers."""

import functools
import logging
import os
import sys
import time
from collections import Counter

from .file_io import PathManager

__all__ = ["setup_logger", "log_first_n", "log_every_n", "log_every_n_seconds"]


class _ColorfulFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging API)
        msg = super().formatMessage(record)
        if record.levelno == logging.WARNING:
            return "\x1b[33mWARNING\x1b[0m " + msg
        if record.levelno >= logging.ERROR:
            return "\x1b[31mERROR\x1b[0m " + msg
        return msg


@functools.lru_cache  # the same logger is set up only once per (output, rank, name)
def setup_logger(
    output: str | None = None,
    distributed_rank: int = 0,
    *,
    color: bool = True,
    name: str = "rotated_det",
    abbrev_name: str | None = None,
    level: int = logging.DEBUG,
) -> logging.Logger:
    """
    Configure logger ``name``: INFO and above to stdout on rank 0, everything to a file.

    Args:
        output: a file name (ending in .txt/.log) or a directory (then ``log.txt`` in it).
            Ranks other than 0 write to ``<file>.rank<r>``. None: no file.
        distributed_rank: this process's rank.
        color: colour warnings/errors on the console.
        name: root of the logger hierarchy to configure.
        abbrev_name: short name shown in console lines (default: "rd" for "rotated_det").
    """
    logger = logging.getLogger(name)
    logger.setLevel(level)
    logger.propagate = False
    if abbrev_name is None:
        abbrev_name = "rd" if name == "rotated_det" else name
    plain = logging.Formatter(
        "[%(asctime)s] %(name)s %(levelname)s: %(message)s", datefmt="%m/%d %H:%M:%S"
    )
    if distributed_rank == 0:
        # one console handler per logger, even if set up again with another output dir
        for h in list(logger.handlers):
            if getattr(h, "_rotated_det_console", False):
                logger.removeHandler(h)
        ch = logging.StreamHandler(stream=sys.stdout)
        ch._rotated_det_console = True  # type: ignore[attr-defined]
        ch.setLevel(logging.INFO)
        fmt = "[%(asctime)s %(name)s]: %(message)s"
        formatter: logging.Formatter
        if color and sys.stdout.isatty():
            formatter = _ColorfulFormatter(fmt, datefmt="%m/%d %H:%M:%S")
        else:
            formatter = plain
        ch.setFormatter(formatter)
        logger.addHandler(ch)
    if output is not None:
        if output.endswith((".txt", ".log")):
            filename = output
        else:
            filename = os.path.join(output, "log.txt")
        if distributed_rank > 0:
            filename = f"{filename}.rank{distributed_rank}"
        PathManager.mkdirs(os.path.dirname(os.path.abspath(filename)))
        fh = logging.StreamHandler(_cached_log_stream(filename))
        fh.setLevel(level)
        fh.setFormatter(plain)
        logger.addHandler(fh)
    return logger


@functools.cache
def _cached_log_stream(filename: str):
    # line buffered, so a killed run keeps its log
    return PathManager.open(filename, "a", buffering=1)


def _caller_key() -> tuple[str, tuple]:
    """(logger name, caller location) of the code that called the log_* helper."""
    frame = sys._getframe(2)
    module = frame.f_globals.get("__name__", "__main__")
    if module == __name__ and frame.f_back is not None:
        frame = frame.f_back
        module = frame.f_globals.get("__name__", "__main__")
    return module, (frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name)


_LOG_COUNTER: Counter = Counter()
_LOG_TIMER: dict = {}


def log_first_n(lvl: int, msg: str, n: int = 1, *, name: str | None = None) -> None:
    """Log ``msg`` only the first ``n`` times this call site runs."""
    module, key = _caller_key()
    _LOG_COUNTER[key] += 1
    if _LOG_COUNTER[key] <= n:
        logging.getLogger(name or module).log(lvl, msg)


def log_every_n(lvl: int, msg: str, n: int = 1, *, name: str | None = None) -> None:
    """Log ``msg`` once every ``n`` times this call site runs (first call included)."""
    module, key = _caller_key()
    _LOG_COUNTER[key] += 1
    if n == 1 or _LOG_COUNTER[key] % n == 1:
        logging.getLogger(name or module).log(lvl, msg)


def log_every_n_seconds(lvl: int, msg: str, n: float = 1, *, name: str | None = None) -> None:
    """Log ``msg`` at most once every ``n`` seconds from this call site."""
    module, key = _caller_key()
    last = _LOG_TIMER.get(key)
    now = time.time()
    if last is None or now - last >= n:
        logging.getLogger(name or module).log(lvl, msg)
        _LOG_TIMER[key] = now

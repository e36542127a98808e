"""
EventStorage: the place where training code puts scalars (losses, lr, timings), images and
histograms per iteration; and the writers that periodically read it (console, metrics.json,
TensorBoard).
"""

import datetime
import json
import logging
import os
import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Any

import torch
from fvcore.common.history_buffer import HistoryBuffer

from .file_io import PathManager

__all__ = [
    "get_event_storage",
    "has_event_storage",
    "EventStorage",
    "EventWriter",
    "JSONWriter",
    "TensorboardXWriter",
    "supersede_rows",
    "superseded_path",
    "CommonMetricPrinter",
]

_CURRENT_STORAGE_STACK: list["EventStorage"] = []


def get_event_storage() -> "EventStorage":
    """The innermost EventStorage in use (``with EventStorage(): ...``)."""
    if not _CURRENT_STORAGE_STACK:
        raise RuntimeError(
            "get_event_storage() has to be called inside a 'with EventStorage(...)' context "
            "(the trainer opens one around training)."
        )
    return _CURRENT_STORAGE_STACK[-1]


def has_event_storage() -> bool:
    return bool(_CURRENT_STORAGE_STACK)


class EventStorage:
    """
    Per-iteration metrics. ``put_scalar(name, value)`` appends ``(value, iter)`` to a
    history; writers read ``latest()`` / ``history(name)``. Values are stored as Python
    floats (tensors are converted with ``.item()``).
    """

    def __init__(self, start_iter: int = 0):
        self._history: dict[str, HistoryBuffer] = defaultdict(HistoryBuffer)
        self._smoothing_hints: dict[str, bool] = {}
        self._latest_scalars: dict[str, tuple[float, int]] = {}
        self._iter = start_iter
        self._current_prefix = ""
        self._vis_data: list[tuple[str, Any, int]] = []
        self._histograms: list[dict] = []

    def put_scalar(self, name: str, value: Any, smoothing_hint: bool = True, cur_iter=None):
        """
        Record a scalar at the current (or given) iteration.

        Args:
            smoothing_hint: whether writers should report a windowed median rather than the
                raw latest value (True for noisy values such as losses).
        """
        name = self._current_prefix + name
        cur_iter = self._iter if cur_iter is None else cur_iter
        value = float(value.item() if torch.is_tensor(value) else value)
        self._history[name].update(value, cur_iter)
        self._latest_scalars[name] = (value, cur_iter)
        existing = self._smoothing_hints.get(name)
        if existing is not None and existing != smoothing_hint:
            raise ValueError(f"Scalar {name} was put with a different smoothing_hint before.")
        self._smoothing_hints[name] = smoothing_hint

    def put_scalars(self, *, smoothing_hint: bool = True, cur_iter=None, **kwargs: Any) -> None:
        for k, v in kwargs.items():
            self.put_scalar(k, v, smoothing_hint=smoothing_hint, cur_iter=cur_iter)

    def put_image(self, img_name: str, img_tensor: torch.Tensor) -> None:
        """Queue an image (CHW, float in [0, 1] or uint8) for the TensorBoard writer."""
        self._vis_data.append((img_name, img_tensor, self._iter))

    def put_histogram(self, hist_name: str, hist_tensor: torch.Tensor, bins: int = 100) -> None:
        """Queue a histogram of ``hist_tensor`` values for the TensorBoard writer."""
        t = hist_tensor.detach().float().cpu()
        lo, hi = t.min().item(), t.max().item()
        counts = torch.histc(t, bins=bins)
        edges = torch.linspace(lo, hi, steps=bins + 1)
        self._histograms.append(
            dict(
                tag=hist_name,
                min=lo,
                max=hi,
                num=len(t),
                sum=float(t.sum()),
                sum_squares=float((t**2).sum()),
                bucket_limits=edges[1:].tolist(),
                bucket_counts=counts.tolist(),
                global_step=self._iter,
            )
        )

    def history(self, name: str) -> HistoryBuffer:
        if name not in self._history:
            raise KeyError(f"No history metric available for {name}!")
        return self._history[name]

    def histories(self) -> dict[str, HistoryBuffer]:
        return self._history

    def latest(self) -> dict[str, tuple[float, int]]:
        """name -> (latest value, iteration it was put at)."""
        return self._latest_scalars

    def latest_with_smoothing_hint(self, window_size: int = 20) -> dict[str, tuple[float, int]]:
        """Like latest(), with median over ``window_size`` for smoothed scalars."""
        out = {}
        for k, (v, itr) in self._latest_scalars.items():
            if self._smoothing_hints[k]:
                v = self._history[k].median(window_size)
            out[k] = (v, itr)
        return out

    def smoothing_hints(self) -> dict[str, bool]:
        return self._smoothing_hints

    def step(self) -> None:
        """Advance the iteration counter (called by the trainer after each iteration)."""
        self._iter += 1

    @property
    def iter(self) -> int:
        return self._iter

    @iter.setter
    def iter(self, val: int) -> None:
        self._iter = int(val)

    def __enter__(self) -> "EventStorage":
        _CURRENT_STORAGE_STACK.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        assert _CURRENT_STORAGE_STACK[-1] is self
        _CURRENT_STORAGE_STACK.pop()

    @contextmanager
    def name_scope(self, name: str):
        """Prefix every scalar put inside the block with ``name/``."""
        old = self._current_prefix
        self._current_prefix = name.rstrip("/") + "/"
        try:
            yield
        finally:
            self._current_prefix = old

    def clear_images(self) -> None:
        self._vis_data = []

    def clear_histograms(self) -> None:
        self._histograms = []


class EventWriter:
    """Base of writers that read the current EventStorage in ``write()``."""

    def start(self, start_iter: int) -> None:
        """Called once before the first ``write()`` of a training run (by PeriodicWriter),
        with the first iteration the run trains: 0, or the iteration after the checkpoint
        when resuming. A writer whose output outlives a run (a file in the output folder)
        drops there what an earlier run wrote for iterations >= ``start_iter``, so that each
        iteration appears once after a resume. The default does nothing."""

    def write(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class JSONWriter(EventWriter):
    """
    Append one JSON line per iteration with new scalars to a file (``metrics.json``)::

        {"iteration": 19, "loss": 1.2, "lr": 0.01, "time": 0.1}

    :meth:`start` (called when training starts or resumes at ``start_iter``) first moves the
    rows with ``iteration >= start_iter`` that an earlier run wrote (a run killed after its
    last checkpoint logged iterations that the resumed run trains again) to
    ``<name>_superseded.json`` next to the file; see :func:`supersede_rows`.
    """

    def __init__(self, json_file: str, window_size: int = 20):
        self._json_file = json_file
        self._file_handle = PathManager.open(json_file, "a")
        self._window_size = window_size
        self._last_write = -1

    def start(self, start_iter: int) -> None:
        self._file_handle.close()
        supersede_rows(self._json_file, start_iter)
        self._file_handle = PathManager.open(self._json_file, "a")

    def write(self) -> None:
        storage = get_event_storage()
        by_iter: dict[int, dict[str, float]] = defaultdict(dict)
        for k, (v, itr) in storage.latest_with_smoothing_hint(self._window_size).items():
            if itr <= self._last_write:
                continue
            by_iter[itr][k] = v
        if by_iter:
            self._last_write = max(by_iter)
        for itr, scalars in sorted(by_iter.items()):
            scalars["iteration"] = itr
            self._file_handle.write(json.dumps(scalars, sort_keys=True) + "\n")
        # flush, no fsync: fsync costs ~10 ms on some file systems and metrics are not
        # worth it (checkpoints are what must survive a crash)
        self._file_handle.flush()

    def close(self) -> None:
        self._file_handle.close()


def _sync(f: Any) -> None:
    """Flush a file to the disk (a no-op for file objects without a descriptor)."""
    f.flush()
    try:
        os.fsync(f.fileno())
    except (AttributeError, OSError):
        pass


def superseded_path(json_file: str) -> str:
    """Where :func:`supersede_rows` moves rows: ``metrics.json`` -> ``metrics_superseded.json``."""
    stem, ext = os.path.splitext(json_file)
    return f"{stem}_superseded{ext or '.json'}"


def supersede_rows(json_file: str, start_iter: int) -> int:
    """
    Move the rows of a JSON-lines metrics file whose ``iteration`` is >= ``start_iter`` to
    :func:`superseded_path`, so that a run starting (or resuming) at ``start_iter`` writes each
    iteration once. Lines that are not a JSON object with an integer ``iteration`` (the
    half-written last line of a killed run) are moved too, as ``{"unparsed_line": text}``.
    Each moved row gets ``"superseded_at": start_iter``; the superseded file is appended to, so
    the rows of several resumes accumulate there and nothing is lost.

    The superseded rows are written (and synced) first, then the kept rows to a temporary file
    that replaces the original atomically: a crash in between leaves a row in both files, never
    in neither.

    Returns:
        the number of rows moved (0 when the file does not exist or has none to move).
    """
    if not PathManager.exists(json_file):
        return 0
    with PathManager.open(json_file, "r") as f:
        lines = f.read().splitlines()
    keep, moved = [], []
    for line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            itr = row["iteration"]
            if not isinstance(itr, int) or isinstance(itr, bool):
                raise TypeError
        except (ValueError, TypeError, KeyError):
            moved.append({"unparsed_line": line, "superseded_at": start_iter})
            continue
        if itr < start_iter:
            keep.append(line)
        else:
            moved.append({**row, "superseded_at": start_iter})
    if not moved:
        return 0
    side = superseded_path(json_file)
    with PathManager.open(side, "a") as f:
        f.write("".join(json.dumps(r, sort_keys=True) + "\n" for r in moved))
        _sync(f)
    tmp = json_file + ".tmp"
    with PathManager.open(tmp, "w") as f:
        f.write("".join(line + "\n" for line in keep))
        _sync(f)
    os.replace(tmp, json_file)
    logging.getLogger(__name__).info(
        "%s: moved %d row(s) with iteration >= %d, written by an earlier run, to %s (training "
        "starts at iteration %d: each iteration appears once in %s).",
        json_file, len(moved), start_iter, side, start_iter, os.path.basename(json_file),
    )  # fmt: skip
    return len(moved)


class TensorboardXWriter(EventWriter):
    """Write scalars, images and histograms to TensorBoard event files in ``log_dir``.

    The SummaryWriter is created by :meth:`start` with ``purge_step=start_iter``: TensorBoard
    then hides the events an earlier run wrote in ``log_dir`` for iterations >= ``start_iter``
    (a resumed run logs them again). Without ``start`` it is created at the first ``write``.

    Args:
        kwargs: passed to ``torch.utils.tensorboard.SummaryWriter``.
    """

    def __init__(self, log_dir: str, window_size: int = 20, **kwargs: Any):
        from torch.utils.tensorboard import SummaryWriter  # fail here if tensorboard is missing

        self._summary_writer = SummaryWriter
        self._log_dir = log_dir
        self._kwargs = kwargs
        self._window_size = window_size
        self._writer: Any = None
        self._last_write = -1

    def start(self, start_iter: int) -> None:
        if self._writer is None:  # (a writer that already wrote keeps its event file)
            self._kwargs.setdefault("purge_step", start_iter)
            self._get_writer()

    def _get_writer(self) -> Any:
        if self._writer is None:
            self._writer = self._summary_writer(self._log_dir, **self._kwargs)
        return self._writer

    def write(self) -> None:
        storage = get_event_storage()
        writer = self._get_writer()
        new_last = self._last_write
        for k, (v, itr) in storage.latest_with_smoothing_hint(self._window_size).items():
            if itr > self._last_write:
                writer.add_scalar(k, v, itr)
                new_last = max(new_last, itr)
        self._last_write = new_last
        if storage._vis_data:
            for name, img, itr in storage._vis_data:
                writer.add_image(name, img, itr)
            storage.clear_images()
        if storage._histograms:
            for h in storage._histograms:
                writer.add_histogram_raw(**h)
            storage.clear_histograms()

    def close(self) -> None:
        if getattr(self, "_writer", None) is not None:
            self._writer.close()


class CommonMetricPrinter(EventWriter):
    """
    Print the common metrics to the log: ETA, iteration, losses (windowed medians), time per
    iteration, data time, learning rate and peak GPU memory::

        eta: 0:01:02  iter: 19/100  total_loss: 1.234  loss_cls: 0.9  time: 0.101 s/it
        data_time: 0.002 s  lr: 0.0100  max_mem: 812M
    """

    def __init__(self, max_iter: int | None = None, window_size: int = 20):
        self.logger = logging.getLogger("rotated_det.utils.events")
        self._max_iter = max_iter
        self._window_size = window_size
        self._last_write: tuple[int, float] | None = None

    def _eta(self, storage: EventStorage) -> str | None:
        if self._max_iter is None:
            return None
        iteration = storage.iter
        try:
            eta_seconds = storage.history("time").median(1000) * (self._max_iter - iteration - 1)
            storage.put_scalar("eta_seconds", eta_seconds, smoothing_hint=False)
            return str(datetime.timedelta(seconds=int(eta_seconds)))
        except KeyError:
            # no timing yet: estimate from wall clock between two writes
            eta = None
            if self._last_write is not None:
                it0, t0 = self._last_write
                per_iter = (time.perf_counter() - t0) / max(iteration - it0, 1)
                eta = str(
                    datetime.timedelta(seconds=int(per_iter * (self._max_iter - iteration - 1)))
                )
            self._last_write = (iteration, time.perf_counter())
            return eta

    def write(self) -> None:
        storage = get_event_storage()
        iteration = storage.iter
        if self._max_iter is not None and iteration == self._max_iter:
            # after the last step (e.g. a final evaluation) nothing new to report
            return

        def median(name: str) -> float | None:
            try:
                return storage.history(name).median(self._window_size)
            except KeyError:
                return None

        def avg(name: str) -> float | None:
            try:
                return storage.history(name).avg(self._window_size)
            except KeyError:
                return None

        data_time = avg("data_time")
        iter_time = avg("time")
        try:
            lr = f"{storage.history('lr').latest():.5g}"
        except KeyError:
            lr = "N/A"
        eta = self._eta(storage)
        max_mem = None
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            max_mem = torch.cuda.max_memory_allocated() / 1024.0 / 1024.0
        losses = "  ".join(
            f"{k}: {median(k):.4g}"
            for k in storage.histories()
            if "loss" in k and storage.smoothing_hints().get(k, True)
        )
        parts = []
        if eta:
            parts.append(f"eta: {eta}")
        total = f"/{self._max_iter}" if self._max_iter is not None else ""
        parts.append(f"iter: {iteration}{total}")
        if losses:
            parts.append(losses)
        if iter_time is not None:
            parts.append(f"time: {iter_time:.4f} s/it")
        if data_time is not None:
            parts.append(f"data_time: {data_time:.4f} s")
        parts.append(f"lr: {lr}")
        if max_mem is not None:
            parts.append(f"max_mem: {max_mem:.0f}M")
        self.logger.info("  ".join(parts))

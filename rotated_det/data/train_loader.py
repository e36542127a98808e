"""The training data loader: an infinite stream of batches that can be resumed exactly.

Exact resume means: a run interrupted after ``B`` batches and resumed from
``loader.state_dict()`` sees the same batches afterwards (same images, same augmentations) as a run
that was never interrupted. Three things make that work:

1. **Positions.** The sampler's stream of dataset indices for this rank is numbered by position
   0, 1, 2, ... The stream is cut into *chunks* of ``batch_size`` positions; with ``W`` data
   workers, worker ``w`` reads the chunks ``w, w + W, w + 2W, ...`` (``W = 1`` in the main process
   when ``num_workers == 0``). Without aspect-ratio grouping a chunk is a batch, so the batches
   do not depend on ``num_workers``. The samplers skip to any position (``load_state_dict``).
2. **Per-item random numbers.** Before the item at position ``p`` is mapped, numpy's, Python's
   and torch's (CPU) global generators are seeded from ``(seed, rank, p)``, and restored after. An
   item's augmentation is therefore a function of its position only, whichever process maps it
   and however often (the main process's own random state is left untouched).
3. **Counting consumed batches.** Each batch leaves its worker together with the worker's state
   after it: the next position to read, and the positions still waiting in the aspect-ratio
   buckets. The loader records that state only when the trainer *takes* the batch, so batches
   that workers prefetched but the trainer never used are not counted. The torch DataLoader
   returns the workers' batches round robin, so after ``B`` batches the next one comes from
   worker ``B % W``; on resume the workers take their roles rotated by that much.

4. **Mappers with a memory.** A mapper that caches recent images (mosaic, mixup: see
   ``DatasetMapper.history_length``) is emptied (``reset_history()``) whenever a worker starts,
   and the ``history_length`` positions of that worker before its first one are mapped again
   (results thrown away), so its caches hold what an uninterrupted run would hold. (Exact as long
   as no item was waiting in an aspect-ratio bucket at the save: mosaic outputs share one shape.)

Resume is exact with the same ``num_workers``, batch size, dataset and mapper. With another
``num_workers`` the loader continues after the furthest position any worker had reached (a warning
says that the order differs); a state saved by another rank keeps only the positions.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import logging
import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.utils.data as data

__all__ = ["TrainBatchStream", "TrainDataLoader"]

logger = logging.getLogger(__name__)

_STATE_FORMAT = 1


@contextlib.contextmanager
def _seeded_global_rngs(seed: int):
    """Seed numpy's, ``random``'s and torch's CPU global generators; restore them afterwards."""
    np_state, py_state = np.random.get_state(), random.getstate()
    torch_state = torch.random.get_rng_state()
    np.random.seed(seed)
    random.seed(seed)
    torch.random.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
        torch.random.set_rng_state(torch_state)


def _fresh_state() -> dict:
    return {"next": 0, "pending": []}


class TrainBatchStream(data.IterableDataset):
    """The worker side of :class:`TrainDataLoader`: yields ``(batch, state)`` pairs forever.

    ``batch`` is a list of ``batch_size`` mapped dicts; ``state`` is this worker's position after
    the batch: ``{"worker": w, "next": p, "pending": [[position, index], ...]}``.

    Args:
        dataset: indexable dataset of (unmapped) dataset dicts.
        mapper: dataset dict -> model input dict, or None to drop the item (another random item
            is mapped instead; the fallbacks are counted and logged).
        sampler: infinite sampler of dataset indices for this rank; resumed at a position with its
            ``load_state_dict({"seed", "position"})`` if it has one, else by skipping items.
        batch_size: images per batch.
        aspect_ratio_grouping: batch landscape (w > h) and portrait images separately.
        seed: base of the per-item random seeds.
        rank: this process's rank (part of the per-item seeds).
    """

    def __init__(
        self,
        dataset,
        mapper: Callable,
        sampler,
        batch_size: int,
        aspect_ratio_grouping: bool,
        seed: int,
        rank: int = 0,
    ):
        self.dataset = dataset
        self.mapper = mapper
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.aspect_ratio_grouping = aspect_ratio_grouping
        self.seed = int(seed)
        self.rank = int(rank)
        self.num_fallbacks = 0
        # Set by TrainDataLoader before each iteration: one state per logical worker, and the
        # logical worker that DataLoader worker 0 plays.
        self.worker_states: list[dict] = [_fresh_state()]
        self.first_worker = 0

    def __iter__(self) -> Iterator[tuple[list, dict]]:
        info = data.get_worker_info()
        num, wid = (info.num_workers, info.id) if info is not None else (1, 0)
        if len(self.worker_states) != num:
            raise RuntimeError(
                f"TrainBatchStream has {len(self.worker_states)} worker states for {num} workers"
            )
        w = (wid + self.first_worker) % num
        # the state is read now, not at the first next(): later changes do not leak in
        return self._batches(w, num, copy.deepcopy(self.worker_states[w]))

    # ------------------------------------------------------------------ worker loop
    def _batches(self, w: int, num: int, state: dict) -> Iterator[tuple[list, dict]]:
        buckets: list[list[tuple[int, int, dict]]] = [[], []]
        nxt = int(state["next"])
        first = min([nxt] + [int(p) for p, _ in state["pending"]])
        self._rebuild_history(w, num, first)
        # Items that were waiting in the buckets when the state was saved come first: mapped
        # again with the same random numbers, they land in the same buckets in the same order.
        waiting = ((int(p), int(i), False) for p, i in state["pending"])
        fresh = ((p, i, True) for p, i in self._owned(w, num, nxt))
        for pos, idx, is_fresh in itertools.chain(waiting, fresh):
            if is_fresh:
                nxt = pos + 1
            d = self._map(pos, idx)
            bucket = buckets[self._bucket(d)]
            bucket.append((pos, idx, d))
            if len(bucket) == self.batch_size:
                batch = [e[2] for e in bucket]
                bucket.clear()
                pending = sorted([p, i] for b in buckets for p, i, _ in b)
                yield batch, {"worker": w, "next": nxt, "pending": pending}

    def _rebuild_history(self, w: int, num: int, first: int) -> None:
        """Empty a caching mapper and map again the last ``history_length`` positions of worker
        ``w`` before position ``first`` (see the module docstring, point 4)."""
        length = int(getattr(self.mapper, "history_length", 0) or 0)
        if length <= 0 or not hasattr(self.mapper, "reset_history"):
            return
        self.mapper.reset_history()
        chunks_back = (length + self.batch_size - 1) // self.batch_size + 1
        start = max(0, first - chunks_back * num * self.batch_size)
        before: list[tuple[int, int]] = []
        for pos, idx in self._owned(w, num, start):
            if pos >= first:
                break
            before.append((pos, idx))
        stats = copy.deepcopy(getattr(self.mapper, "stats", None))
        fallbacks = self.num_fallbacks
        for pos, idx in before[-length:]:
            self._map(pos, idx)
        if stats is not None:  # the replay is not new data: leave the counters as they were
            mapper: Any = self.mapper
            mapper.stats = stats
        self.num_fallbacks = fallbacks

    def _bucket(self, d: dict) -> int:
        if not self.aspect_ratio_grouping:
            return 0
        _, h, w = d["image"].shape
        return 0 if w > h else 1

    def _owned(self, w: int, num: int, start: int) -> Iterator[tuple[int, int]]:
        """(position, dataset index) of the positions >= start in worker w's chunks."""
        for pos, idx in enumerate(self._sampler_from(start), start):
            if (pos // self.batch_size) % num == w:
                yield pos, int(idx)

    def _sampler_from(self, start: int) -> Iterator[int]:
        s = self.sampler
        if hasattr(s, "load_state_dict") and hasattr(s, "state_dict"):
            s.load_state_dict({**s.state_dict(), "position": start})
            return iter(s)
        return itertools.islice(iter(s), start, None)

    def _map(self, pos: int, idx: int) -> dict:
        """Map the item at ``pos`` (dataset index ``idx``) with random numbers seeded by ``pos``."""
        key = [self.seed % 2**64, self.rank, pos]
        s_rng, s_fallback = np.random.SeedSequence(key).generate_state(2)
        with _seeded_global_rngs(int(s_rng)):
            cur, tried = idx, set()
            fallback_rng = None
            while True:
                out = self.mapper(self.dataset[cur])
                if out is not None:
                    return out
                tried.add(cur)
                self.num_fallbacks += 1
                if self.num_fallbacks in (1, 10, 100, 1000, 10000):
                    logger.info(
                        f"The mapper returned None {self.num_fallbacks} time(s) so far in this "
                        "process; each such item was replaced by another random item"
                    )
                if len(tried) == len(self.dataset):
                    raise RuntimeError("The mapper returned None for every item of the dataset")
                if len(tried) in (3, 30, 300):
                    logger.warning(
                        f"The mapper returned None for {len(tried)} items in a row (first: "
                        f"index {idx}); mapping other random items instead"
                    )
                if fallback_rng is None:
                    fallback_rng = random.Random(int(s_fallback))
                while cur in tried:
                    cur = fallback_rng.randrange(len(self.dataset))


class _CollateBatch:
    """Applies the user's collate function to the batch of a ``(batch, state)`` pair."""

    def __init__(self, collate_fn: Callable):
        self.collate_fn = collate_fn

    def __call__(self, item):
        batch, state = item
        return self.collate_fn(batch), state


class TrainDataLoader:
    """An infinite iterable of training batches with ``state_dict()`` / ``load_state_dict()``
    for exact resume (see the module docstring). Built by
    :func:`rotated_det.data.build_detection_train_loader`.

    Iterating it starts (or, after ``load_state_dict``, resumes) the stream where the batches
    taken so far end; a new ``iter()`` supersedes the previous iterator, which then raises if it
    is used again.

    Args:
        stream: the :class:`TrainBatchStream`.
        num_workers: DataLoader worker processes (0: load in the main process).
        collate_fn: applied to each batch (a list of mapped dicts) in the worker.
        worker_init_fn: passed to the torch DataLoader.
    """

    def __init__(
        self,
        stream: TrainBatchStream,
        *,
        num_workers: int = 0,
        collate_fn: Callable,
        worker_init_fn: Callable | None = None,
    ):
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.stream = stream
        self.num_workers = int(num_workers)
        self.batch_size = stream.batch_size
        self._loader = data.DataLoader(
            stream,
            batch_size=None,
            num_workers=self.num_workers,
            collate_fn=_CollateBatch(collate_fn),
            worker_init_fn=worker_init_fn,
            # The DataLoader draws its workers' base seed at every iter(): from its own generator,
            # not from the global one, whose state belongs to the training (dropout, ...).
            generator=torch.Generator().manual_seed(stream.seed),
        )
        self._num_streams = max(1, self.num_workers)
        self._worker_states = [_fresh_state() for _ in range(self._num_streams)]
        self._batches_taken = 0
        self._active: object | None = None
        self._restart_workers = False

    @property
    def dataset(self) -> TrainBatchStream:
        return self.stream

    @property
    def batches_taken(self) -> int:
        """Batches handed out so far (since the start of training, resumes included)."""
        return self._batches_taken

    @property
    def mapper(self) -> Callable:
        """The mapper of the stream (dataset dict -> model input)."""
        return self.stream.mapper

    def set_mapper(self, mapper: Callable) -> None:
        """Map the items after the batches taken so far with ``mapper`` (e.g. the weak pipeline
        of the last epochs, :class:`rotated_det.engine.hooks.PipelineSwitchHook`). An iterator
        in use continues with it: its workers are restarted at the next batch, and batches they
        had prepared with the old mapper are dropped (they were never taken, so the positions
        stay exact)."""
        self.stream.mapper = mapper
        self._restart_workers = True

    def _start_workers(self):
        self._restart_workers = False
        self.stream.worker_states = copy.deepcopy(self._worker_states)
        self.stream.first_worker = self._batches_taken % self._num_streams
        return iter(self._loader)

    def __iter__(self) -> Iterator:
        token = object()
        self._active = token
        # workers start (and copy the stream's state) here
        return self._take(self._start_workers(), token)

    def _take(self, it, token: object) -> Iterator:
        while True:
            if self._active is not token:
                raise RuntimeError(
                    "This train loader iterator was superseded by a newer iter(loader) or by "
                    "load_state_dict(); iterate the new one"
                )
            if self._restart_workers:
                del it  # shuts the old workers down
                it = self._start_workers()
            batch, state = next(it)
            w = state.pop("worker")
            self._worker_states[w] = state
            self._batches_taken += 1
            yield batch

    def state_dict(self) -> dict:
        """The position after the batches taken so far (plain Python values)."""
        sampler = self.stream.sampler
        return {
            "format": _STATE_FORMAT,
            "batches": self._batches_taken,
            "num_streams": self._num_streams,
            "batch_size": self.batch_size,
            "rank": self.stream.rank,
            "seed": self.stream.seed,
            "sampler": sampler.state_dict() if hasattr(sampler, "state_dict") else None,
            "streams": copy.deepcopy(self._worker_states),
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue after the batches counted in ``state`` at the next ``iter()``."""
        if state.get("format") != _STATE_FORMAT:
            raise ValueError(
                f"Unknown train loader state format {state.get('format')!r} "
                f"(expected {_STATE_FORMAT})"
            )
        self._active = None
        self.stream.seed = int(state["seed"])
        sampler = self.stream.sampler
        if state.get("sampler") is not None and hasattr(sampler, "load_state_dict"):
            sampler.load_state_dict(state["sampler"])
        streams = [dict(s) for s in state["streams"]]
        self._batches_taken = int(state["batches"])
        same_layout = (
            int(state["num_streams"]) == self._num_streams
            and int(state["batch_size"]) == self.batch_size
        )
        exact = same_layout and int(state["rank"]) == self.stream.rank
        if not same_layout:
            logger.warning(
                f"Train loader state was saved with {state['num_streams']} data stream(s) "
                f"(num_workers) and batch size {state['batch_size']}, resuming with "
                f"{self._num_streams} and {self.batch_size}: continuing after the furthest "
                "position reached; the data order differs from an uninterrupted run"
            )
            furthest = max(
                max([int(s["next"])] + [p + 1 for p, _ in s["pending"]]) for s in streams
            )
            self._worker_states = [_fresh_state() for _ in range(self._num_streams)]
            for s in self._worker_states:
                s["next"] = furthest
        elif not exact:
            logger.info(
                f"Train loader state of rank {state['rank']} loaded on rank {self.stream.rank}: "
                "resuming at its positions, without its waiting items"
            )
            self._worker_states = [{"next": int(s["next"]), "pending": []} for s in streams]
        else:
            self._worker_states = streams
        logger.info(
            f"Train loader resumes after {self._batches_taken} batches"
            + (" (exact data order)" if exact else "")
        )

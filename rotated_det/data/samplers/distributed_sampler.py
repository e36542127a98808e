"""Index samplers for training (infinite streams) and inference (each index exactly once).

Ranks come from ``torch.distributed`` when it is initialised (one process: rank 0 of 1).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data.sampler import Sampler

__all__ = [
    "TrainingSampler",
    "RepeatFactorTrainingSampler",
    "InferenceSampler",
    "repeat_factors_from_category_frequency",
]

logger = logging.getLogger(__name__)


def _rank_world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _shared_seed() -> int:
    """A random seed that is the same on every rank (rank 0's, broadcast). Drawn from numpy's
    global generator, so that seeding a run (``train.seed``, seeded by ``default_setup``) fixes
    the data order too."""
    seed = int(np.random.randint(2**31))
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        t = torch.tensor([seed], dtype=torch.int64)
        if dist.get_backend() == "nccl":
            t = t.cuda()
        dist.broadcast(t, 0)
        seed = int(t.item())
    return seed


class _ResumableStream:
    """Position bookkeeping shared by the infinite training samplers.

    ``position`` counts the indices of this rank's stream yielded so far (since the very start
    of the stream, not of the current iterator). ``state_dict()`` returns the seed and that
    position; after ``load_state_dict(state)`` the next ``iter(sampler)`` continues the same
    stream at ``state["position"]``. Skipping ahead draws the skipped epochs' permutations (the
    generator must advance through them) but yields nothing, so it is cheap.
    """

    _seed: int
    _rank: int
    _world_size: int

    def _init_position(self) -> None:
        self._start = 0
        self.position = 0

    def __iter__(self) -> Iterator[int]:
        self.position = start = self._start
        # rank r takes the items r, r + world, ... of the global stream
        global_start = start * self._world_size
        stream = self._infinite_indices(global_start)
        for idx in itertools.islice(stream, self._rank, None, self._world_size):
            self.position += 1
            yield idx

    def _infinite_indices(self, skip: int) -> Iterator[int]:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {"seed": self._seed, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        """Take the seed of ``state`` and start the next iteration at ``state["position"]``."""
        self._seed = int(state["seed"])
        self._start = self.position = int(state["position"])
        if self._start < 0:
            raise ValueError(f"sampler position must be >= 0, got {self._start}")


def _skip_epochs(epochs: Iterator[torch.Tensor], skip: int) -> Iterator[int]:
    """Concatenate ``epochs`` (1-D index tensors) and drop the first ``skip`` items."""
    for epoch in epochs:
        if skip >= len(epoch):
            skip -= len(epoch)
            continue
        yield from epoch[skip:].tolist()
        skip = 0


class TrainingSampler(_ResumableStream, Sampler):
    """Infinite stream of indices of a dataset of ``size`` items.

    Every rank draws the same shuffled sequence from ``seed`` (epoch after epoch, each a new
    permutation) and keeps the items ``rank, rank + world_size, ...``: the ranks together see
    every index once per epoch. With the same seed the stream is reproducible, and it can be
    resumed at any position (``state_dict`` / ``load_state_dict``).
    """

    def __init__(self, size: int, shuffle: bool = True, seed: int | None = None):
        if not isinstance(size, int) or size <= 0:
            raise ValueError(f"TrainingSampler(size=...) needs a positive int, got {size!r}")
        self._size = size
        self._shuffle = shuffle
        self._seed = int(seed) if seed is not None else _shared_seed()
        self._rank, self._world_size = _rank_world()
        self._init_position()

    def _infinite_indices(self, skip: int = 0) -> Iterator[int]:
        if not self._shuffle:
            return itertools.islice(itertools.cycle(range(self._size)), skip % self._size, None)
        g = torch.Generator()
        g.manual_seed(self._seed)

        def epochs():
            while True:
                yield torch.randperm(self._size, generator=g)

        return _skip_epochs(epochs(), skip)


def repeat_factors_from_category_frequency(
    dataset_dicts: Sequence[dict], repeat_thresh: float
) -> torch.Tensor:
    """LVIS-style repeat factor per image: ``max over its categories c of
    max(1, sqrt(repeat_thresh / f(c)))`` where ``f(c)`` is the fraction of images containing c.
    Images without objects get 1."""
    n = len(dataset_dicts)
    cat_images: defaultdict[int, int] = defaultdict(int)
    per_image = []
    for d in dataset_dicts:
        cats = {a["category_id"] for a in d.get("annotations", ())}
        per_image.append(cats)
        for c in cats:
            cat_images[c] += 1
    cat_rep = {c: max(1.0, math.sqrt(repeat_thresh / (k / n))) for c, k in cat_images.items()}
    return torch.tensor(
        [max((cat_rep[c] for c in cats), default=1.0) for cats in per_image], dtype=torch.float32
    )


class RepeatFactorTrainingSampler(_ResumableStream, Sampler):
    """Like :class:`TrainingSampler`, but each epoch repeats image i ``floor(r_i)`` times plus once
    more with probability ``frac(r_i)`` (stochastic rounding), so rare classes are seen more.
    Resumable like :class:`TrainingSampler`."""

    def __init__(self, repeat_factors: torch.Tensor, shuffle: bool = True, seed: int | None = None):
        rf = torch.as_tensor(repeat_factors, dtype=torch.float32)
        if rf.dim() != 1 or len(rf) == 0 or (rf < 0).any() or not (rf >= 1).any():
            raise ValueError(
                "repeat_factors must be a non-empty 1-D tensor of values >= 0, at least one >= 1 "
                "(else an epoch can be empty)"
            )
        self._int_part = torch.trunc(rf)
        self._frac_part = rf - self._int_part
        self._shuffle = shuffle
        self._seed = int(seed) if seed is not None else _shared_seed()
        self._rank, self._world_size = _rank_world()
        self._init_position()

    @staticmethod
    def repeat_factors_from_category_frequency(dataset_dicts, repeat_thresh):
        return repeat_factors_from_category_frequency(dataset_dicts, repeat_thresh)

    def _epoch_indices(self, g: torch.Generator) -> torch.Tensor:
        rands = torch.rand(len(self._frac_part), generator=g)
        reps = (self._int_part + (rands < self._frac_part).float()).long()
        return torch.repeat_interleave(torch.arange(len(reps)), reps)

    def _infinite_indices(self, skip: int = 0) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self._seed)

        def epochs():
            while True:
                idx = self._epoch_indices(g)
                if self._shuffle:
                    idx = idx[torch.randperm(len(idx), generator=g)]
                yield idx

        return _skip_epochs(epochs(), skip)


class InferenceSampler(Sampler):
    """Each index of ``range(size)`` exactly once across ranks, in contiguous shards
    (rank r gets a contiguous block; shard sizes differ by at most one)."""

    def __init__(self, size: int):
        if size < 0:
            raise ValueError(f"InferenceSampler size must be >= 0, got {size}")
        self._size = size
        self._rank, self._world_size = _rank_world()
        self._local_indices = self._get_local_indices(size, self._world_size, self._rank)

    @staticmethod
    def _get_local_indices(total_size: int, world_size: int, rank: int) -> range:
        base, extra = divmod(total_size, world_size)
        sizes = [base + int(r < extra) for r in range(world_size)]
        start = sum(sizes[:rank])
        return range(start, start + sizes[rank])

    def __iter__(self) -> Iterator[int]:
        yield from self._local_indices

    def __len__(self) -> int:
        return len(self._local_indices)

"""Dataset wrappers used by the loaders: serialised lists and mapping. (The training loader's
sampler-driven, aspect-ratio-grouped batch stream is :mod:`rotated_det.data.train_loader`.)"""

from __future__ import annotations

import logging
import pickle
import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch.utils.data as data

__all__ = ["DatasetFromList", "MapDataset"]

logger = logging.getLogger(__name__)


class DatasetFromList(data.Dataset):
    """A list as a Dataset.

    With ``serialize=True`` (default) the items are pickled into one numpy byte buffer plus an
    offset array. DataLoader workers fork from the main process; a list of millions of Python
    dicts would be copied page by page as each worker touches the objects' reference counts,
    while two numpy arrays are shared and never written.
    """

    def __init__(self, lst: Sequence, copy: bool = True, serialize: bool = True):
        self._copy = copy
        self._serialize = serialize
        if serialize:
            blobs = [np.frombuffer(pickle.dumps(x, protocol=-1), dtype=np.uint8) for x in lst]
            self._addr = np.cumsum(np.asarray([len(b) for b in blobs], dtype=np.int64))
            self._buf = np.concatenate(blobs) if blobs else np.zeros(0, np.uint8)
            logger.info(
                f"Serialised {len(blobs)} dataset items into {self._buf.nbytes / 2**20:.2f} MiB"
            )
            self._lst: list[Any] | None = None
        else:
            self._lst = list(lst)

    def __len__(self) -> int:
        return len(self._addr) if self._lst is None else len(self._lst)

    def __getitem__(self, idx: int):
        if self._lst is None:  # serialised
            if idx < 0:
                idx += len(self)
            start = 0 if idx == 0 else int(self._addr[idx - 1])
            end = int(self._addr[idx])
            return pickle.loads(self._buf[start:end].data)  # .data: a memoryview, no copy
        item = self._lst[idx]
        if self._copy:
            import copy

            return copy.deepcopy(item)
        return item


class MapDataset(data.Dataset):
    """Apply ``map_func`` to each item. If it returns None (e.g. an image without boxes left after
    augmentation), another random item is mapped instead; such fallbacks are counted and logged."""

    def __init__(self, dataset, map_func: Callable):
        self._dataset = dataset
        self._map_func = map_func
        self._rng = random.Random(42)
        self._fallback_candidates = set(range(len(dataset)))
        self.num_fallbacks = 0

    def __len__(self) -> int:
        return len(self._dataset)

    def __getitem__(self, idx: int):
        cur = int(idx)
        retries = 0
        while True:
            out = self._map_func(self._dataset[cur])
            if out is not None:
                self._fallback_candidates.add(cur)
                return out
            retries += 1
            self.num_fallbacks += 1
            self._fallback_candidates.discard(cur)
            if not self._fallback_candidates:
                raise RuntimeError("The mapper returned None for every item of the dataset")
            cur = self._rng.choice(tuple(self._fallback_candidates))
            if retries in (3, 30, 300):
                logger.warning(f"Failed to map item {idx} after {retries} retries")

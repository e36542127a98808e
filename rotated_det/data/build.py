"""Dataset dict assembly and the train / test data loader builders.

Both builders take explicit arguments, so configs create them with ``LazyCall``::

    dataloader.train = L(build_detection_train_loader)(
        dataset=L(get_detection_dataset_dicts)(names="synthetic_train_512"),
        mapper=L(DatasetMapper)(is_train=True, augmentations=[...]),
        total_batch_size=4, num_workers=2)
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.utils.data as torchdata

from rotated_det.data.catalog import DatasetCatalog, MetadataCatalog
from rotated_det.data.common import DatasetFromList, MapDataset
from rotated_det.data.dataset_mapper import DatasetMapper
from rotated_det.data.samplers import InferenceSampler, TrainingSampler
from rotated_det.data.samplers.distributed_sampler import _rank_world, _shared_seed
from rotated_det.data.train_loader import TrainBatchStream, TrainDataLoader

__all__ = [
    "get_detection_dataset_dicts",
    "build_detection_train_loader",
    "build_detection_test_loader",
    "trivial_batch_collator",
    "worker_init_reset_seed",
]

logger = logging.getLogger(__name__)


def _world_size() -> int:
    return _rank_world()[1]


def _rank() -> int:
    return _rank_world()[0]


def filter_images_with_no_annotations(dataset_dicts: list[dict]) -> list[dict]:
    """Drop images without annotations (logged with the count)."""
    n = len(dataset_dicts)
    out = [d for d in dataset_dicts if len(d.get("annotations", ())) > 0]
    if n != len(out):
        logger.info(f"Removed {n - len(out)} images with no annotations; {len(out)} remain.")
    return out


def _log_class_histogram(dataset_dicts: list[dict], class_names: Sequence[str] | None) -> None:
    counts = Counter(a["category_id"] for d in dataset_dicts for a in d.get("annotations", ()))
    if not counts:
        return
    names = list(class_names) if class_names else []
    parts = [f"{names[c] if c < len(names) else c}: {counts[c]}" for c in sorted(counts)]
    logger.info(f"Objects per category ({sum(counts.values())} in all): " + ", ".join(parts))


def get_detection_dataset_dicts(
    names: str | Sequence[str],
    filter_empty: bool = True,
    check_consistency: bool = True,
) -> list[dict]:
    """Load and concatenate registered datasets.

    Args:
        names: a dataset name or a list of names (see ``DatasetCatalog.list()``).
        filter_empty: drop images without annotations (only if the datasets have annotations).
        check_consistency: require the same ``thing_classes`` in every dataset's metadata.
    """
    if isinstance(names, str):
        names = [names]
    if not names:
        raise ValueError("get_detection_dataset_dicts needs at least one dataset name")
    all_dicts = []
    for name in names:
        dicts = DatasetCatalog.get(name)
        if isinstance(dicts, torchdata.Dataset):
            if len(names) > 1:
                raise ValueError("A Dataset object cannot be concatenated with other datasets")
            return dicts
        if len(dicts) == 0:
            raise ValueError(f"Dataset '{name}' is empty!")
        all_dicts.append(dicts)
    classes = None
    if check_consistency:
        cls = [MetadataCatalog.get(n).get("thing_classes") for n in names]
        known = [c for c in cls if c is not None]
        if any(list(c) != list(known[0]) for c in known):
            raise ValueError(
                f"Datasets {list(names)} have different thing_classes: {cls}; pass "
                "check_consistency=False if that is intended"
            )
        classes = known[0] if known else None
    dataset_dicts = [d for dicts in all_dicts for d in dicts]
    has_instances = "annotations" in dataset_dicts[0]
    if filter_empty and has_instances:
        dataset_dicts = filter_images_with_no_annotations(dataset_dicts)
        if not dataset_dicts:
            raise ValueError(f"No image with annotations left in {list(names)}")
    if has_instances:
        _log_class_histogram(dataset_dicts, classes)
    return dataset_dicts


def trivial_batch_collator(batch: list) -> list:
    """A batch is the list of the mapped dicts."""
    return batch


def worker_init_reset_seed(worker_id: int) -> None:
    """Seed numpy and ``random`` in each DataLoader worker from torch's per-worker seed, so that
    workers draw different (and reproducible) random numbers. (The training loader seeds them
    again for each image, from its position in the stream.)"""
    import random

    seed = torch.initial_seed() % 2**31
    np.random.seed(seed)
    random.seed(seed)


def _is_names(dataset) -> bool:
    return isinstance(dataset, str) or (
        isinstance(dataset, Sequence) and bool(dataset) and isinstance(dataset[0], str)
    )


def _as_dataset(dataset, serialize: bool):
    if _is_names(dataset):
        dataset = get_detection_dataset_dicts(dataset)
    if isinstance(dataset, list):
        dataset = DatasetFromList(dataset, copy=False, serialize=serialize)
    return dataset


def build_detection_train_loader(
    dataset,
    *,
    mapper: Callable | None = None,
    sampler: torchdata.Sampler | None = None,
    total_batch_size: int,
    aspect_ratio_grouping: bool = True,
    num_workers: int = 0,
    collate_fn: Callable | None = None,
    serialize: bool = True,
    seed: int | None = None,
) -> TrainDataLoader:
    """An infinite training loader yielding lists of mapped dicts (``total_batch_size`` summed
    over all ranks), with ``state_dict()`` / ``load_state_dict()`` for exact resume (see
    :mod:`rotated_det.data.train_loader`).

    Args:
        dataset: list of dataset dicts, a dataset name / list of names, or a torch Dataset.
        mapper: dict -> model input; default ``DatasetMapper(is_train=True)``.
        sampler: default :class:`TrainingSampler` over the dataset (seeded by ``seed``). A
            sampler with ``state_dict`` / ``load_state_dict`` (ours) resumes by position,
            another one by skipping items (exact only if it repeats its stream for each iter).
        total_batch_size: images per iteration over all ranks (divisible by the world size).
        aspect_ratio_grouping: batch landscape and portrait images separately.
        num_workers: DataLoader worker processes.
        collate_fn: default :func:`trivial_batch_collator` (a list of dicts).
        serialize: store the dataset list as a serialised numpy buffer.
        seed: seeds the sampler and the per-image random numbers of the augmentations
            (reproducible batches); None draws a seed shared by all ranks. A resumed loader
            takes the seeds from its state.

    Before anything is loaded, a mapper with a ``check_dataset`` method (``DatasetMapper``) checks
    a list of dataset dicts with its own box filter: a dataset whose boxes would all be dropped
    raises ``ValueError`` (training would run with zero box losses), and more than the mapper's
    ``max_drop_fraction`` dropped is a warning with the counts by reason.
    """
    world = _world_size()
    if total_batch_size <= 0 or total_batch_size % world != 0:
        raise ValueError(
            f"total_batch_size ({total_batch_size}) must be a positive multiple of the number "
            f"of processes ({world})"
        )
    batch_size = total_batch_size // world
    names = None
    if _is_names(dataset):
        names = [dataset] if isinstance(dataset, str) else list(dataset)
        dataset = get_detection_dataset_dicts(names)
    if mapper is None:
        mapper = DatasetMapper(is_train=True)
    check_dataset = getattr(mapper, "check_dataset", None)
    if isinstance(dataset, list) and callable(check_dataset):
        check_dataset(dataset, f"dataset {names}" if names else "the training dataset")
    dataset = _as_dataset(dataset, serialize)
    if sampler is None:
        sampler = TrainingSampler(len(dataset), seed=seed)
    stream = TrainBatchStream(
        dataset,
        mapper,
        sampler,
        batch_size,
        aspect_ratio_grouping,
        seed=int(seed) if seed is not None else _shared_seed(),
        rank=_rank(),
    )
    return TrainDataLoader(
        stream,
        num_workers=num_workers,
        collate_fn=trivial_batch_collator if collate_fn is None else collate_fn,
        worker_init_fn=worker_init_reset_seed,
    )


def build_detection_test_loader(
    dataset,
    *,
    mapper: Callable | None = None,
    sampler: torchdata.Sampler | None = None,
    batch_size: int = 1,
    num_workers: int = 0,
    collate_fn: Callable | None = None,
    serialize: bool = True,
) -> torchdata.DataLoader:
    """A finite loader over every image once (sharded across ranks by :class:`InferenceSampler`),
    yielding lists of ``batch_size`` mapped dicts in dataset order.

    Args:
        dataset: list of dataset dicts, a dataset name / list of names (loaded with
            ``filter_empty=False``), or a torch Dataset.
        mapper: default ``DatasetMapper(is_train=False)``.
    """
    if _is_names(dataset):
        dataset = get_detection_dataset_dicts(dataset, filter_empty=False)
    dataset = _as_dataset(dataset, serialize)
    if mapper is None:
        mapper = DatasetMapper(is_train=False)
    dataset = MapDataset(dataset, mapper)
    if sampler is None:
        sampler = InferenceSampler(len(dataset))
    batch_sampler = torchdata.BatchSampler(sampler, batch_size, drop_last=False)
    return torchdata.DataLoader(
        dataset,
        num_workers=num_workers,
        batch_sampler=batch_sampler,
        collate_fn=trivial_batch_collator if collate_fn is None else collate_fn,
        worker_init_fn=worker_init_reset_seed,
    )

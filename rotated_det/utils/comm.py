"""
Helpers for torch.distributed: rank/world size queries, barriers and collective gathers that
also work (as no-ops) when training in a single process.
"""

import functools
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

__all__ = [
    "get_world_size",
    "get_rank",
    "get_local_rank",
    "get_local_size",
    "is_main_process",
    "synchronize",
    "all_gather",
    "gather",
    "reduce_dict",
    "shared_random_seed",
    "create_local_process_group",
    "unwrap_model",
]

_LOCAL_PROCESS_GROUP = None
"""Process group holding the processes of this machine; set by launch()."""


def _dist_ready() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    return dist.get_world_size() if _dist_ready() else 1


def get_rank() -> int:
    return dist.get_rank() if _dist_ready() else 0


def get_local_rank() -> int:
    """Rank of this process among the processes of its machine (the GPU index to use)."""
    if not _dist_ready():
        return 0
    if _LOCAL_PROCESS_GROUP is not None:
        return dist.get_rank(group=_LOCAL_PROCESS_GROUP)
    import os

    return int(os.environ.get("LOCAL_RANK", 0))


def get_local_size() -> int:
    """Number of processes on this machine."""
    if not _dist_ready():
        return 1
    if _LOCAL_PROCESS_GROUP is not None:
        return dist.get_world_size(group=_LOCAL_PROCESS_GROUP)
    import os

    return int(os.environ.get("LOCAL_WORLD_SIZE", get_world_size()))


def is_main_process() -> bool:
    return get_rank() == 0


def create_local_process_group(num_workers_per_machine: int) -> None:
    """
    Create one process group per machine (ranks machine*n .. machine*n + n - 1) and remember
    the one holding this process. Every process must call this (new_group is collective).
    """
    global _LOCAL_PROCESS_GROUP
    assert _LOCAL_PROCESS_GROUP is None, "local process group already created"
    world, rank = get_world_size(), get_rank()
    if world % num_workers_per_machine != 0:
        raise ValueError(
            f"world size {world} is not a multiple of processes per machine "
            f"{num_workers_per_machine}"
        )
    for machine in range(world // num_workers_per_machine):
        ranks = list(
            range(machine * num_workers_per_machine, (machine + 1) * num_workers_per_machine)
        )
        group = dist.new_group(ranks)
        if rank in ranks:
            _LOCAL_PROCESS_GROUP = group


def synchronize() -> None:
    """Barrier across all processes; a no-op without distributed training."""
    if get_world_size() == 1:
        return
    if dist.get_backend() == dist.Backend.NCCL and torch.cuda.is_available():
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


@functools.lru_cache
def _cpu_group():
    """A Gloo group over all ranks: gathering picklable objects goes through CPU memory."""
    if dist.get_backend() == "nccl":
        return dist.new_group(backend="gloo")
    return dist.group.WORLD


def all_gather(data: Any, group=None) -> list:
    """
    Gather any picklable object from every rank.

    Returns:
        list of length world size: the object of each rank, in rank order.
    """
    if get_world_size() == 1:
        return [data]
    if group is None:
        group = _cpu_group()
    if dist.get_world_size(group) == 1:
        return [data]
    output = [None for _ in range(dist.get_world_size(group))]
    dist.all_gather_object(output, data, group=group)
    return output


def gather(data: Any, dst: int = 0, group=None) -> list:
    """
    Gather any picklable object from every rank onto rank ``dst``.

    Returns:
        on ``dst``: list of the objects of all ranks in rank order; elsewhere: an empty list.
    """
    if get_world_size() == 1:
        return [data]
    if group is None:
        group = _cpu_group()
    if dist.get_world_size(group=group) == 1:
        return [data]
    rank = dist.get_rank(group=group)
    if rank == dst:
        output = [None for _ in range(dist.get_world_size(group))]
        dist.gather_object(data, output, dst=dst, group=group)
        return output
    dist.gather_object(data, None, dst=dst, group=group)
    return []


def shared_random_seed() -> int:
    """
    A random integer in [0, 2**31) that is the same on every rank (rank 0's draw), e.g. to
    seed samplers identically.
    """
    ints = np.random.randint(2**31)
    return int(all_gather(ints)[0])


def reduce_dict(input_dict: dict[str, torch.Tensor], average: bool = True) -> dict:
    """
    Sum (or average) scalar tensors of a dict over all ranks; the result is valid on rank 0
    only (others get partial values). Keys are processed in sorted order so that all ranks
    agree.
    """
    world_size = get_world_size()
    if world_size < 2:
        return input_dict
    with torch.no_grad():
        names = sorted(input_dict.keys())
        values = torch.stack([input_dict[k] for k in names], dim=0)
        dist.reduce(values, dst=0)
        if dist.get_rank() == 0 and average:
            values /= world_size
        return dict(zip(names, values, strict=True))


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel or DataParallel wrapper (else ``model``)."""
    wrappers = (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)
    return model.module if isinstance(model, wrappers) else model

"""launch(): run a function in one or many processes (torch.distributed, NCCL or Gloo)."""

import logging
import os
import socket
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from rotated_det.utils import comm

__all__ = ["DEFAULT_TIMEOUT", "launch", "find_free_port"]

DEFAULT_TIMEOUT = timedelta(minutes=30)

logger = logging.getLogger(__name__)


def find_free_port() -> int:
    """A TCP port that is free now on this machine (may be taken again later; fine for tests
    and single-machine jobs)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def _backend() -> str:
    return "nccl" if torch.cuda.is_available() else "gloo"


def _launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ


def launch(
    main_func: Callable[..., Any],
    num_gpus_per_machine: int,
    num_machines: int = 1,
    machine_rank: int = 0,
    dist_url: str | None = None,
    args: tuple = (),
    timeout: timedelta = DEFAULT_TIMEOUT,
) -> None:
    """
    Run ``main_func(*args)`` in ``num_machines * num_gpus_per_machine`` processes.

    * One process in total: call ``main_func`` directly, no process group.
    * Several: spawn ``num_gpus_per_machine`` processes on this machine, each joining the
      process group (NCCL with one GPU each when CUDA is available, Gloo on CPU, where
      ``num_gpus_per_machine`` is simply the number of processes).
    * Started by ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
      ``MASTER_PORT`` set): join the group from the environment in this process, spawn nothing.

    Args:
        dist_url: rendezvous URL, e.g. ``tcp://10.0.0.1:29500`` (the same on every machine,
            pointing at machine 0), or ``"auto"`` on a single machine to pick a free local
            port. ``env://`` reads MASTER_ADDR/MASTER_PORT.
        machine_rank: this machine's index in [0, num_machines).
    """
    if _launched_by_torchrun() and int(os.environ["WORLD_SIZE"]) > 1:
        _run_from_env(main_func, args, timeout)
        return
    world_size = num_machines * num_gpus_per_machine
    if world_size <= 1:
        main_func(*args)
        return
    if not 0 <= machine_rank < num_machines:
        raise ValueError(f"machine_rank {machine_rank} outside [0, {num_machines})")
    if dist_url is None or dist_url == "auto":
        if num_machines != 1:
            raise ValueError("dist_url=auto only works on one machine; pass tcp://HOST:PORT")
        dist_url = f"tcp://127.0.0.1:{find_free_port()}"
    if num_machines > 1 and dist_url.startswith("file://"):
        logger.warning("file:// URLs only work if all machines share that file system.")
    mp.start_processes(
        _distributed_worker,
        nprocs=num_gpus_per_machine,
        args=(main_func, world_size, num_gpus_per_machine, machine_rank, dist_url, args, timeout),
        daemon=False,
        start_method="spawn",
    )


def _distributed_worker(
    local_rank: int,
    main_func: Callable[..., Any],
    world_size: int,
    num_gpus_per_machine: int,
    machine_rank: int,
    dist_url: str,
    args: tuple,
    timeout: timedelta,
) -> None:
    backend = _backend()
    if backend == "nccl" and num_gpus_per_machine > torch.cuda.device_count():
        raise RuntimeError(
            f"{num_gpus_per_machine} processes per machine requested but only "
            f"{torch.cuda.device_count()} GPUs are visible."
        )
    global_rank = machine_rank * num_gpus_per_machine + local_rank
    os.environ["LOCAL_RANK"] = str(local_rank)
    os.environ["LOCAL_WORLD_SIZE"] = str(num_gpus_per_machine)
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    try:
        dist.init_process_group(
            backend=backend,
            init_method=dist_url,
            world_size=world_size,
            rank=global_rank,
            timeout=timeout,
        )
    except Exception as e:
        raise RuntimeError(f"Process group URL {dist_url} did not work: {e}") from e
    _run_in_group(main_func, args, num_gpus_per_machine)


def _run_from_env(main_func: Callable[..., Any], args: tuple, timeout: timedelta) -> None:
    backend = _backend()
    local_rank = int(os.environ["LOCAL_RANK"])
    local_size = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"]))
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://", timeout=timeout)
    _run_in_group(main_func, args, local_size)


def _run_in_group(main_func: Callable[..., Any], args: tuple, procs_per_machine: int) -> None:
    try:
        comm.create_local_process_group(procs_per_machine)
        comm.synchronize()
        main_func(*args)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        comm._LOCAL_PROCESS_GROUP = None
        comm._cpu_group.cache_clear()

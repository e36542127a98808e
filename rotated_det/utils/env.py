"""Process-level environment helpers: seeding every RNG."""

import logging
import os
import random
from datetime import datetime
from typing import Any, cast

import numpy as np
import torch

__all__ = ["seed_all_rng", "get_rng_state", "set_rng_state"]


def seed_all_rng(seed: int | None = None) -> int:
    """
    Seed Python's, numpy's and torch's RNGs (all devices).

    Args:
        seed: the seed; if None, a seed is drawn from the pid, time and os.urandom, and logged.
    Returns:
        the seed used.
    """
    if seed is None:
        seed = (
            os.getpid()
            + int(datetime.now().strftime("%S%f"))
            + int.from_bytes(os.urandom(2), "big")
        ) % (2**31)
        logging.getLogger(__name__).info("Using a generated random seed %d", seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    return seed


def get_rng_state() -> dict:
    """State of the Python, numpy and torch (CPU + CUDA) RNGs, for exact resume (plain
    Python values and tensors only, so it can go into a weights_only checkpoint)."""
    state = {
        "python": random.getstate(),
        "numpy": _numpy_state_to_plain(np.random.get_state()),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _numpy_state_to_plain(state: dict[str, Any] | tuple[Any, ...]) -> tuple[Any, ...]:
    # numpy arrays are not allowed in weights_only checkpoints; a list of ints is. The global
    # RandomState is an MT19937, whose legacy state is this 5-tuple.
    name, keys, pos, has_gauss, cached = cast(tuple[Any, ...], state)
    return (str(name), [int(k) for k in keys], int(pos), int(has_gauss), float(cached))


def set_rng_state(state: dict) -> None:
    """Restore what :func:`get_rng_state` returned."""
    if "python" in state:
        random.setstate(state["python"])
    if "numpy" in state:
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])

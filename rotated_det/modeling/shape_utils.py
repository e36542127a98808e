"""Sizes that stay symbolic when a detector is traced (``torch.jit.trace``) or exported
(``torch.export``), so that the exported graph follows the input's resolution.

Under tracing, ``tensor.shape[i]`` / ``numel()`` are 0-dim tensors recorded in the graph, while
Python arithmetic or comparisons on them (``min``, ``int``, ``if``) freeze the trace-time value
into the graph. Under ``torch.export`` they are ``SymInt``; comparing a data-dependent one (the
number of boxes above a score threshold) in Python fails to export.
"""

import torch

__all__ = ["min_size"]


def min_size(size, limit: int):
    """``min(size, limit)`` for a size taken from a tensor's shape.

    Args:
        size: an int (eager), a 0-dim tensor (under tracing) or a ``torch.SymInt`` (under export).
        limit: the upper bound.

    Returns:
        the same kind of value as ``size``: usable as ``topk``'s ``k`` in each mode.
    """
    if isinstance(size, torch.Tensor):
        return torch.clamp(size, max=limit)
    if isinstance(size, torch.SymInt):
        return torch.sym_min(size, limit)
    return min(size, limit)

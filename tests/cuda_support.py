"""Whether CUDA tests can run here: a GPU and rotated_det built with its CUDA kernels."""

import torch

from rotated_det.layers import pairwise_iou_rotated


def has_cuda_kernels() -> bool:
    """True when a GPU is visible and the compiled ops have CUDA kernels (a build without
    ``FORCE_CUDA=1`` on a machine without a GPU has CPU kernels only)."""
    if not torch.cuda.is_available():
        return False
    try:
        pairwise_iou_rotated(torch.zeros(1, 5, device="cuda"), torch.zeros(1, 5, device="cuda"))
    except (RuntimeError, NotImplementedError):
        return False
    return True

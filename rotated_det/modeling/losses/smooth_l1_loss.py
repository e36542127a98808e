"""Smooth L1 (Huber-like) loss; beta = 0 is the L1 loss."""

import torch

__all__ = ["smooth_l1_loss"]


def smooth_l1_loss(
    input: torch.Tensor, target: torch.Tensor, beta: float, reduction: str = "none"
) -> torch.Tensor:
    """``0.5 * d**2 / beta`` if ``|d| < beta``, else ``|d| - 0.5 * beta``; ``d = input - target``.

    ``beta < 1e-5`` gives the L1 loss ``|d|`` (no division by a tiny beta).
    """
    diff = torch.abs(input - target)
    if beta < 1e-5:
        loss = diff
    else:
        loss = torch.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta)
    if reduction == "mean":
        return loss.mean() if loss.numel() > 0 else loss.sum() * 0.0
    if reduction == "sum":
        return loss.sum()
    if reduction != "none":
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    return loss

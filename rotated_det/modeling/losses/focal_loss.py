"""Sigmoid focal loss (Lin et al. 2017)."""

import torch
from torch.nn import functional as F

__all__ = ["sigmoid_focal_loss"]


def sigmoid_focal_loss(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
    reduction: str = "none",
) -> torch.Tensor:
    """``-alpha_t * (1 - p_t) ** gamma * log(p_t)`` per element.

    Args:
        inputs: logits of any shape.
        targets: same shape, 0 / 1 (float).
        alpha: weight of positives (negatives get ``1 - alpha``); a negative value disables it.
        gamma: focusing exponent (0 gives plain binary cross-entropy).
        reduction: "none", "mean" or "sum".
    """
    targets = targets.to(inputs.dtype)
    p = torch.sigmoid(inputs)
    ce = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction != "none":
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    return loss

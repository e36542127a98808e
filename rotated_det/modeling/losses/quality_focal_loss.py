"""Quality focal loss (Li et al., "Generalized Focal Loss", NeurIPS 2020).

Binary cross-entropy of each class logit ``x`` against a soft target ``t`` in [0, 1] (the
localisation quality, e.g. the IoU of a positive's predicted box with its gt; 0 for every other
class and for background), scaled by the distance of the prediction to the target:

    QFL(x, t) = BCE(sigmoid(x), t) * |t - sigmoid(x)| ** beta

Worked example (``tests/modeling/test_quality_focal_loss.py``): ``x = 0`` (probability 1/2),
``t = 1/4``, ``beta = 2``: ``BCE = -(1/4 ln 1/2 + 3/4 ln 1/2) = ln 2``, scale
``(1/4) ** 2 = 1/16``, so ``QFL = ln 2 / 16 = 0.0433217``.
"""

import torch
from torch.nn import functional as F

__all__ = ["quality_focal_loss"]


def quality_focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, beta: float = 2.0, reduction: str = "none"
) -> torch.Tensor:
    """Quality focal loss per element.

    Args:
        logits: class logits of any shape, e.g. ``[N, K]``.
        targets: soft targets in [0, 1], same shape.
        beta: exponent of the ``|t - p|`` scale (2 in the paper and RTMDet).
        reduction: "none", "mean" or "sum".

    Returns:
        the loss in the dtype of ``logits`` (per element with "none").
    """
    if logits.shape != targets.shape:
        raise ValueError(
            f"quality_focal_loss: logits {tuple(logits.shape)} and targets "
            f"{tuple(targets.shape)} must have the same shape"
        )
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    targets = targets.to(logits.dtype)
    scale = (targets - logits.sigmoid()).abs().pow(beta)
    loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * scale
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss

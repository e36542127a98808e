"""Random balanced sampling of foreground / background labels."""

import torch

from rotated_det.layers.wrappers import nonzero_tuple

__all__ = ["subsample_labels"]


def subsample_labels(
    labels: torch.Tensor, num_samples: int, positive_fraction: float, bg_label: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick at most ``num_samples`` indices, at most ``positive_fraction`` of them foreground.

    Args:
        labels: ``[N]`` labels: -1 ignore, ``bg_label`` background, any other value >= 0
            foreground.
        num_samples: total number of samples wanted.
        positive_fraction: upper bound of the foreground share; background fills the rest.
        bg_label: the background label.

    Returns:
        (foreground indices, background indices) into ``labels``, each int64, chosen uniformly
        at random (``torch.randperm``) among the candidates.
    """
    positive = nonzero_tuple((labels != -1) & (labels != bg_label))[0]
    negative = nonzero_tuple(labels == bg_label)[0]
    num_pos = min(positive.numel(), int(num_samples * positive_fraction))
    num_neg = min(negative.numel(), num_samples - num_pos)
    perm_pos = torch.randperm(positive.numel(), device=positive.device)[:num_pos]
    perm_neg = torch.randperm(negative.numel(), device=negative.device)[:num_neg]
    return positive[perm_pos], negative[perm_neg]

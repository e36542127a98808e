"""Matcher: assigns each prediction (anchor / proposal) to a ground-truth box by IoU."""

import torch

from rotated_det.layers.wrappers import nonzero_tuple

__all__ = ["Matcher"]


class Matcher:
    """Match predictions to ground truth from a ``[G, P]`` quality matrix (usually IoU).

    Each prediction gets the ground truth of highest quality, and a label from the interval its
    quality falls in: with ``thresholds=[0.3, 0.7]`` and ``labels=[0, -1, 1]``, quality < 0.3 is
    0 (background), [0.3, 0.7) is -1 (ignored) and >= 0.7 is 1 (foreground).

    Args:
        thresholds: increasing thresholds splitting [0, 1] into ``len(thresholds) + 1`` intervals.
        labels: one label per interval, each in {-1, 0, 1}.
        allow_low_quality_matches: also label as 1 the predictions that are the best match of some
            ground truth (ties included), even below the top threshold.
    """

    def __init__(
        self,
        thresholds: list[float],
        labels: list[int],
        allow_low_quality_matches: bool = False,
    ):
        thresholds = [float(t) for t in thresholds]
        if any(a > b for a, b in zip(thresholds[:-1], thresholds[1:])):
            raise ValueError(f"Matcher thresholds must be increasing, got {thresholds}")
        if thresholds and thresholds[0] < 0:
            raise ValueError(f"Matcher thresholds must be >= 0, got {thresholds}")
        if len(labels) != len(thresholds) + 1:
            raise ValueError(
                f"Matcher needs len(labels) == len(thresholds) + 1, got {len(labels)} labels for "
                f"{len(thresholds)} thresholds"
            )
        if any(label not in (-1, 0, 1) for label in labels):
            raise ValueError(f"Matcher labels must be in {{-1, 0, 1}}, got {labels}")
        self.thresholds = [-float("inf")] + thresholds + [float("inf")]
        self.labels = list(labels)
        self.allow_low_quality_matches = allow_low_quality_matches

    def __call__(self, match_quality_matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            match_quality_matrix: ``[G, P]`` quality of ground truth g with prediction p.

        Returns:
            matches: ``[P]`` int64 index of the matched ground truth (0 when G == 0).
            match_labels: ``[P]`` int8 label of each prediction.
        """
        if match_quality_matrix.dim() != 2:
            raise ValueError(
                f"Matcher takes a [G, P] matrix, got {tuple(match_quality_matrix.shape)}"
            )
        num_gt, num_pred = match_quality_matrix.shape
        device = match_quality_matrix.device
        if num_gt == 0:
            matches = torch.zeros(num_pred, dtype=torch.int64, device=device)
            labels = torch.full((num_pred,), self.labels[0], dtype=torch.int8, device=device)
            return matches, labels
        matched_vals, matches = match_quality_matrix.max(dim=0)
        match_labels = torch.empty(num_pred, dtype=torch.int8, device=device)
        for label, low, high in zip(self.labels, self.thresholds[:-1], self.thresholds[1:]):
            in_range = (matched_vals >= low) & (matched_vals < high)
            match_labels[in_range] = label
        if self.allow_low_quality_matches:
            self._set_low_quality_matches(match_labels, match_quality_matrix)
        return matches, match_labels

    @staticmethod
    def _set_low_quality_matches(match_labels: torch.Tensor, quality: torch.Tensor) -> None:
        best_per_gt, _ = quality.max(dim=1)
        # Ground truth that overlaps nothing (best 0) gives no low-quality match.
        best_per_gt = torch.where(best_per_gt > 0, best_per_gt, torch.full_like(best_per_gt, 2.0))
        _, pred_idx = nonzero_tuple(quality == best_per_gt[:, None])
        match_labels[pred_idx] = 1

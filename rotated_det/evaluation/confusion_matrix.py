"""Confusion matrix of rotated detections: which class each object was detected as, if any.

Rows are the true class, columns the predicted class, each with a last "background" entry::

                 predicted 0 .. K-1          background
    true 0..K-1  matched pairs               missed objects (no detection on them)
    background   detections on no object     (always 0)

Rules (per image; the matching of :mod:`~rotated_det.evaluation.rotated_map` without the class):

1. Detections with ``score >= score_threshold`` take part; the others are dropped.
2. Each detection gets the ground truth (GT) of *any* class with which its rotated IoU is largest
   (``best_gt_per_detection`` with one group per image; first GT on ties).
3. In decreasing score order, a detection whose largest IoU is ``> iou_threshold`` (strictly, as
   in the DOTA kit) is matched to that GT if no higher-scoring detection took it: it counts in
   ``[true class, predicted class]``. A later detection on the same GT is a duplicate and counts
   as a background detection, like one without overlap.
4. A detection matched to a difficult GT is left out (counted in ``num_ignored``); difficult GT
   are never counted as missed.

Row-normalised (:meth:`ConfusionMatrix.normalized`), the diagonal of the class rows is the
recall of each class among detections above the score threshold, and the background row says how
the false detections spread over the predicted classes.

The default score threshold 0.25 is Ultralytics YOLO's confusion-matrix default; a detector's
test-time threshold (often 0.05) fills the background row with low-score boxes that AP hardly
weighs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rotated_det.evaluation.detection_arrays import as_detection_arrays
from rotated_det.evaluation.rotated_map import best_gt_per_detection

__all__ = ["ConfusionMatrix", "rotated_confusion_matrix"]


@dataclass
class ConfusionMatrix:
    """Counts of (true class, predicted class) pairs with background as class K.

    Attributes:
        counts: int64 [K + 1, K + 1]; rows true class, columns predicted class, index K is
            background (module docstring).
        num_ignored: detections matched to difficult GT (not in ``counts``).
        score_threshold, iou_threshold: the settings that produced it.
    """

    counts: np.ndarray
    num_ignored: int
    score_threshold: float
    iou_threshold: float

    @property
    def num_classes(self) -> int:
        return self.counts.shape[0] - 1

    def normalized(self) -> np.ndarray:
        """float64 [K + 1, K + 1]: each row divided by its sum (NaN for rows summing to 0)."""
        rows = self.counts.sum(axis=1, keepdims=True).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(rows > 0, self.counts / rows, np.nan)

    def _labels(self, class_names: Sequence[str] | None) -> list[str]:
        names = list(class_names) if class_names is not None else []
        if class_names is not None and len(names) != self.num_classes:
            raise ValueError(
                f"ConfusionMatrix: {len(names)} class names for {self.num_classes} classes"
            )
        return (names or [str(k) for k in range(self.num_classes)]) + ["background"]

    def format_table(self, class_names: Sequence[str] | None = None) -> str:
        """Two text tables (counts, then row-normalised percentages), rows true, columns
        predicted, each with a row total."""
        labels = self._labels(class_names)
        corner = "true \\ pred"
        width = max(len(corner), *(len(n) for n in labels))
        col = max(7, *(len(n) for n in labels))
        norm = self.normalized()
        lines = [
            f"Confusion matrix (score >= {self.score_threshold:g}, IoU > {self.iou_threshold:g}; "
            f"{self.num_ignored} detections on difficult objects left out)",
        ]
        for title, fmt, mat in (
            ("counts", "{:d}", self.counts),
            ("row-normalised (%)", "{:.1f}", norm * 100),
        ):
            head = f"{corner:<{width}} | " + " ".join(f"{n:>{col}}" for n in labels)
            lines += ["", title, head + f" | {'total':>7}", "-" * (len(head) + 10)]
            for r, name in enumerate(labels):
                cells = [
                    f"{'-':>{col}}" if not np.isfinite(v) else f"{fmt.format(v):>{col}}"
                    for v in mat[r].tolist()
                ]
                total = int(self.counts[r].sum())
                lines.append(f"{name:<{width}} | " + " ".join(cells) + f" | {total:>7d}")
        return "\n".join(lines)

    def plot(self, path: str, class_names: Sequence[str] | None = None) -> str:
        """Save a PNG with the counts (left) and the row-normalised matrix (right). Returns
        ``path``."""
        from matplotlib.figure import Figure  # no pyplot: no global backend state (headless)

        labels = self._labels(class_names)
        n = len(labels)
        size = max(4.0, 0.55 * n + 2.0)
        fig = Figure(figsize=(2 * size + 1.5, size))
        axes = fig.subplots(1, 2)
        norm = self.normalized()
        for ax, mat, title, fmt in (
            (axes[0], self.counts.astype(np.float64), "counts", "{:.0f}"),
            (axes[1], norm, "row-normalised", "{:.2f}"),
        ):
            shown = np.nan_to_num(mat / max(np.nanmax(mat), 1e-12) if title == "counts" else mat)
            ax.imshow(shown, cmap="Blues", vmin=0.0, vmax=1.0)
            ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=8)
            ax.set_yticks(range(n), labels, fontsize=8)
            ax.set_xlabel("predicted")
            ax.set_ylabel("true")
            ax.set_title(
                f"{title} (score >= {self.score_threshold:g}, IoU > {self.iou_threshold:g})",
                fontsize=9,
            )
            if n <= 25:  # cell labels stay legible up to about this size
                for r in range(n):
                    for c in range(n):
                        if np.isfinite(mat[r, c]) and mat[r, c] > 0:
                            ax.text(
                                c,
                                r,
                                fmt.format(mat[r, c]),
                                ha="center",
                                va="center",
                                fontsize=6,
                                color="white" if shown[r, c] > 0.5 else "black",
                            )
        fig.tight_layout()
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fig.savefig(path, dpi=100)
        return path


def rotated_confusion_matrix(
    det_image_ids: Any,
    det_boxes: Any,
    det_scores: Any,
    det_labels: Any,
    gt_image_ids: Any,
    gt_boxes: Any,
    gt_labels: Any,
    gt_difficult: Any = None,
    *,
    num_classes: int,
    score_threshold: float = 0.25,
    iou_threshold: float = 0.5,
) -> ConfusionMatrix:
    """Confusion matrix of a dataset's rotated detections (rules in the module docstring).

    Args:
        det_image_ids, det_boxes, det_scores, det_labels, gt_image_ids, gt_boxes, gt_labels,
        gt_difficult: the dataset's detections and ground truth, numpy, torch or lists, as
            in :func:`~rotated_det.evaluation.detection_arrays.as_detection_arrays`.
        num_classes: K.
        score_threshold: detections with a lower score are dropped.
        iou_threshold: a detection matches a GT when their rotated IoU is larger.

    Returns:
        :class:`ConfusionMatrix`.
    """
    a = as_detection_arrays(
        det_image_ids,
        det_boxes,
        det_scores,
        det_labels,
        gt_image_ids,
        gt_boxes,
        gt_labels,
        gt_difficult,
        num_classes=num_classes,
        caller="rotated_confusion_matrix",
    )
    k = num_classes
    keep = np.flatnonzero(a.det_scores >= score_threshold)
    keep = keep[np.argsort(-a.det_scores[keep], kind="stable")]  # decreasing score
    ovmax, jmax = best_gt_per_detection(
        a.det_image_ids[keep], a.det_boxes[keep], a.gt_image_ids, a.gt_boxes
    )
    above = ovmax > iou_threshold
    ignored = above & a.gt_difficult[np.where(above, jmax, 0)] if len(a.gt_labels) else above
    # (without GT nothing is above the threshold: ovmax is -inf)
    candidate = np.flatnonzero(above & ~ignored)
    # np.unique's first occurrence of each GT is the highest-scoring detection on it.
    _, first = np.unique(jmax[candidate], return_index=True)
    matched_det = candidate[first]
    matched_gt = jmax[matched_det]
    det_pred = a.det_labels[keep]
    is_matched = np.zeros(len(keep), bool)
    is_matched[matched_det] = True
    gt_found = np.zeros(len(a.gt_labels), bool)
    gt_found[matched_gt] = True
    true_idx = np.concatenate(
        [
            a.gt_labels[matched_gt],  # matched pairs
            np.full(int((~is_matched & ~ignored).sum()), k),  # background detections
            a.gt_labels[~gt_found & ~a.gt_difficult],  # missed objects
        ]
    )
    pred_idx = np.concatenate(
        [
            det_pred[matched_det],
            det_pred[~is_matched & ~ignored],
            np.full(int((~gt_found & ~a.gt_difficult).sum()), k),
        ]
    )
    counts = np.bincount(true_idx * (k + 1) + pred_idx, minlength=(k + 1) ** 2)
    return ConfusionMatrix(
        counts.reshape(k + 1, k + 1).astype(np.int64),
        int(ignored.sum()),
        float(score_threshold),
        float(iou_threshold),
    )

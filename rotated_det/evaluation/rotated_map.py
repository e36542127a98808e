"""Rotated VOC-style average precision, scored as the DOTA development kit scores Task1.

For one class and one IoU threshold ``t`` the DOTA kit does the following:

1. Every detection of the class over the whole dataset is sorted by decreasing score.
2. Each detection, in that order, is compared with the ground truths (GT) of its own image and
   class. ``ovmax`` is its largest IoU and ``jmax`` the GT reaching it (the first one on ties),
   chosen among *all* of them: difficult GT and GT already matched included.
3. If ``ovmax > t`` (strictly greater): a difficult ``jmax`` makes the detection neither a true
   nor a false positive (it is ignored); otherwise it is a true positive if ``jmax`` was not
   matched yet (and ``jmax`` becomes matched), else a false positive (a duplicate).
   If ``ovmax <= t`` (or the image has no GT of the class) it is a false positive.
4. ``recall = cumsum(tp) / npos`` with ``npos`` the number of non-difficult GT;
   ``precision = cumsum(tp) / max(cumsum(tp) + cumsum(fp), eps)``; AP from :func:`voc_ap`.

This module computes exactly that, vectorized. Because a detection's ``jmax`` does not depend on
which GT are already matched, the whole matching reduces to: compute ``(ovmax, jmax)`` for every
detection once (with the compiled rotated IoU, batched over all (image, class) groups), and then,
per threshold, a detection is a true positive iff it is the first, in score order, among the
non-ignored detections above the threshold that point at the same non-difficult GT.

Conventions of this implementation where the kit leaves a choice:

* Tied scores are ordered stably: detections with equal scores keep their input order
  (``np.argsort(-score, kind="stable")``). The kit uses numpy's default (unstable) quicksort.
* A class without any non-difficult GT (``npos == 0``, including a class whose GT are all
  difficult) has an undefined AP, reported as NaN and left out of the mean AP. The kit divides
  by zero there.
* IoU is computed in float64 by the compiled rotated IoU operator on the rotated boxes; the kit
  clips polygons with its own C++ module. Both compute the exact area of the intersection
  polygon, so they agree to rounding error.

Size-bucketed AP (``area_ranges``, the DOTA kit has none): COCO's rule in these matching terms.
For an area range ``[lo, hi)`` of rotated-box area ``w * h`` (pixels^2), GT outside the range are
treated like difficult GT (a detection matched to one is ignored; they are not counted in
``npos``), and a detection outside the range that is not a true positive is ignored rather than
a false positive. A true positive on a GT inside the range counts whatever its own area. The
matching (``ovmax``, ``jmax``) is computed once for all ranges. :data:`SIZE_RANGES` holds COCO's
limits (32^2 and 96^2), which aerial benchmarks reporting APs/APm/APl (iSAID, MMRotate's COCO
metric on DOTA) use too; pycocotools closes both ends of each range, here they are half-open.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from rotated_det.evaluation.detection_arrays import as_detection_arrays

__all__ = [
    "COCO_IOU_THRESHOLDS",
    "SIZE_RANGES",
    "RotatedMAPResult",
    "best_gt_per_detection",
    "rotated_voc_map",
    "voc_ap",
]

#: The ten COCO thresholds 0.50, 0.55, ..., 0.95 (rounded so that 0.75 is exactly 0.75).
COCO_IOU_THRESHOLDS: tuple[float, ...] = tuple(
    float(t) for t in np.round(np.arange(10) * 0.05 + 0.5, 2)
)


#: Size buckets by rotated-box area ``w * h`` in pixels^2: COCO's limits 32^2 and 96^2, each range
#: half-open ``[lo, hi)``.
SIZE_RANGES: dict[str, tuple[float, float]] = {
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, float("inf")),
}


def voc_ap(recall: np.ndarray, precision: np.ndarray, use_07_metric: bool = False) -> float:
    """Average precision from a precision-recall curve, as in the PASCAL VOC / DOTA kits.

    Args:
        recall, precision: float arrays [D], the cumulative curve in decreasing-score order.
        use_07_metric: True for the VOC2007 11-point metric (mean over recall thresholds
            0, 0.1, ..., 1 of the largest precision at recall >= threshold, 0 if none); False
            for the area under the monotone (non-increasing) precision envelope, summed where
            recall changes ("all-point" / "area" mode).

    Returns:
        AP in [0, 1]. An empty curve gives 0.
    """
    recall = np.asarray(recall, dtype=np.float64)
    precision = np.asarray(precision, dtype=np.float64)
    if use_07_metric:
        # The kits' recall levels come from np.arange(0, 1.1, 0.1), so the level "0.3" is
        # 0.30000000000000004 and a recall of exactly 3/10 does not reach it; kept for agreement.
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            above = recall >= t
            p = float(precision[above].max()) if above.any() else 0.0
            ap += p / 11.0
        return ap
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    # Precision envelope: the running max from the right.
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    change = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[change + 1] - mrec[change]) * mpre[change + 1]))


def _pairwise_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    from rotated_det.layers import pairwise_iou_rotated

    iou = pairwise_iou_rotated(torch.from_numpy(boxes1), torch.from_numpy(boxes2))
    return iou.numpy().astype(np.float64, copy=False)


def _group_order(keys: np.ndarray) -> np.ndarray:
    """A stable argsort of non-negative integer keys; radix sort when they fit 16 bits."""
    if len(keys) and keys.max() < (1 << 16):
        return np.argsort(keys.astype(np.uint16), kind="stable")
    return np.argsort(keys, kind="stable")


def best_gt_per_detection(
    det_keys: np.ndarray,
    det_boxes: np.ndarray,
    gt_keys: np.ndarray,
    gt_boxes: np.ndarray,
    iou_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """For every detection, the largest IoU with a GT of the same group, and that GT.

    Groups are typically ``image_index * num_classes + class``: a detection is compared only with
    the GT of its own image and class.

    Args:
        det_keys: int64 [D] group of each detection.
        det_boxes: float64 [D, 5] rotated boxes (cx, cy, w, h, angle in degrees).
        gt_keys: int64 [G] group of each GT.
        gt_boxes: float64 [G, 5].
        iou_fn: ``(boxes1 [N, K], boxes2 [M, K]) -> IoU [N, M]`` for other box kinds (e.g.
            polygons, K = 8); default the compiled rotated IoU.

    Returns:
        ovmax: float64 [D], the largest IoU (``-inf`` when the group has no GT);
        jmax: int64 [D], index into the GT arrays of the GT reaching it (first on ties; -1 when
        the group has no GT).
    """
    iou_fn = _pairwise_iou if iou_fn is None else iou_fn
    num_dets = len(det_keys)
    ovmax = np.full(num_dets, -np.inf)
    jmax = np.full(num_dets, -1, dtype=np.int64)
    if num_dets == 0 or len(gt_keys) == 0:
        return ovmax, jmax
    gt_order = _group_order(gt_keys)
    sorted_gt_keys = gt_keys[gt_order]
    det_order = _group_order(det_keys)
    sorted_det_keys = det_keys[det_order]
    # Each run of equal detection keys against its run of GT: one pairwise IoU matrix per group.
    det_start = np.concatenate([[0], np.flatnonzero(np.diff(sorted_det_keys)) + 1])
    det_count = np.diff(np.append(det_start, num_dets))
    uniq = sorted_det_keys[det_start]
    gt_start = np.searchsorted(sorted_gt_keys, uniq, side="left")
    gt_count = np.searchsorted(sorted_gt_keys, uniq, side="right") - gt_start
    has_gt = gt_count > 0
    det_start, det_count = det_start[has_gt], det_count[has_gt]
    gt_start, gt_count = gt_start[has_gt], gt_count[has_gt]
    det_boxes_sorted = det_boxes[det_order]
    gt_boxes_sorted = gt_boxes[gt_order]
    for k in range(len(det_start)):
        ds, dc, gs, gc = det_start[k], det_count[k], gt_start[k], gt_count[k]
        iou = np.asarray(
            iou_fn(det_boxes_sorted[ds : ds + dc], gt_boxes_sorted[gs : gs + gc]),
            dtype=np.float64,
        ).reshape(dc, gc)
        best = iou.argmax(axis=1)
        idx = det_order[ds : ds + dc]
        ovmax[idx] = iou[np.arange(dc), best]
        jmax[idx] = gt_order[gs + best]
    return ovmax, jmax


@dataclass
class RotatedMAPResult:
    """Per-class AP at each IoU threshold.

    Attributes:
        iou_thresholds: float64 [T].
        ap: float64 [C, T]; NaN for classes without non-difficult GT.
        num_gts: int64 [C], non-difficult GT per class (``npos``).
        num_dets: int64 [C], detections per class.
        recall: float64 [C, T], recall reached with all detections (NaN where ``num_gts == 0``).
        curves: per class, ``(recall [D], precision [D])`` at ``iou_thresholds[0]`` in
            decreasing-score order (empty arrays for a class without detections).
        use_07_metric: which AP mode produced ``ap``.
        area_ap: per evaluated area range name (e.g. ``"small"``), float64 [C, T] AP with the
            GT and detections outside the range ignored (module docstring); NaN for a class
            without non-difficult GT in the range. Empty unless ``area_ranges`` was given.
        area_num_gts: per area range name, int64 [C] non-difficult GT inside the range.
    """

    iou_thresholds: np.ndarray
    ap: np.ndarray
    num_gts: np.ndarray
    num_dets: np.ndarray
    recall: np.ndarray
    curves: list[tuple[np.ndarray, np.ndarray]] = field(repr=False)
    use_07_metric: bool = False
    area_ap: dict[str, np.ndarray] = field(default_factory=dict)
    area_num_gts: dict[str, np.ndarray] = field(default_factory=dict)

    def _column(self, iou_threshold: float | None) -> int:
        if iou_threshold is None:
            return 0
        close = np.flatnonzero(np.isclose(self.iou_thresholds, iou_threshold, rtol=0, atol=1e-9))
        if len(close) == 0:
            raise KeyError(
                f"IoU threshold {iou_threshold} was not evaluated; "
                f"evaluated thresholds: {self.iou_thresholds.tolist()}"
            )
        return int(close[0])

    def class_ap(self, iou_threshold: float | None = None) -> np.ndarray:
        """float64 [C]: AP per class at ``iou_threshold`` (default: the first threshold)."""
        return self.ap[:, self._column(iou_threshold)]

    def mean_ap(self, iou_threshold: float | None = None) -> float:
        """Mean over classes with GT of the AP at ``iou_threshold`` (default: the first).
        NaN if no class has GT."""
        aps = self.class_ap(iou_threshold)
        valid = self.num_gts > 0
        return float(aps[valid].mean()) if valid.any() else float("nan")

    def mean_ap_over_thresholds(self) -> float:
        """Mean over all evaluated thresholds of :meth:`mean_ap` (COCO-style mAP when the
        thresholds are :data:`COCO_IOU_THRESHOLDS`)."""
        return float(np.mean([self.mean_ap(float(t)) for t in self.iou_thresholds]))

    def area_mean_ap(self, area: str, iou_threshold: float | None = None) -> float:
        """Mean over classes with GT in the area range ``area`` of their AP there at
        ``iou_threshold`` (default: the first). NaN if no class has GT in the range."""
        if area not in self.area_ap:
            raise KeyError(
                f"Area range {area!r} was not evaluated; evaluated: {list(self.area_ap)}"
            )
        aps = self.area_ap[area][:, self._column(iou_threshold)]
        valid = self.area_num_gts[area] > 0
        return float(aps[valid].mean()) if valid.any() else float("nan")


def _class_tp_fp(
    ovmax: np.ndarray,
    jmax: np.ndarray,
    gt_difficult: np.ndarray,
    threshold: float,
    det_ignore_unless_tp: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """tp, fp (float64 [D], 0/1) for detections of one class already in score order (or of
    several classes: GT indices ``jmax`` never coincide across classes). Detections flagged in
    ``det_ignore_unless_tp`` (bool [D]) are neither tp nor fp unless they are a tp."""
    above = ovmax > threshold
    j = np.where(above, jmax, 0)
    ignored = above & gt_difficult[j] if len(gt_difficult) else np.zeros_like(above)
    candidate = above & ~ignored
    tp = np.zeros(len(ovmax))
    cand_idx = np.flatnonzero(candidate)
    # np.unique returns the first occurrence of each GT: the highest-scoring detection on it.
    _, first = np.unique(jmax[cand_idx], return_index=True)
    tp[cand_idx[first]] = 1.0
    fp = (~above).astype(np.float64)
    fp[cand_idx] = 1.0 - tp[cand_idx]
    if det_ignore_unless_tp is not None:
        fp[det_ignore_unless_tp] = 0.0
    return tp, fp


def rotated_voc_map(
    det_image_ids,
    det_boxes,
    det_scores,
    det_labels,
    gt_image_ids,
    gt_boxes,
    gt_labels,
    gt_difficult=None,
    *,
    num_classes: int | None = None,
    iou_thresholds: Sequence[float] = (0.5,),
    use_07_metric: bool = False,
    iou_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    area_ranges: Mapping[str, tuple[float, float]] | None = None,
) -> RotatedMAPResult:
    """Rotated VOC/DOTA mean AP of a whole dataset (see the module docstring for the rules).

    Args:
        det_image_ids, det_boxes, det_scores, det_labels, gt_image_ids, gt_boxes, gt_labels,
        gt_difficult: the dataset's detections and ground truth, numpy, torch or lists, as
            in :func:`~rotated_det.evaluation.detection_arrays.as_detection_arrays`.
        num_classes: number of classes C; default ``1 + max label``.
        iou_thresholds: IoU thresholds; a detection matches when IoU > threshold.
        use_07_metric: VOC2007 11-point AP instead of the area under the envelope.
        iou_fn: optional ``(boxes1 [N, K], boxes2 [M, K]) -> IoU [N, M]`` replacing the rotated
            IoU, for boxes of another kind (then ``det_boxes`` / ``gt_boxes`` are [D, K] / [G, K],
            e.g. polygons with K = 8).
        area_ranges: optional ``{name: (lo, hi)}`` of rotated-box areas ``w * h`` in pixels^2
            (e.g. :data:`SIZE_RANGES`): AP per range in ``area_ap`` (module docstring). Needs
            rotated boxes (no ``iou_fn``).

    Returns:
        :class:`RotatedMAPResult`.
    """
    box_dim = 5
    if iou_fn is not None:  # the boxes' own width (e.g. 8 for polygons)
        dims = [np.ndim(b) == 2 and np.shape(b)[1] for b in (det_boxes, gt_boxes)]
        box_dim = next((d for d in dims if d), 8)
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
        caller="rotated_voc_map",
        box_dim=box_dim,
    )
    det_boxes, det_scores, det_labels = a.det_boxes, a.det_scores, a.det_labels
    gt_boxes, gt_labels, gt_difficult = a.gt_boxes, a.gt_labels, a.gt_difficult
    num_classes, nd = a.num_classes, len(det_scores)
    thresholds = np.asarray(iou_thresholds, dtype=np.float64).reshape(-1)
    if len(thresholds) == 0:
        raise ValueError("rotated_voc_map: iou_thresholds is empty")
    if area_ranges and box_dim != 5:
        raise ValueError("rotated_voc_map: area_ranges needs rotated boxes [N, 5], not iou_fn")

    # (image, class) groups as one non-negative int64 key; image ids (non-negative now) are
    # compacted to 0..I-1 unless they already are small.
    all_ids = np.concatenate([a.det_image_ids, a.gt_image_ids])
    if len(all_ids) and all_ids.max() > len(all_ids):
        all_ids = np.unique(all_ids, return_inverse=True)[1].reshape(-1).astype(np.int64)
    det_keys = all_ids[:nd] * num_classes + det_labels
    gt_keys = all_ids[nd:] * num_classes + gt_labels
    ovmax, jmax = best_gt_per_detection(det_keys, det_boxes, gt_keys, gt_boxes, iou_fn)

    # Per class (input order kept), then by decreasing score; stable, so tied scores keep the
    # input order.
    by_class = _group_order(det_labels)
    class_bounds = np.searchsorted(det_labels[by_class], np.arange(num_classes + 1))

    num_t = len(thresholds)
    num_dets = np.zeros(num_classes, dtype=np.int64)
    class_dets = []
    for c in range(num_classes):
        idx = by_class[class_bounds[c] : class_bounds[c + 1]]
        class_dets.append(idx[np.argsort(-det_scores[idx], kind="stable")])
        num_dets[c] = len(idx)

    def score(gt_ignored: np.ndarray, det_ignore_unless_tp: np.ndarray | None):
        """AP [C, T], recall reached [C, T], curves at thresholds[0], npos [C]."""
        npos_all = np.bincount(gt_labels[~gt_ignored], minlength=num_classes).astype(np.int64)
        ap = np.full((num_classes, num_t), np.nan)
        recall_end = np.full((num_classes, num_t), np.nan)
        curves = []
        for c in range(num_classes):
            idx = class_dets[c]
            npos = int(npos_all[c])
            c_ovmax, c_jmax = ovmax[idx], jmax[idx]
            c_ignore = None if det_ignore_unless_tp is None else det_ignore_unless_tp[idx]
            first_curve = (np.zeros(0), np.zeros(0))
            for ti, t in enumerate(thresholds):
                tp, fp = _class_tp_fp(c_ovmax, c_jmax, gt_ignored, t, c_ignore)
                tp, fp = np.cumsum(tp), np.cumsum(fp)
                precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
                if npos > 0:
                    recall = tp / float(npos)
                    ap[c, ti] = voc_ap(recall, precision, use_07_metric)
                    recall_end[c, ti] = recall[-1] if len(recall) else 0.0
                else:
                    recall = np.full(len(tp), np.nan)
                if ti == 0:
                    first_curve = (recall, precision)
            curves.append(first_curve)
        return ap, recall_end, curves, npos_all

    ap, recall_end, curves, num_gts = score(gt_difficult, None)
    area_ap, area_num_gts = {}, {}
    if area_ranges:
        gt_area = gt_boxes[:, 2] * gt_boxes[:, 3]
        det_area = det_boxes[:, 2] * det_boxes[:, 3]
        for name, (lo, hi) in area_ranges.items():
            gt_out = (gt_area < lo) | (gt_area >= hi)
            det_out = (det_area < lo) | (det_area >= hi)
            area_ap[name], _, _, area_num_gts[name] = score(gt_difficult | gt_out, det_out)
    return RotatedMAPResult(
        iou_thresholds=thresholds,
        ap=ap,
        num_gts=num_gts,
        num_dets=num_dets,
        recall=recall_end,
        curves=curves,
        use_07_metric=use_07_metric,
        area_ap=area_ap,
        area_num_gts=area_num_gts,
    )

"""Where the AP goes: a TIDE-style breakdown of false positives and missed objects.

TIDE (Bolya et al., "TIDE: A General Toolbox for Identifying Object Detection Errors", ECCV 2020)
sorts each error of a detector into one type and reports, per type, the AP gained if all errors
of that type alone were fixed (dAP). Here the same is done for rotated boxes, on top of the DOTA
evaluator's own matching (:mod:`~rotated_det.evaluation.rotated_map`), so that the AP it starts
from is the evaluator's AP at IoU ``fg_iou``.

Definitions (``t_f = fg_iou`` = 0.5 and ``t_b = bg_iou`` = 0.1, TIDE's values; IoU is the
rotated IoU; "same class" = the detection's predicted class):

* true positive / false positive / ignored: the evaluator's rules at ``t_f``: each detection's
  best same-class GT (largest IoU, difficult GT included); above ``t_f`` (strictly) it is a true
  positive when it is the highest-scoring detection on that GT, ignored when the GT is
  difficult, otherwise a false positive.
* Each false positive gets the first type that applies, in this order:

  ``dupe``  duplicate: IoU ``> t_f`` with a GT of its class that a higher-scoring detection
            already matched.
  ``loc``   localisation: ``t_b <= IoU <= t_f`` with its best GT of its class (right class, box
            not good enough).
  ``cls``   classification: IoU ``> t_f`` with a GT of another class (right box, wrong class).
  ``bkg``   background: IoU ``<= t_b`` with every GT of any class.
  ``both``  classification and localisation: the rest, i.e. ``t_b < IoU <= t_f`` with a GT of
            another class only.

* ``miss``: a non-difficult GT that no detection matched and that is not the target of a
  ``cls`` or ``loc`` error that could be fixed (below).

Fixing an error type (dAP = AP after the fix minus AP before, each type fixed alone, from the
original detections; TIDE's "main errors"):

* ``cls``, ``loc``: the detection becomes a true positive on its target GT (for ``cls`` with the
  GT's class), if that GT is not matched already and the detection is the highest-scoring
  ``cls``/``loc`` error on it; the other errors of the type are removed. A target that is
  difficult would be ignored by the evaluator, so that error is removed.
* ``dupe``, ``bkg``, ``both``: the detections are removed.
* ``miss``: the missed GT are removed from the class's GT count (a class all of whose GT are
  plain misses keeps AP 0).

Differences from TIDE's code: matching and AP are the DOTA kit's (IoU strictly above the
threshold, all-point AP; TIDE uses COCO's greedy matching and 101-point AP), and ``dupe`` is tested
before ``cls`` (TIDE tests ``cls`` first; the two differ only for a detection that overlaps, above
``t_f``, both an already-detected object of its class and an object of another class).

Per class, errors of false positives count under the predicted class and misses under the true
class; a ``cls`` fix can raise the AP of both the predicted class (one false positive fewer) and
the true class (one true positive more).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rotated_det.evaluation.detection_arrays import DetectionArrays, as_detection_arrays
from rotated_det.evaluation.rotated_map import _class_tp_fp, best_gt_per_detection, voc_ap
from rotated_det.layers import pairwise_iou_rotated

__all__ = ["ERROR_TYPES", "ErrorAnalysis", "format_error_table", "plot_errors", "tide_errors"]

#: Error types in the order of :attr:`ErrorAnalysis.counts`' columns.
ERROR_TYPES: tuple[str, ...] = ("cls", "loc", "both", "dupe", "bkg", "miss")
_CLS, _LOC, _BOTH, _DUPE, _BKG, _MISS = range(len(ERROR_TYPES))
TRUE_POSITIVE, IGNORED = -1, -2  # values of ErrorAnalysis.det_error besides the error indices


@dataclass
class ErrorAnalysis:
    """Errors of a dataset's detections (definitions in the module docstring).

    Attributes:
        ap: float64 [C], AP per class at ``fg_iou`` (the evaluator's; NaN without GT).
        delta_ap: float64 [C, E], AP gained per class when all errors of type ``e`` are fixed
            (E = len(ERROR_TYPES), in that order); NaN for classes without GT.
        counts: int64 [C, E], errors per class (false positives under the predicted class,
            misses under the true class).
        num_gts: int64 [C], non-difficult GT per class.
        num_tp: int64 [C], true positives per class.
        det_error: int64 [D], per input detection: the error type index, ``TRUE_POSITIVE`` (-1)
            or ``IGNORED`` (-2, on a difficult GT).
        gt_missed: bool [G], per input GT: a ``miss`` error.
        fg_iou, bg_iou, use_07_metric: the settings.
    """

    ap: np.ndarray
    delta_ap: np.ndarray
    counts: np.ndarray
    num_gts: np.ndarray
    num_tp: np.ndarray
    det_error: np.ndarray = field(repr=False)
    gt_missed: np.ndarray = field(repr=False)
    fg_iou: float = 0.5
    bg_iou: float = 0.1
    use_07_metric: bool = False

    @property
    def mean_ap(self) -> float:
        """Mean AP over classes with GT (NaN if none)."""
        valid = self.num_gts > 0
        return float(self.ap[valid].mean()) if valid.any() else float("nan")

    @property
    def delta_map(self) -> np.ndarray:
        """float64 [E]: mAP gained by fixing each error type (mean of ``delta_ap`` over classes
        with GT)."""
        valid = self.num_gts > 0
        if not valid.any():
            return np.full(len(ERROR_TYPES), np.nan)
        return self.delta_ap[valid].mean(axis=0)


def _class_masked_iou(dets: np.ndarray, gts: np.ndarray) -> np.ndarray:
    """IoU [N, M] of boxes [N, 6] and [M, 6] whose last column is the class; -inf across
    classes."""
    iou = pairwise_iou_rotated(
        torch.from_numpy(np.ascontiguousarray(dets[:, :5])),
        torch.from_numpy(np.ascontiguousarray(gts[:, :5])),
    ).numpy()
    return np.where(dets[:, 5:6] == gts[None, :, 5], iou.astype(np.float64), -np.inf)


def _best_same_class_gt(a: DetectionArrays) -> tuple[np.ndarray, np.ndarray]:
    """``best_gt_per_detection`` with one group per (image, class), computed with one IoU call
    per image (cross-class pairs masked): the same (ovmax, jmax), about 5x faster when an image
    holds many classes (one call per group costs ~0.1 ms)."""
    ovmax, jmax = best_gt_per_detection(
        a.det_image_ids,
        np.c_[a.det_boxes, a.det_labels],
        a.gt_image_ids,
        np.c_[a.gt_boxes, a.gt_labels],
        _class_masked_iou,
    )
    jmax[~np.isfinite(ovmax)] = -1  # no GT of the class in the image
    return ovmax, jmax


def _class_aps(
    labels: np.ndarray,
    scores: np.ndarray,
    tp: np.ndarray,
    npos: np.ndarray,
    evaluated: np.ndarray,
    use_07_metric: bool,
) -> np.ndarray:
    """AP [C] from counted detections (labels, scores, tp 0/1, each [N]) and GT counts [C];
    NaN where ``evaluated`` [C] is False, 0 where ``npos`` is 0."""
    num_classes = len(npos)
    order = np.lexsort((-scores, labels))  # by class, then decreasing score; stable
    labels, tp = labels[order], tp[order]
    bounds = np.searchsorted(labels, np.arange(num_classes + 1))
    ap = np.full(num_classes, np.nan)
    for c in np.flatnonzero(evaluated):
        if npos[c] == 0:
            ap[c] = 0.0
            continue
        t = np.cumsum(tp[bounds[c] : bounds[c + 1]])
        n = np.arange(1, len(t) + 1)
        ap[c] = voc_ap(t / float(npos[c]), t / n, use_07_metric)
    return ap


def tide_errors(
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
    fg_iou: float = 0.5,
    bg_iou: float = 0.1,
    use_07_metric: bool = False,
) -> ErrorAnalysis:
    """TIDE-style error types and their dAP (module docstring) of a dataset's detections.

    Args:
        det_image_ids, det_boxes, det_scores, det_labels, gt_image_ids, gt_boxes, gt_labels,
        gt_difficult: the dataset's detections and ground truth, numpy, torch or lists, as
            in :func:`~rotated_det.evaluation.detection_arrays.as_detection_arrays`.
        num_classes: C.
        fg_iou: foreground IoU t_f (the AP's matching threshold).
        bg_iou: background IoU t_b.
        use_07_metric: VOC2007 11-point AP instead of the area under the envelope.

    Returns:
        :class:`ErrorAnalysis`.
    """
    if not 0.0 <= bg_iou <= fg_iou < 1.0:
        raise ValueError(f"tide_errors: need 0 <= bg_iou <= fg_iou < 1, got {bg_iou}, {fg_iou}")
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
        caller="tide_errors",
    )
    c_num, nd = num_classes, len(a.det_scores)
    gt_labels_, difficult = a.gt_labels, a.gt_difficult
    # The evaluator's matching: best GT of the detection's class, then of any class.
    ov_same, j_same = _best_same_class_gt(a)
    ov_any, j_any = best_gt_per_detection(a.det_image_ids, a.det_boxes, a.gt_image_ids, a.gt_boxes)
    # TP/FP at fg_iou in decreasing score order (GT indices never coincide across classes, so
    # all classes are scored in one pass).
    order = np.argsort(-a.det_scores, kind="stable")
    tp_sorted, fp_sorted = _class_tp_fp(ov_same[order], j_same[order], difficult, fg_iou)
    tp = np.zeros(nd, bool)
    fp = np.zeros(nd, bool)
    tp[order] = tp_sorted > 0
    fp[order] = fp_sorted > 0

    det_error = np.full(nd, IGNORED, np.int64)
    det_error[tp] = TRUE_POSITIVE
    rest = fp.copy()
    for kind, test in (
        (_DUPE, ov_same > fg_iou),
        (_LOC, ov_same >= bg_iou),
        (_CLS, ov_any > fg_iou),
        (_BKG, ov_any <= bg_iou),
        (_BOTH, np.ones(nd, bool)),
    ):
        hit = rest & test
        det_error[hit] = kind
        rest &= ~hit

    # Targets of cls/loc errors; a fix applies when the target is free (not matched, not
    # difficult) and the error is the highest-scoring cls/loc error on it.
    gt_used = np.zeros(len(gt_labels_), bool)
    gt_used[j_same[tp]] = True
    target = np.where(det_error == _CLS, j_any, np.where(det_error == _LOC, j_same, -1))
    fixable = target >= 0
    fixable[fixable] = ~gt_used[target[fixable]] & ~difficult[target[fixable]]
    usable = np.zeros(len(gt_labels_), bool)
    usable[target[fixable]] = True
    cand = order[fixable[order]]  # fixable errors in decreasing score order
    _, first = np.unique(target[cand], return_index=True)
    winner = np.zeros(nd, bool)
    winner[cand[first]] = True
    gt_missed = ~gt_used & ~difficult & ~usable

    num_gts = np.bincount(gt_labels_[~difficult], minlength=c_num).astype(np.int64)
    evaluated = num_gts > 0
    counted = det_error != IGNORED

    def aps(
        labels: np.ndarray, is_tp: np.ndarray, keep: np.ndarray, npos: np.ndarray = num_gts
    ) -> np.ndarray:
        return _class_aps(
            labels[keep],
            a.det_scores[keep],
            is_tp[keep].astype(np.float64),
            npos,
            evaluated,
            use_07_metric,
        )

    ap = aps(a.det_labels, tp, counted)
    delta = np.full((c_num, len(ERROR_TYPES)), np.nan)
    for kind in (_CLS, _LOC, _BOTH, _DUPE, _BKG):
        is_kind = det_error == kind
        labels, is_tp, keep = a.det_labels, tp, counted & ~is_kind
        if kind in (_CLS, _LOC):
            fixed = is_kind & winner
            keep = keep | fixed
            is_tp = tp | fixed
            if kind == _CLS:
                labels = a.det_labels.copy()
                labels[fixed] = gt_labels_[target[fixed]]
        delta[:, kind] = aps(labels, is_tp, keep) - ap
    npos_fixed = num_gts - np.bincount(gt_labels_[gt_missed], minlength=c_num)
    delta[:, _MISS] = aps(a.det_labels, tp, counted, npos_fixed) - ap

    counts = np.zeros((c_num, len(ERROR_TYPES)), np.int64)
    is_err = det_error >= 0
    np.add.at(counts, (a.det_labels[is_err], det_error[is_err]), 1)
    counts[:, _MISS] = np.bincount(gt_labels_[gt_missed], minlength=c_num)
    return ErrorAnalysis(
        ap=ap,
        delta_ap=delta,
        counts=counts,
        num_gts=num_gts,
        num_tp=np.bincount(a.det_labels[tp], minlength=c_num).astype(np.int64),
        det_error=det_error,
        gt_missed=gt_missed,
        fg_iou=float(fg_iou),
        bg_iou=float(bg_iou),
        use_07_metric=use_07_metric,
    )


def format_error_table(result: ErrorAnalysis, class_names: Sequence[str]) -> str:
    """Text tables: per class (and the mean) the AP, then the dAP (AP points gained when each
    error type is fixed alone), then the number of errors of each type."""
    names = list(class_names)
    if len(names) != len(result.ap):
        raise ValueError(f"format_error_table: {len(names)} class names for {len(result.ap)}")
    width = max(len("class"), *(len(n) for n in names))
    pct = f"{result.fg_iou * 100:.0f}"
    cols = "".join(f" | {t:>6}" for t in ERROR_TYPES)
    rule = "-" * (width + 26 + 9 * len(ERROR_TYPES))

    def num(v: float) -> str:
        return f"{v:6.2f}" if np.isfinite(v) else f"{'-':>6}"

    lines = [
        f"TIDE-style errors (foreground IoU {result.fg_iou:g}, background IoU {result.bg_iou:g})",
        "",
        f"dAP{pct}: AP{pct} points gained by fixing each error type alone",
        f"{'class':<{width}} | {'gts':>6} | {'AP' + pct:>6}{cols}",
        rule,
    ]
    for c, name in enumerate(names):
        cells = "".join(f" | {num(100 * v)}" for v in result.delta_ap[c])
        lines.append(
            f"{name:<{width}} | {result.num_gts[c]:>6d} | {num(100 * result.ap[c])}{cells}"
        )
    lines.append(rule)
    cells = "".join(f" | {num(100 * v)}" for v in result.delta_map)
    total_gts = int(result.num_gts.sum())
    lines.append(f"{'mean':<{width}} | {total_gts:>6d} | {num(100 * result.mean_ap)}{cells}")
    lines += ["", "error counts", f"{'class':<{width}} | {'gts':>6} | {'TP':>6}{cols}", rule]
    for c, name in enumerate(names):
        cells = "".join(f" | {int(v):>6d}" for v in result.counts[c])
        lines.append(f"{name:<{width}} | {result.num_gts[c]:>6d} | {result.num_tp[c]:>6d}{cells}")
    lines.append(rule)
    cells = "".join(f" | {int(v):>6d}" for v in result.counts.sum(axis=0))
    lines.append(f"{'all':<{width}} | {total_gts:>6d} | {int(result.num_tp.sum()):>6d}{cells}")
    return "\n".join(lines)


def plot_errors(path: str, result: ErrorAnalysis, class_names: Sequence[str]) -> str:
    """Save a PNG: grouped bars of dAP per error type for the mean and each class (top), and of
    error counts per class (bottom). Returns ``path``."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state (headless)

    names = ["mean", *class_names]
    num_types = len(ERROR_TYPES)
    x = np.arange(len(names))
    bar = 0.8 / num_types
    fig = Figure(figsize=(max(7.0, 0.9 * len(names) + 2.0), 7.5))
    ax_d, ax_n = fig.subplots(2, 1)
    dap = 100 * np.vstack([result.delta_map[None], result.delta_ap])
    cnt = np.vstack([np.full((1, num_types), np.nan), result.counts.astype(np.float64)])
    for e, kind in enumerate(ERROR_TYPES):
        offset = (e - (num_types - 1) / 2) * bar
        ax_d.bar(x + offset, np.nan_to_num(dap[:, e]), bar, label=kind, color=f"C{e}")
        ax_n.bar(x[1:] + offset, cnt[1:, e], bar, label=kind, color=f"C{e}")
    pct = f"{result.fg_iou * 100:.0f}"
    ax_d.set_ylabel(f"dAP{pct} (AP points)")
    ax_d.set_title(
        f"AP{pct} gained by fixing each error type (mAP{pct} = {100 * result.mean_ap:.2f})"
    )
    ax_n.set_ylabel("errors")
    ax_n.set_title("error counts (false positives by predicted class, misses by true class)")
    ax_d.set_xticks(x, names, rotation=45, ha="right", fontsize=8)
    ax_n.set_xticks(x[1:], names[1:], rotation=45, ha="right", fontsize=8)
    for ax in (ax_d, ax_n):
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, ncol=num_types)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    return path

"""Straightforward references of the confusion matrix and the TIDE-style error analysis, for tests
and dev/bench_analysis.py: one Python loop over the detections of each image in score order, an
IoU matrix per image (the compiled rotated IoU), the rules as the modules' docstrings state them
(rotated_det.evaluation.confusion_matrix, rotated_det.evaluation.error_analysis) and an AP written
out as a loop. Nothing here is fast; nothing here is used by the library.
"""

from __future__ import annotations

import numpy as np
import torch

from rotated_det.layers import pairwise_iou_rotated

ERROR_TYPES = ("cls", "loc", "both", "dupe", "bkg", "miss")


def _per_image(det_img, gt_img):
    images = sorted(set(det_img.tolist()) | set(gt_img.tolist()))
    for i in images:
        yield np.flatnonzero(det_img == i), np.flatnonzero(gt_img == i)


def _iou(det_boxes, gt_boxes, d_idx, g_idx):
    if len(d_idx) == 0 or len(g_idx) == 0:
        return np.zeros((len(d_idx), len(g_idx)))
    return pairwise_iou_rotated(
        torch.from_numpy(det_boxes[d_idx]), torch.from_numpy(gt_boxes[g_idx])
    ).numpy()


def _best(ious_row, g_idx, allowed):
    """(largest IoU, GT index) among allowed GT, first on ties; (-inf, -1) if none."""
    best, arg = -np.inf, -1
    for k, g in enumerate(g_idx):
        if allowed(g) and ious_row[k] > best:
            best, arg = ious_row[k], g
    return best, arg


def confusion_reference(a, score_threshold=0.25, iou_threshold=0.5):
    """Counts [K + 1, K + 1] (rows true, columns predicted, background last) and the number of
    ignored detections, from DetectionArrays ``a``."""
    k = a.num_classes
    counts = np.zeros((k + 1, k + 1), np.int64)
    ignored = 0
    for d_idx, g_idx in _per_image(a.det_image_ids, a.gt_image_ids):
        d_idx = d_idx[a.det_scores[d_idx] >= score_threshold]
        d_idx = d_idx[np.argsort(-a.det_scores[d_idx], kind="stable")]
        ious = _iou(a.det_boxes, a.gt_boxes, d_idx, g_idx)
        taken = set()
        for r, d in enumerate(d_idx):
            best, g = _best(ious[r], g_idx, lambda g: True)
            if best > iou_threshold and a.gt_difficult[g]:
                ignored += 1
            elif best > iou_threshold and g not in taken:
                taken.add(g)
                counts[a.gt_labels[g], a.det_labels[d]] += 1
            else:
                counts[k, a.det_labels[d]] += 1
        for g in g_idx:
            if g not in taken and not a.gt_difficult[g]:
                counts[a.gt_labels[g], k] += 1
    return counts, ignored


def ap_reference(scores, is_tp, npos):
    """All-point AP (area under the precision envelope) of one class, written as loops."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    tp = fp = 0
    rec, prec = [], []
    for i in order:
        tp += bool(is_tp[i])
        fp += not is_tp[i]
        rec.append(tp / npos)
        prec.append(tp / (tp + fp))
    mrec, mpre = [0.0, *rec, 1.0], [0.0, *prec, 0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    return sum((mrec[i + 1] - mrec[i]) * mpre[i + 1] for i in range(len(mrec) - 1))


def tide_reference(a, fg_iou=0.5, bg_iou=0.1):
    """(det_error list [D] of type names / "tp" / "ignored", missed GT set, AP [C],
    delta AP [C, 6] in ERROR_TYPES order) from DetectionArrays ``a``."""
    c_num, nd = a.num_classes, len(a.det_scores)
    status = [""] * nd
    same_best, any_best = [None] * nd, [None] * nd
    used = set()
    for d_idx, g_idx in _per_image(a.det_image_ids, a.gt_image_ids):
        d_idx = d_idx[np.argsort(-a.det_scores[d_idx], kind="stable")]
        ious = _iou(a.det_boxes, a.gt_boxes, d_idx, g_idx)
        for r, d in enumerate(d_idx):
            lab = a.det_labels[d]
            same_best[d] = _best(ious[r], g_idx, lambda g, lab=lab: a.gt_labels[g] == lab)
            any_best[d] = _best(ious[r], g_idx, lambda g: True)
            s, g = same_best[d]
            if s > fg_iou:
                if a.gt_difficult[g]:
                    status[d] = "ignored"
                elif g in used:
                    status[d] = "dupe"
                else:
                    status[d] = "tp"
                    used.add(g)
    for d in range(nd):
        if status[d]:
            continue
        s, an = same_best[d][0], any_best[d][0]
        if s >= bg_iou:
            status[d] = "loc"
        elif an > fg_iou:
            status[d] = "cls"
        elif an <= bg_iou:
            status[d] = "bkg"
        else:
            status[d] = "both"
    target = {d: (same_best[d][1] if status[d] == "loc" else any_best[d][1]) for d in range(nd)}
    best_on = {}  # free GT -> highest-scoring cls/loc error on it
    for d in sorted(range(nd), key=lambda d: -a.det_scores[d]):
        g = target[d]
        if status[d] in ("cls", "loc") and g not in used and not a.gt_difficult[g]:
            best_on.setdefault(g, d)
    missed = {
        g
        for g in range(len(a.gt_labels))
        if g not in used and not a.gt_difficult[g] and g not in best_on
    }
    npos = [int(((a.gt_labels == c) & ~a.gt_difficult).sum()) for c in range(c_num)]

    def class_aps(points, npos_c):
        out = []
        for c in range(c_num):
            if npos[c] == 0:
                out.append(np.nan)
            elif npos_c[c] == 0:
                out.append(0.0)
            else:
                pts = [(s, t) for (lab, s, t) in points if lab == c]
                out.append(ap_reference([p[0] for p in pts], [p[1] for p in pts], npos_c[c]))
        return np.array(out)

    def points(fix):
        out = []
        for d in range(nd):
            st, lab, s = status[d], int(a.det_labels[d]), float(a.det_scores[d])
            if st == "ignored":
                continue
            if st != fix:
                out.append((lab, s, st == "tp"))
            elif st in ("cls", "loc") and best_on.get(target[d]) == d:
                out.append((int(a.gt_labels[target[d]]) if st == "cls" else lab, s, True))
        return out

    ap = class_aps(points(None), npos)
    delta = np.zeros((c_num, len(ERROR_TYPES)))
    for e, kind in enumerate(ERROR_TYPES):
        if kind == "miss":
            npos_fixed = [
                npos[c] - sum(1 for g in missed if a.gt_labels[g] == c) for c in range(c_num)
            ]
            delta[:, e] = class_aps(points(None), npos_fixed) - ap
        else:
            delta[:, e] = class_aps(points(kind), npos) - ap
    return status, missed, ap, delta

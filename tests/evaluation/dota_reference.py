"""Straightforward reference of the DOTA development kit's Task1 scoring, for tests and benchmarks.

Written from the kit's published algorithm (dota_evaluation_task1.py): detections of a class sorted
by decreasing score, each compared with its image's GT polygons by polygon IoU (here shapely), the
largest IoU above the threshold (strictly) matches: difficult GT -> ignored, first match -> TP,
later match -> FP; otherwise FP. VOC07 11-point or area AP. One deliberate difference: ties in score
are ordered stably (input order), as documented in rotated_det.evaluation.rotated_map.

Nothing here is fast; nothing here is used by the library.
"""

from __future__ import annotations

import math

import numpy as np
from shapely.geometry import Polygon


def rbox_to_poly_ref(box) -> list[float]:
    """(cx, cy, w, h, angle_deg) -> [x1, y1, ..., x4, y4], the contract's convention."""
    cx, cy, w, h, a = (float(v) for v in box)
    t = math.radians(a)
    ux, uy = math.cos(t), -math.sin(t)  # w axis
    vx, vy = math.sin(t), math.cos(t)  # h axis
    pts = []
    for sw, sh in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
        pts += [cx + sw * w / 2 * ux + sh * h / 2 * vx, cy + sw * w / 2 * uy + sh * h / 2 * vy]
    return pts


def poly_iou_ref(p, q) -> float:
    a = Polygon(np.asarray(p, dtype=np.float64).reshape(4, 2))
    b = Polygon(np.asarray(q, dtype=np.float64).reshape(4, 2))
    if not a.is_valid or not b.is_valid:
        a, b = a.buffer(0), b.buffer(0)
    inter = a.intersection(b).area
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def voc_ap_ref(rec, prec, use_07_metric=False) -> float:
    if use_07_metric:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            if np.sum(rec >= t) == 0:
                p = 0
            else:
                p = np.max(prec[rec >= t])
            ap = ap + p / 11.0
        return ap
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def class_ap_ref(dets, gts, ovthresh=0.5, use_07_metric=False):
    """AP of one class.

    Args:
        dets: list of (image_id, score, poly8).
        gts: dict image_id -> list of (poly8, difficult).

    Returns:
        (ap, rec, prec); ap is NaN when there is no non-difficult GT.
    """
    class_recs = {}
    npos = 0
    for img, objs in gts.items():
        difficult = np.array([bool(d) for _, d in objs], dtype=bool)
        npos += int((~difficult).sum())
        class_recs[img] = {"polys": [p for p, _ in objs], "difficult": difficult,
                           "det": [False] * len(objs)}  # fmt: skip
    confidence = np.array([d[1] for d in dets], dtype=np.float64)
    sorted_ind = np.argsort(-confidence, kind="stable")
    nd = len(dets)
    tp = np.zeros(nd)
    fp = np.zeros(nd)
    for d in range(nd):
        img, _, poly = dets[sorted_ind[d]]
        R = class_recs.get(img, {"polys": [], "difficult": np.zeros(0, bool), "det": []})
        ovmax = -np.inf
        jmax = -1
        if len(R["polys"]):
            # As the kit: polygon IoU only with GT whose horizontal boxes meet the detection's.
            if "hbb" not in R:
                g = np.asarray(R["polys"], dtype=np.float64).reshape(-1, 4, 2)
                R["hbb"] = np.concatenate([g.min(1), g.max(1)], axis=1)
            p = np.asarray(poly, dtype=np.float64).reshape(4, 2)
            lo, hi = p.min(0), p.max(0)
            hbb = R["hbb"]
            meet = (
                (hbb[:, 0] <= hi[0])
                & (hbb[:, 2] >= lo[0])
                & (hbb[:, 1] <= hi[1])
                & (hbb[:, 3] >= lo[1])
            )
            for j in np.flatnonzero(meet):
                ov = poly_iou_ref(poly, R["polys"][j])
                if ov > ovmax:
                    ovmax, jmax = ov, j
        if ovmax > ovthresh:
            if not R["difficult"][jmax]:
                if not R["det"][jmax]:
                    tp[d] = 1.0
                    R["det"][jmax] = True
                else:
                    fp[d] = 1.0
        else:
            fp[d] = 1.0
    fp = np.cumsum(fp)
    tp = np.cumsum(tp)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    if npos == 0:
        return float("nan"), np.full(nd, np.nan), prec
    rec = tp / float(npos)
    return voc_ap_ref(rec, prec, use_07_metric), rec, prec


def dataset_aps_ref(dets, gts, num_classes, ovthresh=0.5, use_07_metric=False):
    """Per-class AP list from flat rotated-box records.

    Args:
        dets: list of (image_id, class, score, rbox5).
        gts: list of (image_id, class, rbox5, difficult).
    """
    aps = []
    for c in range(num_classes):
        cd = [(i, s, rbox_to_poly_ref(b)) for i, k, s, b in dets if k == c]
        cg: dict = {}
        for i, k, b, diff in gts:
            if k == c:
                cg.setdefault(i, []).append((rbox_to_poly_ref(b), diff))
        aps.append(class_ap_ref(cd, cg, ovthresh, use_07_metric)[0])
    return np.array(aps)

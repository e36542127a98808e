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
    """AP from a PR curve: 11-point VOC2007 or the area under the right-running max."""
    rec = np.asarray(rec, dtype=np.float64)
    prec = np.asarray(prec, dtype=np.float64)
    if use_07_metric:
        # The kit's recall levels are np.arange(0, 1.1, 0.1): 0.30000000000000004, ... A recall of
        # exactly 3/10 does not reach that level; kept, to agree with the kit's numbers.
        total = 0.0
        for level in np.arange(0.0, 1.1, 0.1):
            reached = prec[rec >= level]
            total += (reached.max() if reached.size else 0.0) / 11.0
        return total
    # Curve padded with (0, 0) in front and (1, 0) at the end; precision made non-increasing
    # from the right; rectangles summed wherever recall moves.
    r = [0.0, *rec.tolist(), 1.0]
    q = [0.0, *prec.tolist(), 0.0]
    for k in range(len(q) - 2, -1, -1):
        q[k] = max(q[k], q[k + 1])
    area = 0.0
    for k in range(1, len(r)):
        if r[k] != r[k - 1]:
            area += (r[k] - r[k - 1]) * q[k]
    return area


def _hbox(poly):
    pts = np.asarray(poly, dtype=np.float64).reshape(4, 2)
    return pts.min(0), pts.max(0)


def class_ap_ref(dets, gts, ovthresh=0.5, use_07_metric=False):
    """AP of one class.

    Args:
        dets: list of (image_id, score, poly8).
        gts: dict image_id -> list of (poly8, difficult).

    Returns:
        (ap, rec, prec); ap is NaN when there is no non-difficult GT.
    """
    images = {}
    num_positive = 0
    for img, objects in gts.items():
        images[img] = {
            "polys": [poly for poly, _ in objects],
            "hard": [bool(h) for _, h in objects],
            "taken": [False] * len(objects),
        }
        corners = np.asarray(images[img]["polys"], dtype=np.float64).reshape(-1, 4, 2)
        images[img]["lo"], images[img]["hi"] = corners.min(1), corners.max(1)
        num_positive += sum(1 for _, h in objects if not h)
    empty = {"polys": [], "hard": [], "taken": [], "lo": np.zeros((0, 2)), "hi": np.zeros((0, 2))}
    ranked = sorted(range(len(dets)), key=lambda k: -float(dets[k][1]))  # Python sort is stable
    hits = np.zeros(len(dets))
    misses = np.zeros(len(dets))
    for rank, k in enumerate(ranked):
        img, _, poly = dets[k]
        info = images.get(img, empty)
        lo, hi = _hbox(poly)
        best_iou, best_j = -np.inf, -1
        # As the kit: polygon IoU only with GT whose horizontal boxes meet the detection's.
        meet = np.all(info["lo"] <= hi, axis=1) & np.all(info["hi"] >= lo, axis=1)
        for j in np.flatnonzero(meet):
            iou = poly_iou_ref(poly, info["polys"][j])
            if iou > best_iou:
                best_iou, best_j = iou, int(j)
        if best_iou <= ovthresh:
            misses[rank] = 1.0
        elif info["hard"][best_j]:
            pass  # matched a difficult object: neither hit nor miss
        elif info["taken"][best_j]:
            misses[rank] = 1.0
        else:
            info["taken"][best_j] = True
            hits[rank] = 1.0
    hits, misses = np.cumsum(hits), np.cumsum(misses)
    prec = hits / np.maximum(hits + misses, np.finfo(np.float64).eps)
    if num_positive == 0:
        return float("nan"), np.full(len(dets), np.nan), prec
    rec = hits / float(num_positive)
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

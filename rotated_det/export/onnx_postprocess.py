"""Final class-wise rotated NMS of an exported ONNX detector, in numpy (no torch).

ONNX files written by ``tools/deploy/export_model.py --format onnx`` return the detector's
candidates BEFORE its final NMS (rotated-IoU NMS has no standard ONNX operator): ``boxes``
float32 ``[M, 5]`` (cx, cy, w, h, angle in degrees counter-clockwise, input pixels),
``scores`` float32 ``[M]`` and ``classes`` int64 ``[M]``. :func:`postprocess` finishes them
as the detector's own NMS does (``rotated_det.layers.batched_nms_rotated``): per class, by
decreasing score (ties: lower index first), a box suppresses every later box whose rotated IoU
with it is greater than the threshold; then the best ``max_detections`` are kept. The IoU
threshold and the limit are stored in the ONNX file's metadata (:data:`METADATA_KEYS`).

This file imports only numpy, so it can be copied next to the ONNX file (the export tool does)
and used with ONNX Runtime or OpenVINO alone. In C++, the compiled op does the same::

    // link rotated_det/_C.so (tools/deploy/CMakeLists.txt) and libtorch
    auto nms = c10::Dispatcher::singleton()
                   .findSchemaOrThrow("rotated_det::batched_nms_rotated", "")
                   .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                     double)>();
    at::Tensor keep = nms.call(boxes, scores, classes, iou_threshold);  // int64, best first
    keep = keep.slice(0, 0, max_detections);

IoUs are computed in float64 (the compiled op uses float32 for float32 boxes), so a pair whose
IoU lies within about 1e-6 of the threshold may be decided differently.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "METADATA_KEYS",
    "box_iou_rotated_pairs",
    "batched_nms_rotated",
    "postprocess",
]

# Keys of the ONNX file's metadata_props that the post-processor reads.
METADATA_KEYS = {
    "iou_threshold": "rotated_det.final_nms_iou_threshold",
    "max_detections": "rotated_det.max_detections",
}


def _frames(boxes: np.ndarray) -> tuple[np.ndarray, ...]:
    """cx, cy, half sides, cos, sin, area and validity of ``[N, 5]`` boxes (float64)."""
    b = np.asarray(boxes, dtype=np.float64)
    cx, cy, w, h, a = b[:, 0], b[:, 1], b[:, 2], b[:, 3], b[:, 4]
    valid = np.isfinite(b).all(axis=1) & (w > 0) & (h > 0)
    rad = np.deg2rad(np.where(valid, a, 0.0))
    return cx, cy, w / 2, h / 2, np.cos(rad), np.sin(rad), w * h, valid


def box_iou_rotated_pairs(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """Rotated IoU of corresponding rows: ``iou[i]`` of ``boxes1[i]`` and ``boxes2[i]``.

    Args:
        boxes1, boxes2: ``[P, 5]`` (cx, cy, w, h, angle in degrees), pixels.

    Returns:
        float64 ``[P]``; 0 for a pair with an invalid box (non-finite value, side <= 0).

    The intersection polygon's vertices are the corners of each box inside the other and the
    crossings of their edges, ordered by angle around their mean; its area is the shoelace sum.
    Coordinates are taken relative to the second box's centre and axes.
    """
    ax, ay, ahw, ahh, ac, as_, aarea, avalid = _frames(boxes1)
    bx, by, bhw, bhh, bc, bs, barea, bvalid = _frames(boxes2)
    # a's centre and axes in b's frame (b's w-axis (cos, -sin), h-axis (sin, cos)).
    dx, dy = ax - bx, ay - by
    px, py = dx * bc - dy * bs, dx * bs + dy * bc
    cr, sr = ac * bc + as_ * bs, as_ * bc - ac * bs
    ux, uy, vx, vy = ahw * cr, -ahw * sr, ahh * sr, ahh * cr
    sx = np.array([1.0, -1.0, -1.0, 1.0])  # corner k = centre + sx[k] * u + sy[k] * v
    sy = np.array([1.0, 1.0, -1.0, -1.0])
    a_pts = np.stack(
        [
            px[:, None] + sx * ux[:, None] + sy * vx[:, None],
            py[:, None] + sx * uy[:, None] + sy * vy[:, None],
        ],
        axis=-1,
    )  # [P, 4, 2]
    b_pts = np.stack([sx * bhw[:, None], sy * bhh[:, None]], axis=-1)
    tol = 1e-9 * (1.0 + np.abs(b_pts).max(axis=(1, 2)) + np.abs(a_pts).max(axis=(1, 2)))
    # corners of a inside b
    a_in = (np.abs(a_pts[..., 0]) <= bhw[:, None] + tol[:, None]) & (
        np.abs(a_pts[..., 1]) <= bhh[:, None] + tol[:, None]
    )
    # corners of b inside a: coordinates along a's axes
    rx, ry = b_pts[..., 0] - px[:, None], b_pts[..., 1] - py[:, None]
    along_u = rx * cr[:, None] - ry * sr[:, None]
    along_v = rx * sr[:, None] + ry * cr[:, None]
    b_in = (np.abs(along_u) <= ahw[:, None] + tol[:, None]) & (
        np.abs(along_v) <= ahh[:, None] + tol[:, None]
    )
    # edge crossings: edge i of a (p -> p + r) with edge j of b (q -> q + s)
    p = a_pts[:, :, None, :]
    r = np.roll(a_pts, -1, axis=1)[:, :, None, :] - p
    q = b_pts[:, None, :, :]
    s = np.roll(b_pts, -1, axis=1)[:, None, :, :] - q
    denom = r[..., 0] * s[..., 1] - r[..., 1] * s[..., 0]
    qp = q - p
    safe = np.where(np.abs(denom) > 1e-12, denom, 1.0)
    t = (qp[..., 0] * s[..., 1] - qp[..., 1] * s[..., 0]) / safe
    u = (qp[..., 0] * r[..., 1] - qp[..., 1] * r[..., 0]) / safe
    cross_ok = (np.abs(denom) > 1e-12) & (t >= 0) & (t <= 1) & (u >= 0) & (u <= 1)
    cross = (p + t[..., None] * r).reshape(-1, 16, 2)
    pts = np.concatenate([a_pts, b_pts, cross], axis=1)  # [P, 24, 2]
    ok = np.concatenate([a_in, b_in, cross_ok.reshape(-1, 16)], axis=1)
    n = ok.sum(axis=1)
    centre = (pts * ok[..., None]).sum(axis=1) / np.maximum(n, 1)[:, None]
    ang = np.arctan2(pts[..., 1] - centre[:, None, 1], pts[..., 0] - centre[:, None, 0])
    ang = np.where(ok, ang, np.inf)
    order = np.argsort(ang, axis=1, kind="stable")
    pts = np.take_along_axis(pts, order[..., None], axis=1)
    ok = np.take_along_axis(ok, order, axis=1)
    # unused slots repeat the first vertex: their edges have no area
    pts = np.where(ok[..., None], pts, pts[:, :1, :])
    nxt = np.roll(pts, -1, axis=1)
    inter = 0.5 * np.abs((pts[..., 0] * nxt[..., 1] - pts[..., 1] * nxt[..., 0]).sum(axis=1))
    inter = np.where((n >= 3) & avalid & bvalid, inter, 0.0)
    inter = np.minimum(inter, np.minimum(aarea, barea))
    union = np.where(avalid & bvalid, aarea + barea - inter, 0.0)
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def batched_nms_rotated(
    boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float
) -> np.ndarray:
    """Greedy rotated NMS per class.

    Args:
        boxes: ``[N, 5]`` (cx, cy, w, h, angle in degrees), pixels.
        scores: ``[N]``.
        classes: ``[N]`` integer class of each box.
        iou_threshold: in [0, 1].

    Returns:
        int64 ``[K]`` indices of the kept boxes by decreasing score (ties: lower index first;
        NaN scores last). Boxes with a non-finite value or a side <= 0 overlap nothing.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
    scores = np.asarray(scores).reshape(-1)
    classes = np.asarray(classes).reshape(-1)
    if not (len(boxes) == len(scores) == len(classes)):
        raise ValueError(
            f"boxes {boxes.shape}, scores {scores.shape} and classes {classes.shape} must have "
            "the same number of rows"
        )
    if not 0.0 <= float(iou_threshold) <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    order = np.argsort(-scores.astype(np.float64), kind="stable")
    keep = np.zeros(len(boxes), dtype=bool)
    radius = np.hypot(boxes[:, 2], boxes[:, 3]) / 2
    for cls in np.unique(classes):
        idx = order[classes[order] == cls]  # this class, best first
        alive = np.ones(len(idx), dtype=bool)
        for i in range(len(idx)):
            if not alive[i]:
                continue
            keep[idx[i]] = True
            rest = np.nonzero(alive[i + 1 :])[0] + i + 1
            if len(rest) == 0:
                break
            j = idx[rest]
            # boxes whose bounding circles are apart cannot overlap
            d2 = (boxes[j, 0] - boxes[idx[i], 0]) ** 2 + (boxes[j, 1] - boxes[idx[i], 1]) ** 2
            near = d2 <= (radius[j] + radius[idx[i]]) ** 2
            if not near.any():
                continue
            cand = rest[near]
            iou = box_iou_rotated_pairs(
                np.repeat(boxes[idx[i]][None], len(cand), 0), boxes[idx[cand]]
            )
            alive[cand[iou > iou_threshold]] = False
    return order[keep[order]].astype(np.int64)


def postprocess(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    iou_threshold: float,
    max_detections: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detections from an exported detector's pre-NMS outputs.

    Args:
        boxes: float ``[M, 5]`` candidates (cx, cy, w, h, angle in degrees), input pixels.
        scores: float ``[M]``.
        classes: int ``[M]``.
        iou_threshold: the final NMS's rotated-IoU threshold (metadata
            ``rotated_det.final_nms_iou_threshold``).
        max_detections: detections kept (metadata ``rotated_det.max_detections``; < 0: all).

    Returns:
        ``boxes`` float32 ``[N, 5]``, ``scores`` float32 ``[N]``, ``classes`` int64 ``[N]``,
        by decreasing score: what the PyTorch model returns.
    """
    keep = batched_nms_rotated(boxes, scores, classes, iou_threshold)
    if max_detections >= 0:
        keep = keep[:max_detections]
    return (
        np.asarray(boxes, dtype=np.float32).reshape(-1, 5)[keep],
        np.asarray(scores, dtype=np.float32).reshape(-1)[keep],
        np.asarray(classes).reshape(-1)[keep].astype(np.int64),
    )

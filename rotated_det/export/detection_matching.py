"""Comparing two sets of rotated detections in any order (numpy, no torch).

:func:`rotated_det.export.compare_detections` wants the same rows in the same order, which is
right for a TorchScript or torch.export program that runs PyTorch's own kernels. Another runtime
(ONNX Runtime, OpenVINO) differs by ~1e-6, which may swap two near-equal scores in the order, or
write a near-square box as (h, w, angle + 90) instead of (w, h, angle); :func:`match_detections`
accepts both and still asks for one counterpart per row.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BOX_RTOL", "SCORE_ATOL", "box_corners", "match_detections"]

# Default tolerances: corners within BOX_RTOL * max(1, |coordinate|) pixels, scores within
# SCORE_ATOL (the tolerances of compare_detections).
BOX_RTOL = 1e-3
SCORE_ATOL = 1e-4

Detections = tuple[np.ndarray, np.ndarray, np.ndarray]


def box_corners(boxes: np.ndarray) -> np.ndarray:
    """``[N, 4, 2]`` corners of ``[N, 5]`` rotated boxes (cx, cy, w, h, angle in degrees CCW):
    centre +- w/2 (cos a, -sin a) +- h/2 (sin a, cos a), float64."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
    rad = np.deg2rad(b[:, 4])
    u = np.stack([np.cos(rad), -np.sin(rad)], -1) * b[:, 2:3] / 2
    v = np.stack([np.sin(rad), np.cos(rad)], -1) * b[:, 3:4] / 2
    return b[:, None, :2] + np.stack([u + v, -u + v, -u - v, u - v], axis=1)


def _corner_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For corners ``a`` ``[4, 2]`` and ``b`` ``[M, 4, 2]``: per ``b``, the largest distance from a
    corner of ``a`` to the nearest corner of ``b`` (0 for the same rectangle in any form)."""
    d = np.linalg.norm(a[None, :, None, :] - b[:, None, :, :], axis=-1)  # [M, 4, 4]
    return d.min(axis=2).max(axis=1)


def match_detections(
    actual: Detections,
    expected: Detections,
    box_rtol: float = BOX_RTOL,
    score_atol: float = SCORE_ATOL,
) -> str | None:
    """None if ``actual`` and ``expected`` (each ``boxes [N, 5]``, ``scores [N]``,
    ``classes [N]``, any order) agree one to one, else what differs.

    Rows agree when their classes are equal, their scores within ``score_atol`` and each corner
    of one box within ``box_rtol * max(1, largest |coordinate| of the expected box)`` pixels of
    a corner of the other. Rows of ``actual`` are matched by decreasing score, each to the
    nearest unmatched row of ``expected`` that qualifies.
    """
    ab, as_, ac = (np.asarray(x) for x in actual)
    eb, es, ec = (np.asarray(x) for x in expected)
    ab, eb = ab.reshape(-1, 5), eb.reshape(-1, 5)
    if not (len(ab) == len(as_) == len(ac)) or not (len(eb) == len(es) == len(ec)):
        raise ValueError("boxes, scores and classes must have the same number of rows")
    if len(ab) != len(eb):
        return f"{len(ab)} detections vs {len(eb)} expected"
    acorn, ecorn = box_corners(ab), box_corners(eb)
    tol = box_rtol * np.maximum(1.0, np.abs(ecorn).max(axis=(1, 2), initial=0.0))
    used = np.zeros(len(eb), dtype=bool)
    for i in np.argsort(-as_.astype(np.float64), kind="stable"):
        cand = np.nonzero(~used & (ec == ac[i]) & (np.abs(es - as_[i]) <= score_atol))[0]
        row = f"row {i} (class {ac[i]}, score {as_[i]:.6g}, box {np.round(ab[i], 3).tolist()})"
        if len(cand) == 0:
            return f"{row} has no counterpart of its class with a score within {score_atol}"
        dist = _corner_distance(acorn[i], ecorn[cand])
        j = int(np.argmin(dist / tol[cand]))
        if dist[j] > tol[cand[j]]:
            return (
                f"{row}: the nearest counterpart {np.round(eb[cand[j]], 3).tolist()} has a "
                f"corner {dist[j]:.3g} px away (tolerance {tol[cand[j]]:.3g})"
            )
        used[cand[j]] = True
    return None

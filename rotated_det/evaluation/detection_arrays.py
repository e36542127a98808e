"""A dataset's detections and ground truth as flat arrays, one row per box with the index of its
image: what :func:`~rotated_det.evaluation.rotated_map.rotated_voc_map`, the confusion matrix and
the error analysis take. :func:`flatten_per_image` builds them from the per-image form that the
evaluators keep (and save)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch

if TYPE_CHECKING:  # dota_evaluation imports rotated_map, which imports this module
    from rotated_det.evaluation.dota_evaluation import RotatedGroundTruth

__all__ = ["DetectionArrays", "as_detection_arrays", "flatten_per_image"]


class DetectionArrays(NamedTuple):
    """Checked numpy arrays of a whole dataset.

    Attributes:
        det_image_ids: int64 [D], non-negative id of each detection's image (ids given as
            negative integers are renumbered ``0 .. I-1`` in increasing order).
        det_boxes: float64 [D, 5] (cx, cy, w, h, angle in degrees), pixels.
        det_scores: float64 [D].
        det_labels: int64 [D] in ``[0, num_classes)``.
        gt_image_ids: int64 [G], same index space as ``det_image_ids``.
        gt_boxes: float64 [G, 5].
        gt_labels: int64 [G].
        gt_difficult: bool [G].
        num_classes: C.
    """

    det_image_ids: np.ndarray
    det_boxes: np.ndarray
    det_scores: np.ndarray
    det_labels: np.ndarray
    gt_image_ids: np.ndarray
    gt_boxes: np.ndarray
    gt_labels: np.ndarray
    gt_difficult: np.ndarray
    num_classes: int


def _np(x: Any, dtype: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def as_detection_arrays(
    det_image_ids: Any,
    det_boxes: Any,
    det_scores: Any,
    det_labels: Any,
    gt_image_ids: Any,
    gt_boxes: Any,
    gt_labels: Any,
    gt_difficult: Any = None,
    *,
    num_classes: int | None,
    caller: str = "as_detection_arrays",
    box_dim: int = 5,
) -> DetectionArrays:
    """Convert (numpy, torch or lists) and check a dataset's detections and ground truth: the
    arguments of :func:`~rotated_det.evaluation.rotated_map.rotated_voc_map`,
    :func:`~rotated_det.evaluation.confusion_matrix.rotated_confusion_matrix` and
    :func:`~rotated_det.evaluation.error_analysis.tide_errors`.

    Args:
        det_image_ids: int [D], the image of each detection (any integers; equal = same image).
        det_boxes: float [D, 5] (cx, cy, w, h, angle in degrees), pixels; [D, box_dim] for
            boxes of another kind.
        det_scores: float [D].
        det_labels: int [D] class index in ``[0, num_classes)``.
        gt_image_ids: int [G], same id space as ``det_image_ids``.
        gt_boxes: float [G, 5] (or [G, box_dim]).
        gt_labels: int [G].
        gt_difficult: bool [G] or None (no difficult GT).
        num_classes: number of classes C; None: ``1 + max label``.
        caller: the name the errors start with.
        box_dim: numbers per box (5 for rotated boxes, e.g. 8 for polygons).

    Raises:
        ValueError naming ``caller`` and the argument: rows that disagree in number, labels
        outside ``[0, num_classes)``, non-finite scores or boxes.
    """
    det_ids = _np(det_image_ids, np.int64).reshape(-1)
    dboxes = _np(det_boxes, np.float64).reshape(-1, box_dim)
    scores = _np(det_scores, np.float64).reshape(-1)
    dlabels = _np(det_labels, np.int64).reshape(-1)
    gt_ids = _np(gt_image_ids, np.int64).reshape(-1)
    gboxes = _np(gt_boxes, np.float64).reshape(-1, box_dim)
    glabels = _np(gt_labels, np.int64).reshape(-1)
    ng = len(glabels)
    diff = np.zeros(ng, bool) if gt_difficult is None else _np(gt_difficult, bool).reshape(-1)
    nd = len(scores)
    for name, arr, n in (
        ("det_image_ids", det_ids, nd),
        ("det_boxes", dboxes, nd),
        ("det_labels", dlabels, nd),
        ("gt_image_ids", gt_ids, ng),
        ("gt_boxes", gboxes, ng),
        ("gt_difficult", diff, ng),
    ):
        if len(arr) != n:
            raise ValueError(f"{caller}: {name} has {len(arr)} rows, expected {n}")
    if num_classes is None:
        num_classes = int(max(dlabels.max(initial=-1), glabels.max(initial=-1))) + 1
    for name, labels in (("det_labels", dlabels), ("gt_labels", glabels)):
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"{caller}: {name} must lie in [0, {num_classes}), "
                f"got [{labels.min()}, {labels.max()}]"
            )
    for name, arr in (("det_scores", scores), ("det_boxes", dboxes), ("gt_boxes", gboxes)):
        if not np.isfinite(arr).all():
            raise ValueError(f"{caller}: {name} contains NaN or inf")
    ids = np.concatenate([det_ids, gt_ids])
    if len(ids) and ids.min() < 0:  # any integers; non-negative ones are kept as they are
        ids = np.unique(ids, return_inverse=True)[1].reshape(-1).astype(np.int64)
    return DetectionArrays(
        ids[:nd], dboxes, scores, dlabels, ids[nd:], gboxes, glabels, diff, int(num_classes)
    )


def _per_image_detections(value: Any, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if isinstance(value, Mapping):
        try:
            value = (value["boxes"], value["scores"], value["classes"])
        except KeyError as e:
            raise KeyError(
                f"predictions of image '{key}': missing {e}; expected boxes, scores, classes"
            ) from None
    elif hasattr(value, "boxes"):  # MergedDetections
        value = (value.boxes, value.scores, value.classes)
    boxes, scores, classes = value
    return (
        _np(boxes, np.float64).reshape(-1, 5),
        _np(scores, np.float64).reshape(-1),
        _np(classes, np.int64).reshape(-1),
    )


def flatten_per_image(
    predictions: Mapping[str, Any], gts: Mapping[str, RotatedGroundTruth], num_classes: int
) -> tuple[list[str], DetectionArrays]:
    """Flat arrays of per-image predictions and ground truth.

    Args:
        predictions: image key -> detections, as ``MergedDetections``, a dict with ``boxes``
            [K, 5], ``scores`` [K], ``classes`` [K] (``DOTAEvaluator``'s saved
            ``rotated_predictions.pth``), or a ``(boxes, scores, classes)`` tuple.
        gts: image key -> ground truth. Its keys are the images evaluated (in sorted order); an
            image without predictions has none.
        num_classes: C.

    Returns:
        ``(keys, arrays)``: the sorted image keys, and the arrays whose image index ``i`` is
        ``keys[i]``.

    Raises:
        KeyError: a predicted image is not in ``gts`` (names a few).
    """
    keys = sorted(gts)
    missing = [k for k in predictions if k not in gts]
    if missing:
        raise KeyError(
            f"{len(missing)} predicted image(s) have no ground truth, e.g. {sorted(missing)[:3]}"
        )
    empty = (np.zeros((0, 5)), np.zeros(0), np.zeros(0, np.int64))
    dets = [_per_image_detections(predictions[k], k) if k in predictions else empty for k in keys]
    gt_list = [gts[k] for k in keys]
    arrays = as_detection_arrays(
        np.repeat(np.arange(len(keys)), [len(d[1]) for d in dets]),
        np.concatenate([empty[0], *(d[0] for d in dets)]),
        np.concatenate([empty[1], *(d[1] for d in dets)]),
        np.concatenate([empty[2], *(d[2] for d in dets)]),
        np.repeat(np.arange(len(keys)), [len(g.classes) for g in gt_list]),
        np.concatenate([empty[0], *(g.boxes for g in gt_list)]),
        np.concatenate([empty[2], *(g.classes for g in gt_list)]),
        np.concatenate([np.zeros(0, bool), *(g.difficult for g in gt_list)]),
        num_classes=num_classes,
        caller="flatten_per_image",
    )
    return keys, arrays

"""Helpers shared by the mappers: image reading, annotation transforms, box clipping/filtering."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import torch

from rotated_det.data.polygon_ops import clip_polygons_to_rects, polygon_areas
from rotated_det.structures import (
    BoxMode,
    Instances,
    RotatedBoxes,
    points_to_rbox,
    poly_to_rbox,
    rbox_to_poly,
)

__all__ = [
    "read_image",
    "check_image_size",
    "annotations_to_arrays",
    "clip_rotated_boxes",
    "filter_rotated_boxes",
    "DROP_REASONS",
    "arrays_to_instances",
    "SUPPORTED_IMAGE_FORMATS",
]

logger = logging.getLogger(__name__)

SUPPORTED_IMAGE_FORMATS = ("BGR", "RGB", "L")
_SMALL = 32  # up to this many boxes to clip, clip_rotated_boxes loops over OpenCV calls


def read_image(file_name: str, format: str = "BGR") -> np.ndarray:
    """Read an image as ``H x W x C`` uint8 (``C = 3`` for "BGR"/"RGB", 1 for "L").

    Raises:
        OSError: naming the path, if the file is missing or cannot be decoded.
    """
    if format not in SUPPORTED_IMAGE_FORMATS:
        raise ValueError(f"image format must be one of {SUPPORTED_IMAGE_FORMATS}, got {format!r}")
    flag = cv2.IMREAD_GRAYSCALE if format == "L" else cv2.IMREAD_COLOR
    img = cv2.imread(file_name, flag)
    if img is None:
        import os

        why = "does not exist" if not os.path.exists(file_name) else "cannot be decoded"
        raise OSError(f"Cannot read image {file_name}: the file {why}")
    if format == "RGB":
        img = img[:, :, ::-1]
    elif format == "L":
        img = img[:, :, None]
    return img


def check_image_size(dataset_dict: dict, image: np.ndarray) -> None:
    """Raise if the dict's ``height``/``width`` disagree with the image read from disk."""
    h, w = image.shape[:2]
    exp = (dataset_dict.get("height", h), dataset_dict.get("width", w))
    if exp != (h, w):
        raise ValueError(
            f"Image {dataset_dict.get('file_name', '?')} is {h}x{w} (HxW) but its dataset dict "
            f"says {exp[0]}x{exp[1]}"
        )


def annotations_to_arrays(annos: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``annotations`` of a dataset dict -> ``(boxes [N, 5] float64 XYWHA_ABS, classes [N] int64,
    difficult [N] int64)``. Boxes in other modes (XYXY_ABS, XYWH_ABS) are converted."""
    if not annos:
        return np.zeros((0, 5)), np.zeros(0, np.int64), np.zeros(0, np.int64)
    boxes = np.empty((len(annos), 5), dtype=np.float64)
    for i, a in enumerate(annos):
        mode = a.get("bbox_mode", BoxMode.XYWHA_ABS)
        if mode == BoxMode.XYWHA_ABS:
            boxes[i] = a["bbox"]
        else:
            boxes[i] = BoxMode.convert(list(a["bbox"]), mode, BoxMode.XYWHA_ABS)
    classes = np.fromiter((a["category_id"] for a in annos), dtype=np.int64, count=len(annos))
    diff = np.fromiter((a.get("difficult", 0) for a in annos), dtype=np.int64, count=len(annos))
    return boxes, classes, diff


def clip_rotated_boxes(
    boxes: np.ndarray,
    image_size: tuple,
    min_visible_fraction: float = 0.5,
    tolerance: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Clip boxes that leave an image, drop those mostly outside.

    A box whose corners all lie within ``tolerance`` px of the image is unchanged. Otherwise its
    polygon is clipped to the image; if the visible area is less than ``min_visible_fraction`` of
    the box, it is dropped, else replaced by the minimum-area rectangle of the visible part
    (written in the "le90" angle version by :func:`rotated_det.structures.poly_to_rbox`).

    Args:
        boxes: ``[N, 5]`` XYWHA_ABS.
        image_size: ``(height, width)`` in pixels: two numbers (one image), or two ``[N]`` arrays
            (the image of each box, to check the boxes of a whole dataset at once).
    Returns:
        ``(boxes [M, 5], keep [N] bool, num_clipped)``.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
    h = np.broadcast_to(np.asarray(image_size[0], dtype=np.float64), (len(b),))
    w = np.broadcast_to(np.asarray(image_size[1], dtype=np.float64), (len(b),))
    keep = np.ones(len(b), dtype=bool)
    if len(b) == 0:
        return b, keep, 0
    corners = rbox_to_poly(b).reshape(-1, 4, 2)
    lo, hi = corners.min(axis=1), corners.max(axis=1)
    out = (lo < -tolerance).any(1) | (hi[:, 0] > w + tolerance) | (hi[:, 1] > h + tolerance)
    idx = np.nonzero(out)[0]
    if len(idx) == 0:
        return b, keep, 0
    area = b[idx, 2] * b[idx, 3]
    b = b.copy()
    if len(idx) <= _SMALL:
        # A few boxes (the usual case): OpenCV per box is faster than the vectorised clipping,
        # whose cost is dominated by the fixed overhead of many small numpy calls.
        fix, rects = [], []
        for i, a in zip(idx.tolist(), area.tolist()):
            wi, hi_ = w[i], h[i]
            img_rect = np.array([[0, 0], [wi, 0], [wi, hi_], [0, hi_]], dtype=np.float32)
            inter, poly = cv2.intersectConvexConvex(corners[i].astype(np.float32), img_rect)
            if a <= 0 or poly is None or inter / a < min_visible_fraction:
                keep[i] = False
                continue
            rects.append(cv2.boxPoints(cv2.minAreaRect(poly.reshape(-1, 2))).reshape(8))
            fix.append(i)
        if fix:  # one conversion of all the rectangles' corners
            b[fix] = poly_to_rbox(np.asarray(rects, dtype=np.float64))
        return b[keep], keep, len(fix)
    zeros = np.zeros(len(idx))
    clipped = clip_polygons_to_rects(corners[idx], np.stack([zeros, zeros, w[idx], h[idx]], 1))
    frac = np.where(area > 0, polygon_areas(clipped) / np.maximum(area, 1e-12), 0.0)
    visible = frac >= min_visible_fraction
    keep[idx[~visible]] = False
    fixed = idx[visible]
    if len(fixed):
        b[fixed] = points_to_rbox(clipped[visible])
    return b[keep], keep, len(fixed)


# Codes of filter_rotated_boxes' ``reason`` array: 0 is kept, DROP_REASONS[k - 1] is code k.
DROP_REASONS = ("outside", "degenerate")


def filter_rotated_boxes(
    boxes: np.ndarray,
    image_size: tuple,
    min_box_size: float = 1.0,
    min_visible_fraction: float = 0.5,
    tolerance: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, int]:
    """The ground-truth filter of :class:`~rotated_det.data.DatasetMapper`: clip boxes that leave
    the image (:func:`clip_rotated_boxes`), then drop boxes with a side below ``min_box_size``.

    The mapper applies it to each augmented image; its dataset check applies it to all boxes of a
    dataset at once (``image_size`` as arrays), so both drop the same boxes for the same reasons.

    Args:
        boxes: ``[N, 5]`` XYWHA_ABS.
        image_size: ``(height, width)`` in pixels, numbers or ``[N]`` arrays (see
            :func:`clip_rotated_boxes`).
        min_box_size: pixels; boxes (after clipping) with ``w`` or ``h`` below are dropped.
        min_visible_fraction, tolerance: see :func:`clip_rotated_boxes`.
    Returns:
        ``(boxes [M, 5] kept (clipped where needed), reason [N] int8, num_clipped)``; ``reason``
        is 0 for kept boxes, 1 for boxes mostly outside the image ("outside"), 2 for boxes with
        a side below ``min_box_size`` ("degenerate"; see :data:`DROP_REASONS`).
    """
    b, keep, n_clip = clip_rotated_boxes(boxes, image_size, min_visible_fraction, tolerance)
    big = (b[:, 2] >= min_box_size) & (b[:, 3] >= min_box_size)
    reason = np.where(keep, 0, 1).astype(np.int8)
    reason[np.nonzero(keep)[0][~big]] = 2
    return b[big], reason, n_clip


def arrays_to_instances(
    image_size: tuple[int, int],
    boxes: np.ndarray,
    classes: np.ndarray,
    difficult: np.ndarray | None = None,
) -> Instances:
    """Build ``Instances(gt_boxes=RotatedBoxes, gt_classes=int64 [, gt_difficult])``."""
    inst = Instances(image_size)
    inst.gt_boxes = RotatedBoxes(
        torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 5))
    )
    inst.gt_classes = torch.as_tensor(np.asarray(classes, dtype=np.int64).reshape(-1))
    if difficult is not None:
        inst.gt_difficult = torch.as_tensor(np.asarray(difficult, dtype=np.int64).reshape(-1))
    return inst

"""Ultralytics YOLO-OBB label format, so that existing YOLO-OBB datasets load unchanged.

Layout: ``images/<split>/<stem>.<ext>`` and ``labels/<split>/<stem>.txt``; each label line is
``class_index x1 y1 x2 y2 x3 y3 x4 y4`` with coordinates normalised to [0, 1] by the image width
(x) and height (y). Class names come from the dataset YAML's ``names`` (pass them as
``class_names``, or use :func:`read_yolo_names`).

Like Ultralytics, coordinates may exceed [0, 1] by :data:`COORD_TOLERANCE` (0.01, i.e. 1% of the
image size; such boxes are clipped by the mapper later); a coordinate further out is an error
naming the file and line, which says so when the values look like pixel coordinates. A UTF-8
byte-order mark at the start of a label file is ignored.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence

import numpy as np

from rotated_det.data.catalog import DatasetCatalog, MetadataCatalog
from rotated_det.data.datasets.loading import IMAGE_EXTENSIONS, image_size
from rotated_det.structures import BoxMode, poly_to_rbox

__all__ = [
    "COORD_TOLERANCE",
    "parse_yolo_obb_text",
    "load_yolo_obb_instances",
    "register_yolo_obb_instances",
    "read_yolo_names",
]

logger = logging.getLogger(__name__)

COORD_TOLERANCE = 0.01  # normalised coordinates may lie in [-0.01, 1.01], as in Ultralytics


def _out_of_range(p: list[float], tolerance: float, image_size: tuple[int, int] | None) -> str:
    """The error for normalised coordinates ``p`` (8 floats) outside ``[-tol, 1 + tol]``, with a
    hint when they look like pixel coordinates: none negative, some above 2 and, if the image
    size ``(height, width)`` is known, all within it (5% margin)."""
    lo, hi = min(p), max(p)
    msg = (
        f"coordinates must be normalised to [0, 1] by the image width and height (tolerance "
        f"{tolerance:g}), got values from {lo:g} to {hi:g}"
    )
    looks_like_pixels = lo >= -tolerance and hi > 2.0
    if looks_like_pixels and image_size is not None:
        h, w = image_size
        looks_like_pixels = max(p[0::2]) <= 1.05 * w and max(p[1::2]) <= 1.05 * h
    if looks_like_pixels:
        size = f" of the {image_size[1]}x{image_size[0]} (WxH) image" if image_size else ""
        msg += (
            f"; they look like pixel coordinates{size}: divide x by the image width and y by "
            "its height"
        )
    return msg


def parse_yolo_obb_text(
    text: str,
    num_classes: int,
    path: str = "<string>",
    skip_malformed: bool = False,
    *,
    image_size: tuple[int, int] | None = None,
    tolerance: float = COORD_TOLERANCE,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Parse a YOLO-OBB label file.

    Args:
        text: the file's content (a leading byte-order mark is ignored).
        num_classes: class indices must lie in ``[0, num_classes)``.
        path: the file, for error messages.
        skip_malformed: if False (default) a malformed line (wrong number of values, a bad class
            index, a coordinate outside ``[-tolerance, 1 + tolerance]``) raises ``ValueError``
            naming the file and line; if True it is skipped, logged and counted.
        image_size: ``(height, width)`` of the image in pixels, if known: only makes the error
            for pixel coordinates more precise.
        tolerance: how far (in units of the image size) normalised coordinates may leave [0, 1].
    Returns:
        ``(classes [N] int64, polys [N, 8] float64 normalised, num_malformed)``.
    """
    text = text.removeprefix("\ufeff")
    cls, polys = [], []
    malformed = 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        parts = raw.split()
        if not parts:
            continue
        err = None
        if len(parts) != 9:
            err = f"expected 9 values 'class x1 y1 x2 y2 x3 y3 x4 y4', got {len(parts)}"
        else:
            try:
                c = int(parts[0])
                p = [float(v) for v in parts[1:]]
            except ValueError:
                err = "non-numeric value"
            else:
                if not 0 <= c < num_classes:
                    err = f"class index {c} outside [0, {num_classes})"
                elif not np.isfinite(p).all():
                    err = "non-finite coordinate"
                elif min(p) < -tolerance or max(p) > 1.0 + tolerance:
                    err = _out_of_range(p, tolerance, image_size)
        if err is not None:
            msg = f"{path}:{lineno}: malformed YOLO-OBB label line {raw!r}: {err}"
            if skip_malformed:
                logger.warning(msg + " -- skipped")
                malformed += 1
                continue
            raise ValueError(msg)
        cls.append(c)
        polys.append(p)
    return (
        np.asarray(cls, dtype=np.int64),
        np.asarray(polys, dtype=np.float64).reshape(-1, 8),
        malformed,
    )


def read_yolo_names(yaml_path: str) -> list[str]:
    """Class names from an Ultralytics dataset YAML (``names:`` as a list or an index map)."""
    from omegaconf import OmegaConf

    content = OmegaConf.to_container(OmegaConf.load(yaml_path))
    names = content.get("names") if isinstance(content, dict) else None
    if names is None:
        raise KeyError(f"{yaml_path} has no 'names' entry")
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names, key=int)]
    return [str(n) for n in names]


def load_yolo_obb_instances(
    image_dir: str,
    label_dir: str | None,
    class_names: Sequence[str],
    skip_malformed: bool = False,
    dataset_name: str | None = None,
    coord_tolerance: float = COORD_TOLERANCE,
) -> list[dict]:
    """Load a YOLO-OBB split as standard dataset dicts (format of
    :mod:`rotated_det.data.datasets.dota`; ``poly`` in pixels). Images without a label file
    have no objects (YOLO's convention), counted in the log.

    Args:
        image_dir, label_dir: the split's ``images/<split>`` and ``labels/<split>`` folders
            (``label_dir`` None: no annotations, e.g. a test set).
        class_names: the dataset's classes, indexed by the label files' class indices.
        skip_malformed: skip (log and count) malformed label lines instead of raising.
        dataset_name: name used in log messages.
        coord_tolerance: see :func:`parse_yolo_obb_text` (``tolerance``).
    """
    t0 = time.perf_counter()
    if not os.path.isdir(image_dir):
        raise FileNotFoundError(f"YOLO-OBB image directory {image_dir} does not exist")
    files = sorted(f for f in os.listdir(image_dir) if f.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
        raise FileNotFoundError(f"No images found in {image_dir}")
    dicts, missing, malformed = [], 0, 0
    labels: list[tuple[np.ndarray, np.ndarray]] = []  # (classes, pixel polygons) per image
    for f in files:
        path = os.path.join(image_dir, f)
        h, w = image_size(path)
        stem = os.path.splitext(f)[0]
        dicts.append({"file_name": path, "height": h, "width": w, "image_id": stem})
        if label_dir is None:
            continue
        lpath = os.path.join(label_dir, stem + ".txt")
        if os.path.isfile(lpath):
            with open(lpath, encoding="utf-8-sig") as fh:
                cls, polys, bad = parse_yolo_obb_text(
                    fh.read(),
                    len(class_names),
                    lpath,
                    skip_malformed,
                    image_size=(h, w),
                    tolerance=coord_tolerance,
                )
            malformed += bad
        else:
            missing += 1
            cls, polys = np.zeros(0, np.int64), np.zeros((0, 8))
        labels.append((cls, polys * np.array([w, h] * 4, dtype=np.float64)))
    n_obj = 0
    if label_dir is not None:
        # one polygon -> rotated box conversion for the whole dataset
        all_polys = np.concatenate([p for _, p in labels]) if labels else np.zeros((0, 8))
        all_boxes = poly_to_rbox(all_polys).tolist()
        for rec, (cls, polys) in zip(dicts, labels, strict=True):
            boxes = all_boxes[n_obj : n_obj + len(cls)]
            n_obj += len(cls)
            rec["annotations"] = [
                {
                    "bbox": b,
                    "bbox_mode": BoxMode.XYWHA_ABS,
                    "category_id": c,
                    "difficult": 0,
                    "poly": p,
                }
                for b, c, p in zip(boxes, cls.tolist(), polys.tolist())
            ]
    logger.info(
        f"Loaded {len(dicts)} images and {n_obj} objects in YOLO-OBB format from {image_dir} "
        f"({dataset_name or label_dir}) in {time.perf_counter() - t0:.2f}s"
    )
    if missing:
        logger.info(f"{missing} images in {image_dir} have no label file (no objects).")
    if malformed:
        logger.warning(f"{malformed} malformed label lines skipped in {label_dir}.")
    return dicts


def register_yolo_obb_instances(
    name: str,
    metadata: dict,
    image_dir: str,
    label_dir: str | None,
    class_names: Sequence[str],
    **kwargs,
) -> None:
    """Register a YOLO-OBB split (see :func:`load_yolo_obb_instances`)."""
    class_names = list(class_names)
    DatasetCatalog.register(
        name,
        lambda: load_yolo_obb_instances(
            image_dir, label_dir, class_names, dataset_name=name, **kwargs
        ),
    )
    md = {"thing_classes": class_names, "image_root": image_dir, "evaluator_type": "dota"}
    md.update(metadata or {})
    MetadataCatalog.get(name).set(**md)

"""DOTA (v1.0, v1.5, v2.0) in its native label format (:mod:`rotated_det.structures.dota_format`),
loaded as standard dataset dicts and registered in the catalogs.

Dataset dict produced for each image::

    {"file_name": str, "height": int, "width": int, "image_id": str (file stem),
     "annotations": [                         # absent for test sets without labels
         {"bbox": [cx, cy, w, h, angle_deg],  # BoxMode.XYWHA_ABS (docs/design.md, Conventions)
          "bbox_mode": BoxMode.XYWHA_ABS,
          "category_id": int,                 # 0-based index into class_names
          "difficult": int,                   # 0 or 1
          "poly": [x1, y1, ..., x4, y4]},     # the polygon as written in the label file
         ...]}
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from rotated_det.data.catalog import DatasetCatalog, MetadataCatalog
from rotated_det.data.datasets.loading import IMAGE_EXTENSIONS, gc_paused, image_size, list_images
from rotated_det.data.polygon_ops import clip_polys_to_image
from rotated_det.structures import BoxMode, poly_to_rbox
from rotated_det.structures.dota_format import (
    DOTA_V1_CLASSES,
    parse_dota_label_file,
    parse_dota_label_text,
)

__all__ = ["load_dota_instances", "register_dota_instances"]

logger = logging.getLogger(__name__)


@gc_paused()
def load_dota_instances(
    image_dir: str,
    label_dir: str | None,
    class_names: Sequence[str] = DOTA_V1_CLASSES,
    *,
    image_exts: Sequence[str] = IMAGE_EXTENSIONS,
    skip_malformed: bool = False,
    unknown_classes: str = "error",
    out_of_image: str = "clip",
    min_visible_fraction: float = 0.5,
    clip_tolerance: float = 1.0,
    missing_labels: str = "error",
    dataset_name: str | None = None,
) -> list[dict]:
    """Load a DOTA-format dataset as a list of standard dataset dicts (see module doc).

    Args:
        image_dir: directory of images (``.png``, ``.jpg``, ``.tif``, ...).
        label_dir: directory of label ``.txt`` files (same stem as images), or None for a test
            set without labels (dicts then have no ``"annotations"`` key).
        class_names: categories; ``category_id`` is the index into this list.
        image_exts: image file extensions to list.
        skip_malformed: skip (and count) malformed label lines instead of raising.
        unknown_classes: "error" (default): a category not in ``class_names`` raises an error
            listing the known ones; "skip": such objects are dropped and counted.
        out_of_image: what to do with objects that leave the image by more than
            ``clip_tolerance`` pixels: "clip" (default) replaces the box by the minimum-area
            rectangle of the polygon clipped to the image; "drop" drops them; "keep" keeps them.
            With "clip" and "drop", objects whose visible fraction is below
            ``min_visible_fraction`` are dropped. Every change is counted and logged.
        min_visible_fraction: see ``out_of_image``.
        clip_tolerance: pixels an object may exceed the image before it counts as outside.
        missing_labels: "error" (default) if an image has no label file in ``label_dir``;
            "empty" to treat it as an image without objects (counted and logged).
        dataset_name: name used in log messages.
    """
    if unknown_classes not in ("error", "skip"):
        raise ValueError(f"unknown_classes must be 'error' or 'skip', got {unknown_classes!r}")
    if out_of_image not in ("clip", "drop", "keep"):
        raise ValueError(f"out_of_image must be 'clip', 'drop' or 'keep', got {out_of_image!r}")
    if missing_labels not in ("error", "empty"):
        raise ValueError(f"missing_labels must be 'error' or 'empty', got {missing_labels!r}")
    t0 = time.perf_counter()
    tag = dataset_name or image_dir
    class_to_id = {c: i for i, c in enumerate(class_names)}
    files = list_images(image_dir, image_exts)
    if not files:
        raise FileNotFoundError(
            f"No images with extensions {tuple(image_exts)} found in {image_dir} ({tag})"
        )
    counts = dict(
        malformed=0, unknown=0, outside_clipped=0, outside_dropped=0, outside_kept=0, missing=0
    )

    dicts: list[dict] = []
    all_polys: list[np.ndarray] = []
    for fname in files:
        path = os.path.join(image_dir, fname)
        height, width = image_size(path)
        stem = os.path.splitext(fname)[0]
        rec: dict[str, Any] = {
            "file_name": path,
            "height": height,
            "width": width,
            "image_id": stem,
        }
        if label_dir is None:
            dicts.append(rec)
            continue
        lpath = os.path.join(label_dir, stem + ".txt")
        if not os.path.isfile(lpath):
            if missing_labels == "error":
                raise FileNotFoundError(
                    f"Label file {lpath} for image {path} does not exist (pass "
                    "missing_labels='empty' to treat such images as having no objects)"
                )
            counts["missing"] += 1
            labels = parse_dota_label_text("", lpath)
        else:
            labels = parse_dota_label_file(lpath, skip_malformed=skip_malformed)
        counts["malformed"] += labels.num_malformed
        cat_ids = np.fromiter(
            (class_to_id.get(c, -1) for c in labels.class_names), dtype=np.int64, count=len(labels)
        )
        if (cat_ids < 0).any():
            bad = int(np.nonzero(cat_ids < 0)[0][0])
            if unknown_classes == "error":
                lines = labels.line_numbers
                where = lpath if lines is None else f"{lpath}:{int(lines[bad])}"
                raise KeyError(
                    f"{where}: unknown class "
                    f"'{labels.class_names[bad]}'; known classes are: {', '.join(class_names)}"
                )
            counts["unknown"] += int((cat_ids < 0).sum())
        keep = cat_ids >= 0
        polys, diff = labels.polys[keep], labels.difficult[keep]
        cat_ids = cat_ids[keep]
        rec["_polys"] = polys
        rec["_cats"] = cat_ids
        rec["_diff"] = diff
        all_polys.append(polys)
        dicts.append(rec)

    if label_dir is not None:
        # One vectorised conversion and out-of-image check for the whole dataset.
        polys_all = np.concatenate(all_polys) if all_polys else np.zeros((0, 8))
        boxes_all = poly_to_rbox(polys_all)
        valid_all = np.ones(len(polys_all), dtype=bool)
        if out_of_image != "keep" and len(polys_all):
            sizes = np.repeat(
                np.array([[r["width"], r["height"]] for r in dicts], dtype=np.float64),
                [len(p) for p in all_polys],
                axis=0,
            )
            outside, frac, clipped = clip_polys_to_image(
                polys_all, sizes[:, 0], sizes[:, 1], clip_tolerance
            )
            if out_of_image == "drop":
                valid_all &= ~outside
                counts["outside_dropped"] += int(outside.sum())
            else:
                too_small = outside & (frac < min_visible_fraction)
                valid_all &= ~too_small
                counts["outside_dropped"] += int(too_small.sum())
                fix = outside & ~too_small
                boxes_all[fix] = clipped[fix]
                counts["outside_clipped"] += int(fix.sum())
        start = 0
        for rec in dicts:
            polys, cats, diff = rec.pop("_polys"), rec.pop("_cats"), rec.pop("_diff")
            sl = slice(start, start + len(polys))
            start += len(polys)
            valid = valid_all[sl]
            b_list = boxes_all[sl][valid].tolist()
            p_list = polys[valid].tolist()
            c_list = cats[valid].tolist()
            d_list = diff[valid].tolist()
            rec["annotations"] = [
                {
                    "bbox": b,
                    "bbox_mode": BoxMode.XYWHA_ABS,
                    "category_id": c,
                    "difficult": d,
                    "poly": p,
                }
                for b, c, d, p in zip(b_list, c_list, d_list, p_list)
            ]

    n_obj = sum(len(r.get("annotations", ())) for r in dicts)
    logger.info(
        f"Loaded {len(dicts)} images and {n_obj} objects in DOTA format from {image_dir} "
        f"({tag}) in {time.perf_counter() - t0:.2f}s"
    )
    if label_dir is not None:
        stems = {os.path.splitext(f)[0] for f in files}
        if os.path.isdir(label_dir):
            orphan = [
                f
                for f in os.listdir(label_dir)
                if f.endswith(".txt") and os.path.splitext(f)[0] not in stems
            ]
            if orphan:
                logger.info(f"{len(orphan)} label files in {label_dir} have no image; ignored.")
    for key, msg in (
        ("malformed", "malformed label lines skipped"),
        ("unknown", "objects of unknown classes skipped"),
        ("outside_clipped", "objects partly outside their image clipped to it"),
        (
            "outside_dropped",
            f"objects outside their image (visible < {min_visible_fraction}) dropped"
            if out_of_image == "clip"
            else "objects outside their image dropped",
        ),
        ("missing", "images without a label file treated as empty"),
    ):
        if counts[key]:
            level = logging.INFO if key == "outside_clipped" else logging.WARNING
            logger.log(level, f"{tag}: {counts[key]} {msg}.")
    return dicts


def register_dota_instances(
    name: str,
    metadata: dict,
    image_dir: str,
    label_dir: str | None,
    class_names: Sequence[str] = DOTA_V1_CLASSES,
    **kwargs,
) -> None:
    """Register a DOTA-format dataset in :class:`DatasetCatalog` and :class:`MetadataCatalog`.

    Args:
        name: dataset name, e.g. ``"dota_v1_trainval"``.
        metadata: extra metadata (``thing_colors``, ...); ``thing_classes``, ``image_root``,
            ``label_root`` and ``evaluator_type="dota"`` are filled in unless given.
        image_dir, label_dir, class_names, kwargs: passed to :func:`load_dota_instances`.
    """
    class_names = tuple(class_names)
    DatasetCatalog.register(
        name,
        lambda: load_dota_instances(image_dir, label_dir, class_names, dataset_name=name, **kwargs),
    )
    md = {
        "thing_classes": list(class_names),
        "image_root": image_dir,
        "label_root": label_dir,
        "evaluator_type": "dota",
    }
    md.update(metadata or {})
    MetadataCatalog.get(name).set(**md)

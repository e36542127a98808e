"""Rotated boxes in COCO-style JSON, as standard dataset dicts (and back).

People carry rotated annotations in COCO files in two ways; both load, also mixed in one file:

(a) ``segmentation`` holds the object's 4-point polygon (8 numbers, pixels, any point order),
    as ``[[x1, y1, ..., x4, y4]]`` or flat ``[x1, y1, ..., x4, y4]``. The rotated box is the
    polygon's minimum-area rectangle (:func:`rotated_det.structures.poly_to_rbox`, angle version
    "le90": ``w >= h``, angle in [-90, 90)), as for DOTA labels.
(b) ``bbox`` holds 5 numbers ``(cx, cy, w, h, angle)``: Detectron2's rotated COCO convention,
    which is also ours (``BoxMode.XYWHA_ABS``): centre and size in pixels, ``angle`` in DEGREES,
    counter-clockwise positive as seen on screen (image y axis down). The box is kept exactly as
    written (no angle normalisation). Example: ``[50, 50, 20, 6, 90]`` is a box 20 px long whose
    long side is vertical, covering x in [47, 53] and y in [40, 60].

A plain COCO ``bbox`` of 4 numbers ``(x, y, w, h)`` (axis-aligned, top-left corner and size) loads
as an angle-0 box ``(x + w/2, y + h/2, w, h, 0)``. Which field gives the box (``box_source``):

- ``"auto"`` (default): a 5-number ``bbox``; else a 4-point ``segmentation``; else a 4-number
  ``bbox``.
- ``"segmentation"``: the 4-point polygon where there is one, else the ``bbox`` (use it when the
  5-number boxes of a file follow another angle convention than Detectron2's).
- ``"bbox"``: always the ``bbox``.

``bbox_mode`` fixes how ``bbox`` is read when its length is ambiguous: None (default) means
5 numbers -> ``XYWHA_ABS`` and 4 numbers -> ``XYWH_ABS`` (COCO); ``BoxMode.XYXY_ABS`` reads
4-number boxes as corners ``(x0, y0, x1, y1)``; a given mode requires every ``bbox`` to have its
length. A ``segmentation`` that is not a single 4-point polygon (RLE, several polygons, a polygon
of another number of points) is not used for the box; the ``bbox`` is used instead (counted in the
log). ``poly`` in the dataset dict is the annotation's 4-point polygon as written, or the box's
corners (:func:`rotated_det.structures.rbox_to_poly`) when it has none.

``difficult`` is 1 when any of the annotation's optional ``difficult``, ``ignore`` or
``iscrowd`` fields is true (0/1 or a bool), else 0: crowd and ignored regions are what difficult
objects are in DOTA's evaluation (neither a hit nor a miss).

Categories: ``category_id`` in the dicts is contiguous and 0-based, in the order of the JSON
category ids (as Detectron2); ``thing_classes`` (names in that order) and
``thing_dataset_id_to_contiguous_id`` (JSON id -> contiguous id) go into the dataset's metadata.

Images keep the JSON order and ``image_id`` is the JSON image ``id`` (int or str);
``file_name`` is joined to ``image_root`` (an absolute ``file_name`` stays as it is). ``height``
and ``width`` are read from the image file when the JSON lacks them. Images without annotations
are kept (with an empty ``annotations`` list, counted in the log); a JSON without an
``annotations`` key (a test set) gives dicts without ``annotations``, as DOTA test sets do.

:func:`convert_to_coco_rotated_json` writes dataset dicts as such a file with both (a) and (b)
(``bbox`` 5 numbers, ``segmentation`` the 4-point polygon), ``difficult`` and ``iscrowd`` (= the
``difficult`` flag, so that COCO tools ignore difficult objects), ``area`` (``w * h``); loading
it back gives the same dicts.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from rotated_det.data.catalog import DatasetCatalog, MetadataCatalog
from rotated_det.data.datasets.coco_labels import parse_numbers, read_categories, read_difficult
from rotated_det.data.datasets.loading import gc_paused, image_size
from rotated_det.structures import BoxMode, poly_to_rbox, rbox_to_poly
from rotated_det.utils.file_io import PathManager

__all__ = [
    "load_coco_rotated_json",
    "register_coco_rotated_instances",
    "convert_to_coco_rotated_dict",
    "convert_to_coco_rotated_json",
]

logger = logging.getLogger(__name__)

_BOX_SOURCES = ("auto", "bbox", "segmentation")
_BBOX_MODES = (BoxMode.XYWHA_ABS, BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)


def _read_polygon(seg, where: str) -> tuple[list[float] | None, str | None]:
    """``(polygon of 8 floats or None, why not a 4-point polygon or None)``.

    Missing, RLE, multi-polygon and k-point (k != 4) segmentations give no polygon with a reason;
    a polygon with non-numeric or non-finite values, or an odd count, is an error.
    """
    if seg is None or (isinstance(seg, (list, tuple)) and len(seg) == 0):
        return None, None
    if isinstance(seg, dict):
        return None, "RLE"
    if not isinstance(seg, (list, tuple)):
        raise ValueError(
            f"{where}: malformed 'segmentation' {seg!r}: expected [[x1, y1, ..., x4, y4]]"
        )
    if all(isinstance(p, (list, tuple)) for p in seg):
        if len(seg) != 1:
            for p in seg:
                parse_numbers(p, where, "segmentation")
            return None, f"{len(seg)} polygons"
        seg = seg[0]
    pts = parse_numbers(seg, where, "segmentation")
    if len(pts) % 2 or len(pts) < 6:
        raise ValueError(
            f"{where}: malformed 'segmentation': a polygon of {len(pts)} numbers; expected "
            "x1, y1, ..., x4, y4 (8 numbers)"
        )
    if len(pts) != 8:
        return None, f"a {len(pts) // 2}-point polygon"
    return pts, None


def _read_bbox(bbox, bbox_mode: BoxMode | None, where: str) -> tuple[list[float], BoxMode] | None:
    """``(numbers, mode)`` of an annotation's ``bbox``, None when absent."""
    if bbox is None or (isinstance(bbox, (list, tuple)) and len(bbox) == 0):
        return None
    vals = parse_numbers(bbox, where, "bbox")
    if bbox_mode is None:
        mode = {5: BoxMode.XYWHA_ABS, 4: BoxMode.XYWH_ABS}.get(len(vals))
        if mode is None:
            raise ValueError(
                f"{where}: malformed 'bbox' {bbox!r}: expected 5 numbers (cx, cy, w, h, angle) "
                "or 4 (x, y, w, h)"
            )
    else:
        mode = bbox_mode
        n = 5 if mode == BoxMode.XYWHA_ABS else 4
        if len(vals) != n:
            raise ValueError(
                f"{where}: malformed 'bbox' {bbox!r}: expected {n} numbers for bbox_mode "
                f"{mode.name}"
            )
    if mode == BoxMode.XYXY_ABS:
        negative = vals[2] < vals[0] or vals[3] < vals[1]
    else:
        negative = vals[2] < 0 or vals[3] < 0
    if negative:
        raise ValueError(f"{where}: malformed 'bbox' {bbox!r}: negative width or height")
    return vals, mode


def load_coco_rotated_json(
    json_file: str,
    image_root: str,
    dataset_name: str | None = None,
    *,
    bbox_mode: BoxMode | int | None = None,
    box_source: str = "auto",
    extra_annotation_keys: Sequence[str] | None = None,
) -> list[dict]:
    """Load a COCO-style JSON file of rotated boxes as standard dataset dicts (module doc).

    Each dict: ``file_name``, ``height``, ``width``, ``image_id`` (the JSON image id),
    ``annotations``: list of ``{"bbox": [cx, cy, w, h, angle_deg], "bbox_mode":
    BoxMode.XYWHA_ABS, "category_id": int (0-based), "difficult": 0/1, "poly": [8 floats]}``.

    Args:
        json_file: the COCO-style JSON file (any path PathManager can open).
        image_root: directory that the images' ``file_name`` are relative to.
        dataset_name: if given, ``thing_classes`` and ``thing_dataset_id_to_contiguous_id`` are
            set in ``MetadataCatalog.get(dataset_name)``; also used in log messages.
        bbox_mode: how to read ``bbox``: None (by its length: 5 -> XYWHA_ABS, 4 -> XYWH_ABS),
            or ``BoxMode.XYWHA_ABS``, ``BoxMode.XYWH_ABS``, ``BoxMode.XYXY_ABS``.
        box_source: "auto", "segmentation" or "bbox": which field gives the box (module doc).
        extra_annotation_keys: annotation fields copied into the dicts as they are (e.g.
            ``["id", "area"]``).

    Raises:
        ValueError / KeyError naming the file and the image or annotation id: malformed JSON,
        ``bbox`` or ``segmentation``; an annotation without a usable box; an unknown category or
        image id; an image entry without ``file_name`` or ``id``.
    """
    if box_source not in _BOX_SOURCES:
        raise ValueError(f"box_source must be one of {_BOX_SOURCES}, got {box_source!r}")
    if bbox_mode is not None:
        bbox_mode = BoxMode(bbox_mode)
        if bbox_mode not in _BBOX_MODES:
            raise ValueError(
                f"bbox_mode must be None or one of {[m.name for m in _BBOX_MODES]}, "
                f"got {bbox_mode.name}"
            )
    with gc_paused():
        return _load(
            json_file,
            image_root,
            dataset_name,
            bbox_mode,
            box_source,
            tuple(extra_annotation_keys or ()),
        )


def _load(json_file, image_root, dataset_name, bbox_mode, box_source, extra_keys) -> list[dict]:
    t0 = time.perf_counter()
    try:
        # bytes: json detects UTF-8/16/32 and accepts a UTF-8 byte-order mark (Windows editors)
        with PathManager.open(json_file, "rb") as f:
            data = json.loads(f.read())
    except json.JSONDecodeError as e:
        raise ValueError(f"{json_file}: not valid JSON: {e}") from e
    except OSError as e:
        raise OSError(f"Cannot read COCO JSON file {json_file}: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError(f"{json_file}: expected a COCO JSON object with an 'images' list")
    has_anns = "annotations" in data
    anns = data.get("annotations") or []
    if not isinstance(anns, list):
        raise ValueError(f"{json_file}: 'annotations' must be a list")
    if "categories" in data:
        cat_ids, class_names = read_categories(data["categories"], json_file)
    elif anns:
        raise ValueError(f"{json_file}: has annotations but no 'categories'")
    else:
        cat_ids, class_names = [], []
    id_map = {cid: i for i, cid in enumerate(cat_ids)}
    if dataset_name is not None and "categories" in data:
        MetadataCatalog.get(dataset_name).set(
            thing_classes=class_names, thing_dataset_id_to_contiguous_id=id_map
        )

    dicts: list[dict] = []
    index_of: dict = {}
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or "id" not in img:
            raise ValueError(f"{json_file}: image entry #{i} has no 'id'")
        img_id = img["id"]
        if not isinstance(img_id, (int, str)) or isinstance(img_id, bool):
            raise ValueError(f"{json_file}: image entry #{i} has id {img_id!r}: not an int or str")
        if img_id in index_of:
            raise ValueError(f"{json_file}: image id {img_id!r} appears twice")
        fname = img.get("file_name")
        if not isinstance(fname, str) or not fname:
            raise ValueError(f"{json_file}: image id {img_id!r} has no 'file_name'")
        path = os.path.join(image_root, fname)
        h, w = img.get("height"), img.get("width")
        if h is None or w is None:
            h, w = image_size(path)
        elif not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (h, w)):
            raise ValueError(
                f"{json_file}: image id {img_id!r} has height {h!r}, width {w!r}; "
                "expected positive integers"
            )
        rec = {"file_name": path, "height": h, "width": w, "image_id": img_id}
        if has_anns:
            rec["annotations"] = []
        index_of[img_id] = len(dicts)
        dicts.append(rec)

    # Boxes from polygons, 4-number boxes and the corners of boxes without a polygon are
    # converted once for the whole file.
    from_poly: tuple[list, list] = ([], [])  # (annotation dicts, polygons)
    from_hbox: dict[BoxMode, tuple[list, list]] = {}  # mode -> (annotation dicts, boxes)
    need_poly: list[dict] = []
    seg_unused: dict[str, int] = {}
    for k, ann in enumerate(anns):
        if not isinstance(ann, dict):
            raise ValueError(f"{json_file}: annotation #{k} is not an object")
        where = (
            f"{json_file}: annotation id {ann['id']!r}"
            if "id" in ann
            else f"{json_file}: annotation #{k} (no id)"
        )
        img_id = ann.get("image_id")
        if not isinstance(img_id, (int, str)) or img_id not in index_of:
            raise KeyError(f"{where}: image_id {img_id!r} is not in 'images'")
        cat = ann.get("category_id")
        if not isinstance(cat, int) or isinstance(cat, bool) or cat not in id_map:
            known = ", ".join(f"{i} ({n})" for i, n in zip(cat_ids, class_names))
            raise KeyError(
                f"{where}: unknown category_id {cat!r}; the file's categories are: {known}"
            )
        poly, why_not = _read_polygon(ann.get("segmentation"), where)
        box = _read_bbox(ann.get("bbox"), bbox_mode, where)
        rec = {
            "bbox": None,
            "bbox_mode": BoxMode.XYWHA_ABS,
            "category_id": id_map[cat],
            "difficult": read_difficult(ann, where),
            "poly": poly,
        }
        for key in extra_keys:
            if key in ann:
                rec[key] = ann[key]
        use_poly = poly is not None and (
            box_source == "segmentation"
            or (box_source == "auto" and (box is None or box[1] != BoxMode.XYWHA_ABS))
        )
        if use_poly:
            from_poly[0].append(rec)
            from_poly[1].append(poly)
        elif box is not None:
            vals, mode = box
            if mode == BoxMode.XYWHA_ABS:
                rec["bbox"] = vals
            else:
                from_hbox.setdefault(mode, ([], []))
                from_hbox[mode][0].append(rec)
                from_hbox[mode][1].append(vals)
            if poly is None:
                need_poly.append(rec)
            if why_not is not None:
                seg_unused[why_not] = seg_unused.get(why_not, 0) + 1
        else:
            got = f" (its segmentation is {why_not})" if why_not else ""
            raise ValueError(
                f"{where}: no usable box{got}: expected 'bbox' with 5 numbers (cx, cy, w, h, "
                "angle) or 4 (x, y, w, h), or 'segmentation' with a 4-point polygon "
                f"[[x1, y1, ..., x4, y4]]{'' if box_source != 'bbox' else ' (box_source=bbox)'}"
            )
        dicts[index_of[img_id]]["annotations"].append(rec)

    if from_poly[0]:
        boxes = poly_to_rbox(np.asarray(from_poly[1], dtype=np.float64)).tolist()
        for rec, b in zip(from_poly[0], boxes):
            rec["bbox"] = b
    for mode, (recs, vals) in from_hbox.items():
        boxes = BoxMode.convert(np.asarray(vals, dtype=np.float64), mode, BoxMode.XYWHA_ABS)
        for rec, b in zip(recs, boxes.tolist()):
            rec["bbox"] = b
    if need_poly:
        corners = rbox_to_poly(np.asarray([r["bbox"] for r in need_poly], dtype=np.float64))
        for rec, p in zip(need_poly, corners.tolist()):
            rec["poly"] = p

    tag = dataset_name or json_file
    n_empty = sum(1 for r in dicts if not r.get("annotations"))
    logger.info(
        f"Loaded {len(dicts)} images and {len(anns)} objects in rotated COCO format from "
        f"{json_file} ({tag}) in {time.perf_counter() - t0:.2f}s: {len(from_poly[0])} boxes "
        f"from polygons, {sum(len(v[0]) for v in from_hbox.values())} from axis-aligned bboxes"
    )
    if has_anns and n_empty:
        logger.info(f"{tag}: {n_empty} images have no annotations (kept, without objects).")
    if not has_anns:
        logger.info(f"{tag}: {json_file} has no 'annotations' (a test set): images only.")
    for why, n in sorted(seg_unused.items()):
        logger.warning(
            f"{tag}: {n} annotations have a segmentation that is {why}, not a 4-point polygon; "
            "their 'bbox' was used."
        )
    return dicts


def register_coco_rotated_instances(
    name: str, metadata: dict, json_file: str, image_root: str, **kwargs
) -> None:
    """Register a COCO-style JSON dataset of rotated boxes (see :func:`load_coco_rotated_json`).

    Args:
        name: dataset name, e.g. ``"ships_train"``.
        metadata: extra metadata; ``json_file``, ``image_root`` and
            ``evaluator_type="rotated_coco"`` are filled in unless given. ``thing_classes`` and
            ``thing_dataset_id_to_contiguous_id`` are set from the file when it is loaded.
        json_file, image_root, kwargs: passed to :func:`load_coco_rotated_json`.
    """
    DatasetCatalog.register(
        name, lambda: load_coco_rotated_json(json_file, image_root, name, **kwargs)
    )
    md = {"json_file": json_file, "image_root": image_root, "evaluator_type": "rotated_coco"}
    md.update(metadata or {})
    MetadataCatalog.get(name).set(**md)


def convert_to_coco_rotated_dict(
    dataset_dicts: Sequence[dict], metadata, image_root: str | None = None
) -> dict:
    """Standard dataset dicts -> a COCO-style dict with rotated boxes (module doc).

    Args:
        dataset_dicts: dicts as produced by the loaders (annotations in any of ``XYWHA_ABS``,
            ``XYWH_ABS``, ``XYXY_ABS``; written as ``XYWHA_ABS``).
        metadata: a :class:`Metadata` or dict with ``thing_classes``; its
            ``thing_dataset_id_to_contiguous_id``, if any, gives the JSON category ids (else
            ``contiguous id + 1``); they must increase with the contiguous ids, as in the
            mapping that :func:`load_coco_rotated_json` makes.
        image_root: if given, ``file_name`` is written relative to it (each image must lie
            under it); else as it is in the dicts.
    Returns:
        ``{"info", "images", "annotations", "categories"}``. Images keep ``image_id`` as their
        ``id`` (numbered 1, 2, ... where a dict has none); annotation ids are 1, 2, ...
    """
    classes = metadata.get("thing_classes")
    if classes is None:
        raise KeyError("convert_to_coco_rotated_dict: metadata has no 'thing_classes'")
    to_contiguous = metadata.get("thing_dataset_id_to_contiguous_id") or {
        i + 1: i for i in range(len(classes))
    }
    to_json_id = {c: int(i) for i, c in to_contiguous.items()}
    if sorted(to_json_id) != list(range(len(classes))):
        raise ValueError(
            "thing_dataset_id_to_contiguous_id must map onto 0 .. len(thing_classes) - 1, got "
            f"{to_contiguous}"
        )
    json_ids = [to_json_id[c] for c in range(len(classes))]
    if json_ids != sorted(json_ids):
        raise ValueError(
            "thing_dataset_id_to_contiguous_id must keep the order of the JSON category ids "
            f"(loaders number categories by increasing JSON id), got {to_contiguous}"
        )
    categories = [{"id": i, "name": str(n)} for i, n in zip(json_ids, classes)]

    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for i, d in enumerate(dataset_dicts):
        where = f"dataset dict #{i} ({d.get('file_name')})"
        fname = d["file_name"]
        if image_root is not None:
            rel = os.path.relpath(fname, image_root)
            if rel.startswith(os.pardir + os.sep) or rel == os.pardir or os.path.isabs(rel):
                raise ValueError(f"{where}: {fname} is not under image_root {image_root}")
            fname = rel
        img_id = d.get("image_id", i + 1)
        images.append(
            {"id": img_id, "file_name": fname, "height": int(d["height"]), "width": int(d["width"])}
        )
        for ann in d.get("annotations", ()):
            mode = BoxMode(ann.get("bbox_mode", BoxMode.XYWHA_ABS))
            box = [float(v) for v in BoxMode.convert(list(ann["bbox"]), mode, BoxMode.XYWHA_ABS)]
            poly = ann.get("poly")
            if poly is None:
                poly = rbox_to_poly(np.asarray(box, dtype=np.float64)).tolist()
            poly = [float(v) for v in poly]
            if len(poly) != 8 or not all(math.isfinite(v) for v in box + poly):
                raise ValueError(
                    f"{where}: annotation with bbox {box} and poly {poly}: expected finite "
                    "numbers and an 8-number polygon"
                )
            cat = int(ann["category_id"])
            if cat not in to_json_id:
                raise ValueError(
                    f"{where}: category_id {cat} outside [0, {len(classes)}) (thing_classes)"
                )
            difficult = int(bool(ann.get("difficult", 0)))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": img_id,
                    "category_id": to_json_id[cat],
                    "bbox": box,
                    "segmentation": [poly],
                    "area": box[2] * box[3],
                    "iscrowd": difficult,
                    "difficult": difficult,
                }
            )
    info = {
        "description": "rotated_det rotated COCO: bbox = (cx, cy, w, h, angle) in pixels, angle "
        "in degrees counter-clockwise on screen (Detectron2 XYWHA_ABS); segmentation = the "
        "4-point polygon; iscrowd = difficult",
        "date_created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    return {"info": info, "images": images, "annotations": annotations, "categories": categories}


def convert_to_coco_rotated_json(
    dataset_dicts: Sequence[dict], metadata, out_file: str, image_root: str | None = None
) -> dict:
    """Write dataset dicts as a COCO-style JSON file with rotated boxes (module doc) that
    :func:`load_coco_rotated_json` reads back to the same dicts (with ``image_root`` as the
    loader's ``image_root``, or the dicts' own file names when None).

    Args:
        dataset_dicts, metadata, image_root: see :func:`convert_to_coco_rotated_dict`.
        out_file: the JSON file to write (its directory is created).
    Returns:
        the written COCO dict.
    """
    coco = convert_to_coco_rotated_dict(dataset_dicts, metadata, image_root)
    out_dir = os.path.dirname(out_file)
    if out_dir:
        PathManager.mkdirs(out_dir)
    with PathManager.open(out_file, "w") as f:
        json.dump(coco, f)
    logger.info(
        f"Wrote {len(coco['images'])} images and {len(coco['annotations'])} rotated boxes in "
        f"COCO format to {out_file}"
    )
    return coco

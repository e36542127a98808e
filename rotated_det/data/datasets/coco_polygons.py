"""COCO instance-segmentation JSON (polygon masks) as rotated boxes: each object's box is the
minimum-area rectangle enclosing all the points of its polygons. HRSID (SAR ships) ships its
labels this way; other instance-segmentation sets in COCO format (iSAID, ...) load alike.

Per annotation:

- ``segmentation``: ``[[x1, y1, ..., xk, yk], ...]`` (one or more polygons, pixels, k >= 3
  points each, or one flat polygon). The box is the minimum-area rectangle of all their points
  (:func:`rotated_det.structures.points_to_rbox`, "le90": ``w >= h``, angle in [-90, 90)), the
  same conversion as for DOTA's 4-point polygons; ``poly`` is the box's 4 corners.
- An RLE or empty ``segmentation``: the ``bbox`` ``[x, y, w, h]`` (axis-aligned) gives an
  angle-0 box; such objects are counted in the log.
- ``iscrowd``, ``ignore`` or ``difficult`` true: ``difficult`` 1 (as in the rotated COCO loader).

Categories, images and ``image_id`` follow :mod:`rotated_det.data.datasets.coco_rotated`:
``category_id`` is contiguous and 0-based in the order of the JSON category ids
(``thing_classes`` and ``thing_dataset_id_to_contiguous_id`` go into the metadata of
``dataset_name``), ``file_name`` is joined to ``image_root``, missing ``height``/``width`` are read
from the image header. Errors name the file and the annotation id.

Speed: the rectangles are computed for all objects with the same number of points at once; a
polygon of k points costs about 25 k**2 elementwise operations (each point's hull edge is a
candidate side).
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

import numpy as np

from rotated_det.data.catalog import DatasetCatalog, MetadataCatalog
from rotated_det.data.datasets.coco_labels import parse_numbers, read_categories, read_difficult
from rotated_det.data.datasets.loading import gc_paused, image_size
from rotated_det.structures import BoxMode, points_to_rbox, rbox_to_poly
from rotated_det.utils.file_io import PathManager

__all__ = ["load_coco_polygon_json", "register_coco_polygon_instances"]

logger = logging.getLogger(__name__)


def _read_points(seg, where: str) -> list[float] | None:
    """All points of a polygon segmentation as one flat list (x, y, x, y, ...), or None for RLE
    or an empty segmentation."""
    if seg is None or isinstance(seg, dict) or (isinstance(seg, list) and not seg):
        return None
    if not isinstance(seg, list):
        raise ValueError(f"{where}: malformed 'segmentation' {seg!r}: expected [[x1, y1, ...]]")
    polys = seg if isinstance(seg[0], list) else [seg]
    pts: list[float] = []
    for p in polys:
        vals = parse_numbers(p, where, "segmentation")
        if len(vals) % 2 or len(vals) < 6:
            raise ValueError(
                f"{where}: malformed 'segmentation': a polygon of {len(vals)} numbers; expected "
                "x1, y1, ..., xk, yk with k >= 3 points"
            )
        pts += vals
    return pts


@gc_paused()
def load_coco_polygon_json(
    json_file: str, image_root: str, dataset_name: str | None = None
) -> list[dict]:
    """Load a COCO instance-segmentation JSON file as standard dataset dicts with rotated boxes
    (module doc; format of :mod:`rotated_det.data.datasets.dota`).

    Args:
        json_file: the JSON file (any path PathManager opens).
        image_root: the folder the images' ``file_name`` are relative to.
        dataset_name: if given, its metadata gets ``thing_classes`` and
            ``thing_dataset_id_to_contiguous_id``; also used in log messages.
    Raises:
        ValueError / KeyError naming the file and the image or annotation id: malformed JSON,
        polygon or ``bbox``, an unknown category or image id, an annotation with neither a polygon
        nor a ``bbox``.
    """
    t0 = time.perf_counter()
    try:
        with PathManager.open(json_file, "rb") as f:
            data = json.loads(f.read())
    except json.JSONDecodeError as e:
        raise ValueError(f"{json_file}: not valid JSON: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError(f"{json_file}: expected a COCO JSON object with an 'images' list")
    anns = data.get("annotations") or []
    cat_ids, class_names = read_categories(data.get("categories", []), json_file)
    id_map = {c: i for i, c in enumerate(cat_ids)}
    if dataset_name is not None:
        MetadataCatalog.get(dataset_name).set(
            thing_classes=class_names, thing_dataset_id_to_contiguous_id=id_map
        )
    dicts: list[dict[str, Any]] = []
    index_of: dict = {}
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or "id" not in img or "file_name" not in img:
            raise ValueError(f"{json_file}: image entry #{i} needs an 'id' and a 'file_name'")
        if img["id"] in index_of:
            raise ValueError(f"{json_file}: image id {img['id']!r} appears twice")
        path = os.path.join(image_root, img["file_name"])
        h, w = img.get("height"), img.get("width")
        if h is None or w is None:
            h, w = image_size(path)
        elif not all(type(v) is int and v > 0 for v in (h, w)):
            raise ValueError(
                f"{json_file}: image id {img['id']!r} has height {h!r}, width {w!r}; expected "
                "positive integers"
            )
        index_of[img["id"]] = len(dicts)
        dicts.append(
            {"file_name": path, "height": h, "width": w, "image_id": img["id"], "annotations": []}
        )

    by_count: dict[int, tuple[list[dict], list[list[float]]]] = {}  # points -> (recs, coords)
    from_bbox: tuple[list[dict], list[list[float]]] = ([], [])
    for k, ann in enumerate(anns):
        where = f"{json_file}: annotation id {ann.get('id', f'#{k} (no id)')!r}"
        img_id = ann.get("image_id")
        if img_id not in index_of:
            raise KeyError(f"{where}: image_id {img_id!r} is not in 'images'")
        cat = ann.get("category_id")
        if not isinstance(cat, int) or isinstance(cat, bool) or cat not in id_map:
            known = ", ".join(f"{i} ({n})" for i, n in zip(cat_ids, class_names))
            raise KeyError(f"{where}: unknown category_id {cat!r}; the file's categories: {known}")
        rec = {
            "bbox": None,
            "bbox_mode": BoxMode.XYWHA_ABS,
            "category_id": id_map[cat],
            "difficult": read_difficult(ann, where),
            "poly": None,
        }
        pts = _read_points(ann.get("segmentation"), where)
        if pts is not None:
            group = by_count.setdefault(len(pts) // 2, ([], []))
            group[0].append(rec)
            group[1].append(pts)
        else:
            box = parse_numbers(ann.get("bbox") or [], where, "bbox")
            if len(box) != 4 or box[2] < 0 or box[3] < 0:
                raise ValueError(
                    f"{where}: no polygon in 'segmentation' and 'bbox' is {ann.get('bbox')!r}; "
                    "expected [x, y, w, h] with w, h >= 0"
                )
            from_bbox[0].append(rec)
            from_bbox[1].append(box)
        dicts[index_of[img_id]]["annotations"].append(rec)

    for n_pts, (recs, coords) in by_count.items():
        boxes = points_to_rbox(np.asarray(coords, dtype=np.float64).reshape(-1, n_pts, 2))
        for rec, b, p in zip(recs, boxes.tolist(), rbox_to_poly(boxes).tolist()):
            rec["bbox"], rec["poly"] = b, p
    if from_bbox[0]:
        xywh = np.asarray(from_bbox[1], dtype=np.float64)
        boxes = BoxMode.convert(xywh, BoxMode.XYWH_ABS, BoxMode.XYWHA_ABS)
        for rec, b, p in zip(from_bbox[0], boxes.tolist(), rbox_to_poly(boxes).tolist()):
            rec["bbox"], rec["poly"] = b, p

    tag = dataset_name or json_file
    logger.info(
        f"Loaded {len(dicts)} images and {len(anns)} objects from the COCO polygons of "
        f"{json_file} ({tag}) in {time.perf_counter() - t0:.2f}s"
    )
    if from_bbox[0]:
        logger.warning(
            f"{tag}: {len(from_bbox[0])} annotations have no polygon (RLE or empty "
            "segmentation); their axis-aligned 'bbox' was used (angle 0)."
        )
    return dicts


def register_coco_polygon_instances(
    name: str, metadata: dict, json_file: str, image_root: str
) -> None:
    """Register a COCO instance-segmentation JSON file as rotated boxes (see
    :func:`load_coco_polygon_json`); ``metadata`` adds to or overrides ``json_file``,
    ``image_root`` and ``evaluator_type="rotated_coco"``."""
    DatasetCatalog.register(name, lambda: load_coco_polygon_json(json_file, image_root, name))
    md = {"json_file": json_file, "image_root": image_root, "evaluator_type": "rotated_coco"}
    md.update(metadata or {})
    MetadataCatalog.get(name).set(**md)

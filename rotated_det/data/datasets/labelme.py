"""labelme JSON annotations (one file per image, written by labelme and by X-AnyLabeling), as
standard dataset dicts (format of :mod:`rotated_det.data.datasets.dota`), and back.

Format (labelme's ``LabelFile``, versions 3-5)::

    {"version": "5.5.0", "flags": {},
     "shapes": [{"label": "ship", "points": [[x1, y1], [x2, y2], ...], "group_id": null,
                 "shape_type": "polygon", "flags": {}, "description": "", "mask": null}, ...],
     "imagePath": "P0001.png",          # relative to the JSON file's folder
     "imageData": "<base64>" or null,   # the embedded image; never decoded here
     "imageHeight": 800, "imageWidth": 1000}

Points are pixels of the image (x right, y down). How each ``shape_type`` becomes a rotated box:

- ``"polygon"`` with 4 points: the minimum-area rectangle of the 4 points
  (:func:`rotated_det.structures.poly_to_rbox`, "le90"), exactly as a DOTA label line; ``poly``
  in the dict is the 4 points as clicked. A missing or null ``shape_type`` is a polygon (labelme
  reads it so).
- ``"rotation"`` (X-AnyLabeling's rotated rectangle; labelme itself has no rotated rectangle): its
  4 corner points, as a 4-point polygon. Its ``direction`` field (radians) only repeats the angle
  of the corners and is not read.
- ``"rectangle"``: an axis-aligned box from 2 opposite corners (labelme) or 4 corners
  (X-AnyLabeling); the box has angle 0 (2 points) or is the 4 corners' rectangle.
- ``"polygon"`` with K >= 3 points, K != 4 (an outline): with ``polygons="min_area_rect"``
  (default) its minimum-area rectangle (:func:`rotated_det.structures.points_to_rbox`), ``poly``
  then being that rectangle's corners; every such polygon is counted in a warning. With
  ``polygons="error"`` it is an error naming the file and the shape. An outline's minimum-area
  rectangle is the usual oriented box of an object drawn as an outline, so converting is the
  default; use "error" when every object was meant to be drawn with 4 points.
- other shape types (``circle``, ``line``, ``linestrip``, ``point``, ``points``, ``mask``, ...):
  not boxes; skipped and counted per type in a warning (``other_shapes="skip"``, default), or an
  error (``other_shapes="error"``).

``difficult`` is 1 when the shape has a true ``"difficult"`` field (X-AnyLabeling) or a true
``flags["difficult"]`` (a labelme shape flag), else 0. The image is ``imagePath`` resolved against
the JSON file's folder (Windows ``\\`` separators are accepted), or ``image_root/<its file name>``
when ``image_root`` is given; a JSON without ``imagePath`` looks for ``<json stem>.<image ext>``.
``height`` and ``width`` come from ``imageHeight``/``imageWidth``, else from the image file.
``image_id`` is the JSON file's stem. Malformed input (not JSON, a shape without ``label`` or with
bad ``points``, a missing image) raises an error naming the file and ``shapes[i]``.

:func:`convert_to_labelme_dict` writes a dataset dict as such a file: one 4-point ``"polygon"``
per object (its ``poly``, or its box's corners), ``flags: {"difficult": true}`` for difficult
objects, ``imageData: null``; loading it back gives the same boxes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rotated_det.data.catalog import MetadataCatalog
from rotated_det.data.datasets.loading import (
    IMAGE_EXTENSIONS,
    annotation_polygons,
    gc_paused,
    image_size,
    list_images,
    register_label_folder,
)
from rotated_det.structures import BoxMode, points_to_rbox, poly_to_rbox, rbox_to_poly

__all__ = [
    "LabelmeShapes",
    "parse_labelme_dict",
    "load_labelme_instances",
    "register_labelme_instances",
    "convert_to_labelme_dict",
]

logger = logging.getLogger(__name__)

_NUMBER_TYPES = frozenset((int, float))
# shape_type -> allowed point counts (None: any count >= 3)
_BOX_SHAPES: dict[str, tuple[int, ...] | None] = {
    "polygon": None,
    "rotation": (4,),
    "rectangle": (2, 4),
}
LABELME_VERSION = "5.5.0"  # the labelme file version written by convert_to_labelme_dict


@dataclass
class LabelmeShapes:
    """The box-like shapes of one labelme file, in file order.

    Attributes:
        labels: N labels as written.
        points: ``[M, 2]`` float64 pixel coordinates of all shapes' points, concatenated.
        num_points: ``[N]`` int64 points per shape (2: a rectangle given by 2 opposite
            corners, the only 2-point shape).
        difficult: ``[N]`` int64, 0 or 1.
        shape_index: ``[N]`` int64 index of each shape in the file's ``shapes`` list.
        image_path: ``imagePath`` as written (``\\`` turned into ``/``), or None.
        height, width: ``imageHeight``, ``imageWidth``, or None when absent.
        skipped: shape type -> number of shapes that are not boxes (``other_shapes="skip"``).
    """

    labels: list[str]
    points: np.ndarray
    num_points: np.ndarray
    difficult: np.ndarray
    shape_index: np.ndarray
    image_path: str | None = None
    height: int | None = None
    width: int | None = None
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)


def _shape_error(path: str, i: int, shape: Any, msg: str) -> ValueError:
    label = shape.get("label") if isinstance(shape, dict) else None
    st = shape.get("shape_type") if isinstance(shape, dict) else None
    return ValueError(f"{path}: shapes[{i}] (label {label!r}, shape_type {st!r}): {msg}")


def _image_dim(data: Mapping, key: str, path: str) -> int | None:
    v = data.get(key)
    if v is None:
        return None
    if type(v) is not int or v <= 0:
        raise ValueError(f"{path}: '{key}' is {v!r}; expected a positive integer")
    return v


def parse_labelme_dict(
    data: Any, path: str = "<dict>", *, other_shapes: str = "skip"
) -> LabelmeShapes:
    """The box-like shapes of a decoded labelme JSON object (module doc).

    Args:
        data: the decoded JSON (a dict with a ``shapes`` list).
        path: the file, for error messages.
        other_shapes: "skip" (count shapes that are not boxes in ``skipped``) or "error".
    Raises:
        ValueError: naming ``path`` and ``shapes[i]``: a shape that is not an object, has no
            non-empty string ``label``, has ``points`` that are not ``[x, y]`` pairs of finite
            numbers, or the wrong number of points for its type (polygon >= 3, rotation 4,
            rectangle 2 or 4); a non-box shape with ``other_shapes="error"``; a bad
            ``imageHeight``/``imageWidth``/``imagePath``. (A JSON ``true``/``false`` among
            numbers is read as 1/0: the points of a file are converted in one numpy call.)
    """
    if other_shapes not in ("skip", "error"):
        raise ValueError(f"other_shapes must be 'skip' or 'error', got {other_shapes!r}")
    if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
        raise ValueError(f"{path}: expected a labelme JSON object with a 'shapes' list")
    labels: list[str] = []
    point_lists: list[list] = []
    diffs: list[int] = []
    index: list[int] = []
    skipped: dict[str, int] = {}
    for i, shape in enumerate(data["shapes"]):
        if not isinstance(shape, dict):
            raise _shape_error(path, i, shape, "not a JSON object")
        st = shape.get("shape_type") or "polygon"
        allowed = _BOX_SHAPES.get(st, ())
        if allowed == ():
            if other_shapes == "error":
                raise _shape_error(
                    path, i, shape, f"not a box shape (boxes: {', '.join(_BOX_SHAPES)})"
                )
            skipped[st] = skipped.get(st, 0) + 1
            continue
        label = shape.get("label")
        if not isinstance(label, str) or not label.strip():
            raise _shape_error(path, i, shape, "no label (expected a non-empty string)")
        pts = shape.get("points")
        if not isinstance(pts, list):
            raise _shape_error(path, i, shape, f"'points' is {pts!r}; expected [[x, y], ...]")
        k = len(pts)
        if allowed is None:
            if k < 3:
                raise _shape_error(path, i, shape, f"a polygon needs at least 3 points, got {k}")
        elif k not in allowed:
            want = " or ".join(map(str, allowed))
            raise _shape_error(path, i, shape, f"a {st} has {want} points, got {k}")
        flags = shape.get("flags")
        diff = shape.get("difficult") or (isinstance(flags, dict) and flags.get("difficult"))
        labels.append(label)
        point_lists.append(pts)
        diffs.append(1 if diff else 0)
        index.append(i)
    num_points = np.array([len(p) for p in point_lists], dtype=np.int64)
    # All points of the file in one conversion (numbers only: strings or bools give another
    # dtype); the slow check below names a bad point.
    flat = [p for pts in point_lists for p in pts]
    try:
        arr = np.array(flat) if flat else np.zeros((0, 2))
    except (ValueError, TypeError):  # ragged
        arr = None
    points = None
    if arr is not None and arr.dtype.kind in "fi" and arr.shape == (len(flat), 2):
        points = arr.astype(np.float64)
    if points is None or not np.isfinite(points).all():
        for j, pts in enumerate(point_lists):
            for p in pts:
                if not isinstance(p, (list, tuple)) or len(p) != 2:
                    msg = f"point {p!r} is not an [x, y] pair"
                elif not all(type(v) in _NUMBER_TYPES and math.isfinite(v) for v in p):
                    msg = f"point {p!r} is not an [x, y] pair of finite numbers"
                else:
                    continue
                raise _shape_error(path, index[j], data["shapes"][index[j]], msg)
        raise ValueError(f"{path}: malformed 'points'")  # not reached: the loop names the point
    image_path = data.get("imagePath")
    if image_path is not None and not isinstance(image_path, str):
        raise ValueError(f"{path}: 'imagePath' is {image_path!r}; expected a string")
    return LabelmeShapes(
        labels=labels,
        points=points,
        num_points=num_points,
        difficult=np.array(diffs, dtype=np.int64),
        shape_index=np.array(index, dtype=np.int64),
        image_path=image_path.replace("\\", "/") if image_path else None,
        height=_image_dim(data, "imageHeight", path),
        width=_image_dim(data, "imageWidth", path),
        skipped=skipped,
    )


def _read_json(path: str) -> Any:
    try:
        # bytes: json detects UTF-8/16/32 and accepts a UTF-8 byte-order mark
        with open(path, "rb") as f:
            return json.loads(f.read())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from e
    except OSError as e:
        raise OSError(f"Cannot read labelme file {path}: {e}") from e


def _labelme_image(
    shapes: LabelmeShapes, jpath: str, image_root: str | None, by_stem: Callable[[str], str | None]
) -> str:
    """The image of labelme file ``jpath`` (module doc); ``by_stem(stem)`` finds
    ``<stem>.<image ext>`` in the image folder."""
    folder = os.path.dirname(jpath)
    stem = os.path.splitext(os.path.basename(jpath))[0]
    ip = shapes.image_path
    if ip:
        cand = (
            os.path.join(image_root, os.path.basename(ip))
            if image_root is not None
            else os.path.normpath(os.path.join(folder, ip))
        )
        if os.path.isfile(cand):
            return cand
        hint = "" if image_root is not None else " (pass image_root to look in another folder)"
        raise FileNotFoundError(f"{jpath}: image {cand} (imagePath {ip!r}) not found{hint}")
    found = by_stem(stem)
    if found is None:
        search = image_root if image_root is not None else folder
        raise FileNotFoundError(
            f"{jpath}: has no 'imagePath' and {search} has no image named {stem}.<ext>"
        )
    return found


@gc_paused()
def load_labelme_instances(
    json_dir: str,
    image_root: str | None = None,
    class_names: Sequence[str] | None = None,
    *,
    polygons: str = "min_area_rect",
    other_shapes: str = "skip",
    unknown_classes: str = "error",
    image_exts: Sequence[str] = IMAGE_EXTENSIONS,
    dataset_name: str | None = None,
) -> list[dict]:
    """Load a folder of labelme JSON files as standard dataset dicts (module doc), one per file,
    in file-name order.

    Args:
        json_dir: folder of ``*.json`` labelme files (other files are ignored).
        image_root: folder of the images; None: ``imagePath`` relative to each JSON file.
        class_names: categories; ``category_id`` is the index into this list. None: the sorted
            labels found in the files (set as ``thing_classes`` of ``dataset_name``'s metadata
            when ``dataset_name`` is given, and logged).
        polygons: "min_area_rect" (default) or "error": polygons of K != 4 points.
        other_shapes: "skip" (default, counted) or "error": shapes that are not boxes.
        unknown_classes: "error" (default): a label not in ``class_names`` raises naming the file
            and shape; "skip": such shapes are dropped and counted.
        image_exts: image extensions tried for a JSON without ``imagePath``.
        dataset_name: name for log messages and metadata.
    Returns:
        ``[{"file_name", "height", "width", "image_id", "annotations": [{"bbox": [cx, cy, w, h,
        angle_deg], "bbox_mode": BoxMode.XYWHA_ABS, "category_id", "difficult", "poly":
        [x1, y1, ..., x4, y4]}, ...]}, ...]``.
    """
    if polygons not in ("min_area_rect", "error"):
        raise ValueError(f"polygons must be 'min_area_rect' or 'error', got {polygons!r}")
    if unknown_classes not in ("error", "skip"):
        raise ValueError(f"unknown_classes must be 'error' or 'skip', got {unknown_classes!r}")
    t0 = time.perf_counter()
    tag = dataset_name or json_dir
    if not os.path.isdir(json_dir):
        raise FileNotFoundError(f"labelme folder {json_dir} does not exist")
    files = sorted(
        f for f in os.listdir(json_dir) if f.lower().endswith(".json") and not f.startswith(".")
    )
    if not files:
        raise FileNotFoundError(f"No labelme .json files in {json_dir} ({tag})")
    folder_images: dict[str, str] = {}  # stem -> path in the image folder, listed when needed

    def by_stem(stem: str) -> str | None:
        if not folder_images:
            folder = image_root if image_root is not None else json_dir
            for f in list_images(folder, image_exts):
                folder_images.setdefault(os.path.splitext(f)[0], os.path.join(folder, f))
        return folder_images.get(stem)

    parsed: list[tuple[dict, LabelmeShapes, str]] = []
    skipped: dict[str, int] = {}
    for f in files:
        jpath = os.path.join(json_dir, f)
        shapes = parse_labelme_dict(_read_json(jpath), jpath, other_shapes=other_shapes)
        for k, v in shapes.skipped.items():
            skipped[k] = skipped.get(k, 0) + v
        img = _labelme_image(shapes, jpath, image_root, by_stem)
        if shapes.height is None or shapes.width is None:
            h, w = image_size(img)
        else:
            h, w = shapes.height, shapes.width
        rec = {"file_name": img, "height": h, "width": w, "image_id": os.path.splitext(f)[0]}
        parsed.append((rec, shapes, jpath))

    if class_names is None:
        found = sorted({lb for _, s, _ in parsed for lb in s.labels})
        class_names = found
        logger.info(f"{tag}: classes found in the labelme files: {found}")
        if dataset_name is not None:
            MetadataCatalog.get(dataset_name).set(thing_classes=list(found))
    class_to_id = {c: i for i, c in enumerate(class_names)}

    # Category ids, and one box conversion per point count, for the whole dataset.
    sizes = np.array([len(s) for _, s, _ in parsed], dtype=np.int64)
    labels_all = [lb for _, s, _ in parsed for lb in s.labels]
    cats = np.fromiter((class_to_id.get(lb, -1) for lb in labels_all), np.int64, len(labels_all))
    file_of = np.repeat(np.arange(len(parsed)), sizes)
    local = np.arange(len(cats)) - (np.cumsum(sizes) - sizes)[file_of]

    def where(j: int) -> str:
        _, s, jpath = parsed[int(file_of[j])]
        return f"{jpath}: shapes[{int(s.shape_index[local[j]])}] (label {labels_all[j]!r})"

    if unknown_classes == "error" and (cats < 0).any():
        raise KeyError(
            f"{where(int(np.argmax(cats < 0)))}: unknown class; known classes are: "
            f"{', '.join(class_names)}"
        )
    counts = np.concatenate([s.num_points for _, s, _ in parsed])
    diffs = np.concatenate([s.difficult for _, s, _ in parsed])
    points = np.concatenate([s.points for _, s, _ in parsed])
    starts = np.cumsum(counts) - counts
    boxes = np.zeros((len(counts), 5))
    polys = np.zeros((len(counts), 8))
    for k in np.unique(counts).tolist():
        sel = np.nonzero(counts == k)[0]
        pts = points[starts[sel, None] + np.arange(k)]  # [n, k, 2]
        if k == 2:  # a rectangle from 2 opposite corners
            lo, hi = pts.min(axis=1), pts.max(axis=1)
            polys[sel] = np.stack(
                [lo, np.stack([hi[:, 0], lo[:, 1]], 1), hi, np.stack([lo[:, 0], hi[:, 1]], 1)],
                axis=1,
            ).reshape(-1, 8)
            boxes[sel] = poly_to_rbox(polys[sel])
        elif k == 4:
            polys[sel] = pts.reshape(-1, 8)
            boxes[sel] = poly_to_rbox(polys[sel])
        elif polygons == "error":
            raise ValueError(
                f"{where(int(sel[0]))}: a polygon of {k} points, not 4 (pass "
                "polygons='min_area_rect' to use its minimum-area rectangle)"
            )
        else:
            boxes[sel] = points_to_rbox(pts)
            polys[sel] = rbox_to_poly(boxes[sel])
    n_outline = int(((counts != 4) & (counts != 2)).sum())

    b_all, c_all, d_all, p_all = boxes.tolist(), cats.tolist(), diffs.tolist(), polys.tolist()
    dicts, start = [], 0
    for (rec, _, _), end in zip(parsed, np.cumsum(sizes).tolist()):
        rec["annotations"] = [
            {
                "bbox": b_all[j],
                "bbox_mode": BoxMode.XYWHA_ABS,
                "category_id": c_all[j],
                "difficult": d_all[j],
                "poly": p_all[j],
            }
            for j in range(start, end)
            if c_all[j] >= 0
        ]
        start = end
        dicts.append(rec)
    n_obj = int((cats >= 0).sum())
    n_unknown = len(cats) - n_obj
    logger.info(
        f"Loaded {len(dicts)} images and {n_obj} objects from labelme files in {json_dir} "
        f"({tag}) in {time.perf_counter() - t0:.2f}s"
    )
    if n_outline:
        logger.warning(
            f"{tag}: {n_outline} polygons with other than 4 points replaced by their "
            "minimum-area rectangles."
        )
    if skipped:
        kinds = ", ".join(f"{k}: {v}" for k, v in sorted(skipped.items()))
        logger.warning(
            f"{tag}: {sum(skipped.values())} shapes that are not boxes skipped ({kinds})."
        )
    if n_unknown:
        logger.warning(f"{tag}: {n_unknown} shapes of unknown classes skipped.")
    return dicts


def register_labelme_instances(
    name: str,
    metadata: dict,
    json_dir: str,
    image_root: str | None = None,
    class_names: Sequence[str] | None = None,
    **kwargs,
) -> None:
    """Register a folder of labelme files (see :func:`load_labelme_instances`).

    Args:
        name: dataset name, e.g. ``"my_labelme_train"``.
        metadata: extra metadata; ``thing_classes`` (when ``class_names`` is given; else set
            from the files when loaded), ``json_dir``, ``image_root`` and
            ``evaluator_type="dota"`` are filled in unless given.
        json_dir, image_root, class_names, kwargs: passed to :func:`load_labelme_instances`.
    """
    register_label_folder(
        name,
        lambda names: load_labelme_instances(
            json_dir, image_root, names, dataset_name=name, **kwargs
        ),
        class_names,
        metadata,
        json_dir=json_dir,
        image_root=image_root,
        evaluator_type="dota",
    )


def convert_to_labelme_dict(
    record: Mapping, class_names: Sequence[str], image_path: str | None = None
) -> dict:
    """A dataset dict as a labelme JSON object (module doc) that
    :func:`load_labelme_instances` reads back to the same boxes.

    Args:
        record: a standard dataset dict (``height``, ``width``, ``annotations``).
        class_names: names of the ``category_id`` values.
        image_path: ``imagePath`` to write, relative to the JSON file's folder (labelme's
            convention); default: the file name of ``record["file_name"]``.
    """
    anns = record.get("annotations", ())
    where = str(record.get("file_name"))
    shapes = []
    for j, (ann, p) in enumerate(zip(anns, annotation_polygons(anns, where).tolist())):
        cat = int(ann["category_id"])
        if not 0 <= cat < len(class_names):
            raise ValueError(
                f"{where}: annotation #{j} has category_id {cat}, outside [0, {len(class_names)})"
            )
        shapes.append(
            {
                "label": str(class_names[cat]),
                "points": [[p[0], p[1]], [p[2], p[3]], [p[4], p[5]], [p[6], p[7]]],
                "group_id": None,
                "description": "",
                "shape_type": "polygon",
                "flags": {"difficult": True} if ann.get("difficult") else {},
                "mask": None,
            }
        )
    if image_path is None:
        image_path = os.path.basename(record["file_name"])
    return {
        "version": LABELME_VERSION,
        "flags": {},
        "shapes": shapes,
        "imagePath": image_path,
        "imageData": None,
        "imageHeight": int(record["height"]),
        "imageWidth": int(record["width"]),
    }

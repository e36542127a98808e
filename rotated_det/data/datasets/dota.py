"""DOTA (v1.0, v1.5, v2.0) in its native label format, as standard dataset dicts.

Label file (one per image, same stem, in ``label_dir``)::

    imagesource:GoogleEarth          <- optional header lines
    gsd:0.146343590398
    x1 y1 x2 y2 x3 y3 x4 y4 category difficult

Coordinates are pixels of the image; ``difficult`` is 0 or 1 (missing means 0; any other value is
an error naming the file and line). A UTF-8 byte-order mark at the start of the file (written by
some Windows editors) is ignored. The four points are
usually clockwise from the object's "head", but real labels are messy (any order is accepted:
the rotated box is the minimum-area rectangle of the four points).

Dataset dict produced for each image::

    {"file_name": str, "height": int, "width": int, "image_id": str (file stem),
     "annotations": [                         # absent for test sets without labels
         {"bbox": [cx, cy, w, h, angle_deg],  # BoxMode.XYWHA_ABS, see CONTRACT box convention
          "bbox_mode": BoxMode.XYWHA_ABS,
          "category_id": int,                 # 0-based index into class_names
          "difficult": int,                   # 0 or 1
          "poly": [x1, y1, ..., x4, y4]},     # the polygon as written in the label file
         ...]}
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rotated_det.data.catalog import DatasetCatalog, MetadataCatalog
from rotated_det.data.polygon_ops import (
    clip_polygons_to_rects,
    min_area_rect_corners,
    order_quads,
    polygon_areas,
)
from rotated_det.structures import BoxMode, poly_to_rbox

__all__ = [
    "DOTA_V1_CLASSES",
    "DOTA_V15_CLASSES",
    "DOTA_V2_CLASSES",
    "DotaLabels",
    "parse_dota_label_file",
    "parse_dota_label_text",
    "load_dota_instances",
    "register_dota_instances",
    "polys_to_rboxes",
    "clip_polys_to_image",
    "IMAGE_EXTENSIONS",
]

logger = logging.getLogger(__name__)

DOTA_V1_CLASSES = (
    "plane",
    "baseball-diamond",
    "bridge",
    "ground-track-field",
    "small-vehicle",
    "large-vehicle",
    "ship",
    "tennis-court",
    "basketball-court",
    "storage-tank",
    "soccer-ball-field",
    "roundabout",
    "harbor",
    "swimming-pool",
    "helicopter",
)
DOTA_V15_CLASSES = DOTA_V1_CLASSES + ("container-crane",)
DOTA_V2_CLASSES = DOTA_V15_CLASSES + ("airport", "helipad")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


@dataclass
class DotaLabels:
    """Parsed content of one DOTA label file.

    Attributes:
        polys: ``[N, 8]`` float64 polygons (pixels).
        class_names: N category names as written.
        difficult: ``[N]`` int64 (0 or 1).
        header: header fields, e.g. ``{"imagesource": "GoogleEarth", "gsd": "0.14"}``.
        num_malformed: lines skipped because malformed (only with ``skip_malformed=True``).
        line_numbers: ``[N]`` 1-based line number of each object, for error messages.
    """

    polys: np.ndarray
    class_names: list[str]
    difficult: np.ndarray
    header: dict = field(default_factory=dict)
    num_malformed: int = 0
    line_numbers: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.class_names)


_HEADER_KEYS = ("imagesource:", "gsd:")
_BOM = "\ufeff"  # UTF-8 byte-order mark, as decoded by the "utf-8" codec


def parse_dota_label_text(
    text: str, path: str = "<string>", skip_malformed: bool = False
) -> DotaLabels:
    """Parse the content of a DOTA label file. See :func:`parse_dota_label_file`."""
    text = text.removeprefix(_BOM)
    # A flat list of coordinate strings: str objects are not tracked by the cyclic garbage
    # collector, a list per line would be (and would trigger collections on big files).
    coords: list[str] = []
    names: list[str] = []
    diffs: list[int] = []
    lines_no: list[int] = []
    header: dict = {}
    malformed = 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line[:12].lower().startswith(_HEADER_KEYS):
            key, _, val = line.partition(":")
            header[key.strip().lower()] = val.strip()
            continue
        parts = line.split()
        n = len(parts)
        if n == 10:
            d = parts[9]
        elif n == 9:
            d = "0"
        else:
            d = None
        if d not in ("0", "1"):
            why = (
                f"{n} fields, expected 9 or 10"
                if d is None
                else f"difficult flag {d!r}, expected 0 or 1"
            )
            msg = (
                f"{path}:{lineno}: malformed DOTA label line {raw!r} ({why}); expected "
                "'x1 y1 x2 y2 x3 y3 x4 y4 category difficult' (difficult 0 or 1)"
            )
            if skip_malformed:
                malformed += 1
                logger.warning(msg + " -- skipped")
                continue
            raise ValueError(msg)
        coords.extend(parts[:8])
        names.append(parts[8])
        diffs.append(1 if d == "1" else 0)
        lines_no.append(lineno)
    try:
        polys = np.array(coords, dtype=np.float64).reshape(-1, 8)
    except ValueError:
        # Find the offending line for a precise message.
        keep = []
        rows = [coords[8 * i : 8 * i + 8] for i in range(len(names))]
        for i, c in enumerate(rows):
            try:
                [float(v) for v in c]
                keep.append(i)
            except ValueError:
                msg = (
                    f"{path}:{lines_no[i]}: malformed DOTA label line: non-numeric coordinate "
                    f"in {' '.join(c)!r}"
                )
                if not skip_malformed:
                    raise ValueError(msg) from None
                malformed += 1
                logger.warning(msg + " -- skipped")
        coords = [v for i in keep for v in rows[i]]
        names = [names[i] for i in keep]
        diffs = [diffs[i] for i in keep]
        lines_no = [lines_no[i] for i in keep]
        polys = np.array(coords, dtype=np.float64).reshape(-1, 8)
    if polys.size and not np.isfinite(polys).all():
        bad = int(np.nonzero(~np.isfinite(polys).all(axis=1))[0][0])
        raise ValueError(f"{path}:{lines_no[bad]}: non-finite coordinate in DOTA label line")
    return DotaLabels(
        polys=polys,
        class_names=names,
        difficult=np.asarray(diffs, dtype=np.int64),
        header=header,
        num_malformed=malformed,
        line_numbers=np.asarray(lines_no, dtype=np.int64),
    )


def parse_dota_label_file(path: str, skip_malformed: bool = False) -> DotaLabels:
    """Read one DOTA label file.

    Args:
        path: the ``.txt`` file.
        skip_malformed: if False (default) a malformed line (wrong number of fields, a
            non-numeric coordinate, a ``difficult`` flag other than 0 or 1) raises ``ValueError``
            naming the file and line; if True it is skipped, logged and counted in
            ``num_malformed``.
    """
    try:
        with open(path, encoding="utf-8-sig", errors="strict") as f:
            text = f.read()
    except OSError as e:
        raise OSError(f"Cannot read DOTA label file {path}: {e}") from e
    return parse_dota_label_text(text, path=path, skip_malformed=skip_malformed)


def polys_to_rboxes(polys: np.ndarray) -> np.ndarray:
    """``[N, 8]`` polygons (any array-like) -> ``[N, 5]`` float64 XYWHA_ABS boxes: the
    minimum-area rectangles of :func:`rotated_det.structures.poly_to_rbox`, angle version "le90"
    (``w >= h``, angle in ``[-90, 90)``)."""
    return poly_to_rbox(np.asarray(polys, dtype=np.float64).reshape(-1, 8))


def clip_polys_to_image(
    polys: np.ndarray, width, height, tolerance: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Find polygons that leave the image and clip them to it.

    Args:
        polys: ``[N, 8]`` polygons.
        width, height: image size in pixels (scalars, or ``[N]`` arrays: one image per polygon).
        tolerance: polygons that exceed the image by at most this many pixels are left as they are
            (annotators routinely click one pixel past the border).
    Returns:
        ``(outside, visible_fraction, clipped_boxes)``: ``outside`` ``[N]`` bool, True where the
        polygon exceeds the image by more than ``tolerance``; ``visible_fraction`` ``[N]`` the
        fraction of the polygon's area inside the image (1 where not outside);
        ``clipped_boxes`` ``[N, 5]`` XYWHA boxes of the clipped polygons (rows of polygons
        that are not outside are not meaningful).
    """
    polys = np.asarray(polys, dtype=np.float64).reshape(-1, 8)
    width = np.broadcast_to(np.asarray(width, dtype=np.float64), (len(polys),))
    height = np.broadcast_to(np.asarray(height, dtype=np.float64), (len(polys),))
    xs, ys = polys[:, 0::2], polys[:, 1::2]
    outside = (
        (xs.min(1) < -tolerance)
        | (ys.min(1) < -tolerance)
        | (xs.max(1) > width + tolerance)
        | (ys.max(1) > height + tolerance)
    )
    frac = np.ones(len(polys))
    boxes = np.zeros((len(polys), 5))
    idx = np.nonzero(outside)[0]
    if len(idx):
        q = order_quads(polys[idx].reshape(-1, 4, 2))
        zeros = np.zeros(len(idx))
        rects = np.stack([zeros, zeros, width[idx], height[idx]], axis=1)
        clipped = clip_polygons_to_rects(q, rects)
        area = polygon_areas(q)
        inter = polygon_areas(clipped)
        frac[idx] = np.where(area > 0, inter / np.maximum(area, 1e-12), 0.0)
        boxes[idx] = poly_to_rbox(min_area_rect_corners(clipped).reshape(-1, 8))
    return outside, frac, boxes


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector while building many small containers that all stay
    alive (collections would find nothing to free and cost more than the parsing)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _image_size(path: str) -> tuple[int, int]:
    """(height, width) from the image header, without decoding the pixels.

    Pillow's decompression-bomb limit (about 179 megapixels) is lifted for this header read:
    DOTA v2.0 has images of 20000 x 20000 pixels.
    """
    try:
        import warnings

        from PIL import Image

        limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(path) as im:
                    w, h = im.size
        finally:
            Image.MAX_IMAGE_PIXELS = limit
        return int(h), int(w)
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib/torchvision
        pass
    except Exception as e:
        raise OSError(f"Cannot read image {path}: {e}") from e
    import cv2

    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise OSError(f"Cannot read image {path}: missing or not a supported image file")
    return int(img.shape[0]), int(img.shape[1])


def _list_images(image_dir: str, image_exts: Sequence[str]) -> list[str]:
    if not os.path.isdir(image_dir):
        raise FileNotFoundError(f"DOTA image directory {image_dir} does not exist")
    exts = tuple(e.lower() for e in image_exts)
    return sorted(
        f for f in os.listdir(image_dir) if f.lower().endswith(exts) and not f.startswith(".")
    )


@_gc_paused()
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
    files = _list_images(image_dir, image_exts)
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
        height, width = _image_size(path)
        stem = os.path.splitext(fname)[0]
        rec = {"file_name": path, "height": height, "width": width, "image_id": stem}
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
                raise KeyError(
                    f"{lpath}:{int(labels.line_numbers[bad])}: unknown class "
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
        boxes_all = polys_to_rboxes(polys_all)
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

"""What the dataset loaders share: listing the images of a folder, reading an image's size from its
file header, pausing the garbage collector while many dataset dicts are built, and the polygons of
dataset-dict annotations (for the writers of label formats), registering a folder of label files."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from rotated_det.data.catalog import DatasetCatalog, MetadataCatalog
from rotated_det.structures import BoxMode, rbox_to_poly
from rotated_det.utils.file_io import IMAGE_EXTENSIONS

__all__ = [
    "IMAGE_EXTENSIONS",
    "annotation_polygons",
    "gc_paused",
    "image_size",
    "list_images",
    "register_label_folder",
]


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small containers that all stay
    alive (collections would find nothing to free and cost more than the parsing). Also a
    decorator."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def image_size(path: str) -> tuple[int, int]:
    """(height, width) in pixels from the image header, without decoding the pixels.

    Pillow's decompression-bomb limit (about 179 megapixels) is lifted for this header read:
    DOTA v2.0 has images of 20000 x 20000 pixels.

    Raises:
        OSError: naming ``path`` when it is missing or not a readable image.
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


def list_images(image_dir: str, image_exts: Sequence[str] = IMAGE_EXTENSIONS) -> list[str]:
    """Sorted names (not paths) of the files in ``image_dir`` whose extension is one of
    ``image_exts`` (any case); hidden files (``.name``) are left out.

    Raises:
        FileNotFoundError: ``image_dir`` does not exist.
    """
    if not os.path.isdir(image_dir):
        raise FileNotFoundError(f"Image directory {image_dir} does not exist")
    exts = tuple(e.lower() for e in image_exts)
    return sorted(
        f for f in os.listdir(image_dir) if f.lower().endswith(exts) and not f.startswith(".")
    )


def annotation_polygons(
    annotations: Sequence[Mapping], where: str = "<dataset dict>"
) -> np.ndarray:
    """``[N, 8]`` float64 4-point polygons (pixels) of N dataset-dict annotations: each one's
    ``poly`` when it has one, else the corners of its ``bbox`` (in its ``bbox_mode``: XYWHA_ABS,
    the default, XYWH_ABS or XYXY_ABS; corners in :func:`rotated_det.structures.rbox_to_poly`'s
    order). One vectorised conversion per box mode.

    Raises:
        ValueError: naming ``where`` and the annotation's index: a ``poly`` that is not 8 finite
            numbers, or a bad ``bbox``.
    """
    out = np.zeros((len(annotations), 8))
    by_mode: dict[BoxMode, tuple[list[int], list]] = {}
    for i, ann in enumerate(annotations):
        poly = ann.get("poly")
        if poly is None:
            mode = BoxMode(ann.get("bbox_mode", BoxMode.XYWHA_ABS))
            rows, boxes = by_mode.setdefault(mode, ([], []))
            rows.append(i)
            boxes.append(ann["bbox"])
            continue
        try:
            out[i] = poly
        except (ValueError, TypeError):
            raise ValueError(
                f"{where}: annotation #{i} has poly {poly!r}; expected 8 numbers"
            ) from None
    for mode, (rows, boxes) in by_mode.items():
        try:
            arr = np.asarray(boxes, dtype=np.float64).reshape(len(rows), -1)
            out[rows] = rbox_to_poly(BoxMode.convert(arr, mode, BoxMode.XYWHA_ABS))
        except (ValueError, TypeError) as e:
            raise ValueError(f"{where}: a bbox in mode {mode.name} is malformed: {e}") from None
    bad = ~np.isfinite(out).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{where}: annotation #{i} has a non-finite polygon {out[i].tolist()}")
    return out


def register_label_folder(
    name: str,
    load: Callable[[list[str] | None], list[dict]],
    class_names: Sequence[str] | None,
    metadata: Mapping[str, Any] | None,
    **defaults: Any,
) -> None:
    """Register dataset ``name`` as ``load(class_names)`` and set its metadata.

    Args:
        name: dataset name.
        load: the loader, called with ``class_names`` as a list (or None: it finds the classes in
            the files and sets ``thing_classes`` itself when it runs).
        class_names: the classes, or None.
        metadata: the user's metadata; overrides the rest.
        defaults: metadata filled in unless ``metadata`` gives it (the folders,
            ``evaluator_type``); ``thing_classes`` too when ``class_names`` is given.
    """
    names = None if class_names is None else list(class_names)
    DatasetCatalog.register(name, lambda: load(names))
    md = dict(defaults)
    if names is not None:
        md["thing_classes"] = names
    md.update(metadata or {})
    MetadataCatalog.get(name).set(**md)

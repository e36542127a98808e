"""roLabelImg XML annotations (one file per image), as standard dataset dicts (format of
:mod:`rotated_det.data.datasets.dota`), and back.

roLabelImg (github.com/cgvict/roLabelImg) extends labelImg's Pascal VOC files with rotated
boxes::

    <annotation verified="no">
      <filename>P0001</filename>          <- the image's stem (labelImg writes the file name)
      <path>/data/images/P0001.png</path>
      <size><width>1000</width><height>800</height><depth>3</depth></size>
      <object>
        <type>robndbox</type><name>ship</name><difficult>0</difficult>
        <robndbox><cx>580.79</cx><cy>343.29</cy><w>775.04</w><h>170.22</h>
                  <angle>2.889813</angle></robndbox>
      </object>
      <object>
        <type>bndbox</type><name>ship</name><difficult>0</difficult>
        <bndbox><xmin>178</xmin><ymin>246</ymin><xmax>974</xmax><ymax>504</ymax></bndbox>
      </object>
    </annotation>

Angle convention. ``angle`` is in RADIANS, in [0, pi), and turns CLOCKWISE on screen: roLabelImg
draws the corners ``(cx, cy) + R(angle) (+-w/2, +-h/2)`` with ``R = [[cos, -sin], [sin, cos]]``
in image coordinates (y down), so the ``w`` side points along ``(cos angle, sin angle)`` (its
``PascalVocReader.addRotatedShape``), and it saves ``angle = direction % pi`` where rotating a
shape clockwise on screen increases ``direction``. That is OpenCV's ``RotatedRect`` convention
in radians, the one of HRSC2016's ``mbox_ang``; rotated_det's angle is counter-clockwise in
degrees, so ``angle_deg = -degrees(angle)`` with the same ``w`` and ``h``
(:func:`rotated_det.data.datasets.hrsc.hrsc_mbox_to_rbox`, the one such conversion), then
normalised to "le90" (``w >= h``, angle in [-90, 90)). Example: ``cx=50 cy=50 w=40 h=10
angle=0.5236`` (30 degrees clockwise: the long side descends to the right on screen, its right end
at about (67.3, 60)) becomes ``(50, 50, 40, 10, -30)``.

``<bndbox>`` objects (labelImg's axis-aligned boxes, ``xmin ymin xmax ymax`` pixels, taken as
they are) become angle-0 boxes. ``poly`` in the dicts is the box's corners
(:func:`rotated_det.structures.rbox_to_poly`). ``difficult`` is ``<difficult>`` (0 or 1; missing
means 0). ``image_id`` is the XML file's stem.

The objects are read by the one rotated-VOC parser, schema ``"rolabelimg"`` of
:mod:`rotated_det.data.datasets.voc_rotated` (also used for RSDD-SAR with split files): malformed
input (not XML, a root other than ``<annotation>``, an object without ``<name>``, a ``<type>``
other than ``robndbox``/``bndbox``, a missing or non-numeric box value, a negative size) raises an
error naming the file, the line and the object (``a.xml:14: <object> #0: <robndbox><w> 'x' is not
a finite number``).

The image, in ``image_dir`` (default: the XML folder), is the first that exists of:
``<xml stem>.<image ext>``, ``<filename>`` (with or without an extension), then ``<path>``
(absolute, or relative to the XML file). ``height``/``width`` come from ``<size>`` when both are
positive, else from the image file.

:func:`convert_to_rolabelimg_xml` writes a dataset dict as such a file (every object a
``robndbox``, values at full float precision where roLabelImg rounds to 4 and 6 decimals);
loading it back gives the same rectangles.
"""

from __future__ import annotations

import logging
import math
import os
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rotated_det.data.catalog import MetadataCatalog
from rotated_det.data.datasets.loading import (
    IMAGE_EXTENSIONS,
    gc_paused,
    image_size,
    list_images,
    register_label_folder,
)
from rotated_det.data.datasets.voc_rotated import VOC_ROTATED_SCHEMAS, VocRotatedBatch
from rotated_det.data.datasets.xml_labels import read_xml, xml_image_size
from rotated_det.structures import BoxMode

__all__ = [
    "load_rolabelimg_instances",
    "register_rolabelimg_instances",
    "convert_to_rolabelimg_xml",
    "rbox_to_rolabelimg",
]

logger = logging.getLogger(__name__)

_RBOX_TAGS = VOC_ROTATED_SCHEMAS["rolabelimg"].param_tags  # cx, cy, w, h, angle


def _find_image(root: ET.Element, xml_path: str, image_dir: str, by_stem: dict[str, str]) -> str:
    """The image of ``xml_path`` (module doc); ``by_stem`` maps stems to file names in
    ``image_dir``."""
    stem = os.path.splitext(os.path.basename(xml_path))[0]
    tried = [f"{stem}.<ext>"]
    if stem in by_stem:
        return os.path.join(image_dir, by_stem[stem])
    filename = (root.findtext("filename") or "").strip()
    if filename:
        name = os.path.basename(filename.replace("\\", "/"))
        tried.append(name)
        if os.path.isfile(os.path.join(image_dir, name)):
            return os.path.join(image_dir, name)
        if os.path.splitext(name)[0] in by_stem:
            return os.path.join(image_dir, by_stem[os.path.splitext(name)[0]])
    img_path = (root.findtext("path") or "").strip()
    if img_path:
        p = os.path.join(os.path.dirname(xml_path), img_path)  # an absolute path stays
        tried.append(p)
        if os.path.isfile(p):
            return p
    raise FileNotFoundError(
        f"{xml_path}: no image found in {image_dir} (tried {', '.join(tried)}); pass image_dir"
    )


@gc_paused()
def load_rolabelimg_instances(
    xml_dir: str,
    image_dir: str | None = None,
    class_names: Sequence[str] | None = None,
    *,
    unknown_classes: str = "error",
    image_exts: Sequence[str] = IMAGE_EXTENSIONS,
    dataset_name: str | None = None,
) -> list[dict]:
    """Load a folder of roLabelImg XML files as standard dataset dicts (module doc), one per
    file, in file-name order. (For a dataset with split files and ``<id>.xml`` /
    ``<id><ext>`` pairs, e.g. RSDD-SAR, see
    :func:`rotated_det.data.datasets.voc_rotated.load_voc_rotated_instances` with schema
    ``"rolabelimg"``.)

    Args:
        xml_dir: folder of ``*.xml`` files (other files are ignored).
        image_dir: folder of the images; default ``xml_dir``.
        class_names: categories; ``category_id`` is the index into this list (names match
            exactly). None: the sorted names found in the files (set as ``thing_classes`` of
            ``dataset_name``'s metadata when ``dataset_name`` is given, and logged).
        unknown_classes: "error" (default): a name not in ``class_names`` raises naming the file,
            line and object; "skip": such objects are dropped and counted.
        image_exts: image extensions looked for.
        dataset_name: name for log messages and metadata.
    Returns:
        dataset dicts; ``bbox`` ``[cx, cy, w, h, angle_deg]`` (XYWHA_ABS, "le90"), ``poly`` its
        corners.
    """
    if unknown_classes not in ("error", "skip"):
        raise ValueError(f"unknown_classes must be 'error' or 'skip', got {unknown_classes!r}")
    t0 = time.perf_counter()
    tag = dataset_name or xml_dir
    if not os.path.isdir(xml_dir):
        raise FileNotFoundError(f"roLabelImg folder {xml_dir} does not exist")
    files = sorted(
        f for f in os.listdir(xml_dir) if f.lower().endswith(".xml") and not f.startswith(".")
    )
    if not files:
        raise FileNotFoundError(f"No roLabelImg .xml files in {xml_dir} ({tag})")
    image_dir = xml_dir if image_dir is None else image_dir
    by_stem: dict[str, str] = {}
    for f in list_images(image_dir, image_exts):
        by_stem.setdefault(os.path.splitext(f)[0], f)

    batch = VocRotatedBatch("rolabelimg")
    dicts: list[dict[str, Any]] = []
    for f in files:
        xpath = os.path.join(xml_dir, f)
        root = read_xml(xpath, "roLabelImg annotation")
        batch.add_file(xpath, root)
        img = _find_image(root, xpath, image_dir, by_stem)
        h, w = xml_image_size(root, xpath, unknown_ok=True) or image_size(img)
        dicts.append(
            {"file_name": img, "height": h, "width": w, "image_id": os.path.splitext(f)[0]}
        )

    if class_names is None:
        class_names = sorted(set(batch.names))
        logger.info(f"{tag}: classes found in the roLabelImg files: {class_names}")
        if dataset_name is not None:
            MetadataCatalog.get(dataset_name).set(thing_classes=list(class_names))
    class_to_id = {c: i for i, c in enumerate(class_names)}
    cats = np.fromiter((class_to_id.get(n, -1) for n in batch.names), np.int64, len(batch.names))
    for rec, anns in zip(dicts, batch.annotations(cats, class_names, unknown_classes, tag)):
        rec["annotations"] = anns
    n_obj = sum(len(d["annotations"]) for d in dicts)
    logger.info(
        f"Loaded {len(dicts)} images and {n_obj} objects from roLabelImg files in {xml_dir} "
        f"({tag}) in {time.perf_counter() - t0:.2f}s"
    )
    return dicts


def register_rolabelimg_instances(
    name: str,
    metadata: dict,
    xml_dir: str,
    image_dir: str | None = None,
    class_names: Sequence[str] | None = None,
    **kwargs,
) -> None:
    """Register a folder of roLabelImg files (see :func:`load_rolabelimg_instances`).

    Args:
        name: dataset name, e.g. ``"my_rolabelimg_train"``.
        metadata: extra metadata; ``thing_classes`` (when ``class_names`` is given; else set
            from the files when loaded), ``xml_dir``, ``image_root`` and
            ``evaluator_type="dota"`` are filled in unless given.
        xml_dir, image_dir, class_names, kwargs: passed to :func:`load_rolabelimg_instances`.
    """
    register_label_folder(
        name,
        lambda names: load_rolabelimg_instances(
            xml_dir, image_dir, names, dataset_name=name, **kwargs
        ),
        class_names,
        metadata,
        xml_dir=xml_dir,
        image_root=image_dir if image_dir is not None else xml_dir,
        evaluator_type="dota",
    )


def rbox_to_rolabelimg(boxes: np.ndarray) -> np.ndarray:
    """``[N, 5]`` XYWHA_ABS boxes (degrees, counter-clockwise) -> ``[N, 5]`` roLabelImg
    ``(cx, cy, w, h, angle)`` (radians, clockwise, in [0, pi) as roLabelImg saves it); the
    inverse of the loader's conversion up to the le90 normalisation."""
    out = np.asarray(boxes, dtype=np.float64).reshape(-1, 5).copy()
    out[:, 4] = np.mod(-np.radians(out[:, 4]), math.pi)
    out[:, 4] = np.where(out[:, 4] >= math.pi, 0.0, out[:, 4])  # rounding of tiny negatives
    return out


def convert_to_rolabelimg_xml(
    record: Mapping, class_names: Sequence[str], image_path: str | None = None
) -> str:
    """A dataset dict as a roLabelImg XML document (module doc) that
    :func:`load_rolabelimg_instances` reads back to the same rectangles. A 4-point ``poly`` that
    is not a rectangle is not kept: the file holds the ``bbox``.

    Args:
        record: a standard dataset dict (``file_name``, ``height``, ``width``, ``annotations``
            with ``bbox`` in XYWHA_ABS, XYWH_ABS or XYXY_ABS).
        class_names: names of the ``category_id`` values.
        image_path: ``<path>`` to write; default ``record["file_name"]``.
    Returns:
        the XML text (UTF-8, indented).
    """
    fname = str(record["file_name"])
    anns = list(record.get("annotations", ()))
    boxes = np.zeros((len(anns), 5))
    for j, ann in enumerate(anns):
        mode = BoxMode(ann.get("bbox_mode", BoxMode.XYWHA_ABS))
        box = [float(v) for v in BoxMode.convert(list(ann["bbox"]), mode, BoxMode.XYWHA_ABS)]
        if len(box) != 5 or not all(math.isfinite(v) for v in box):
            raise ValueError(f"{fname}: annotation #{j} has bbox {ann['bbox']!r}: not finite")
        boxes[j] = box
    rows = rbox_to_rolabelimg(boxes).tolist()

    def sub(parent: ET.Element, tag: str, text: object) -> ET.Element:
        el = ET.SubElement(parent, tag)
        el.text = str(text)
        return el

    root = ET.Element("annotation", verified="no")
    sub(root, "folder", os.path.basename(os.path.dirname(fname)))
    sub(root, "filename", os.path.basename(fname))
    sub(root, "path", fname if image_path is None else image_path)
    sub(ET.SubElement(root, "source"), "database", "Unknown")
    size = ET.SubElement(root, "size")
    sub(size, "width", int(record["width"]))
    sub(size, "height", int(record["height"]))
    sub(size, "depth", 3)
    sub(root, "segmented", 0)
    for j, (ann, row) in enumerate(zip(anns, rows)):
        cat = int(ann["category_id"])
        if not 0 <= cat < len(class_names):
            raise ValueError(
                f"{fname}: annotation #{j} has category_id {cat}, outside [0, {len(class_names)})"
            )
        obj = ET.SubElement(root, "object")
        sub(obj, "type", "robndbox")
        sub(obj, "name", class_names[cat])
        sub(obj, "pose", "Unspecified")
        sub(obj, "truncated", 0)
        sub(obj, "difficult", 1 if ann.get("difficult") else 0)
        rb = ET.SubElement(obj, "robndbox")
        for t, v in zip(_RBOX_TAGS, row):
            sub(rb, t, repr(float(v)))
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode") + "\n"

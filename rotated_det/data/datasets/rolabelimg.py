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
(:func:`rotated_det.data.datasets.hrsc.hrsc_mbox_to_rbox`), then normalised to "le90" (``w >= h``,
angle in [-90, 90)). Example: ``cx=50 cy=50 w=40 h=10 angle=0.5236`` (30 degrees clockwise: the
long side descends to the right on screen, its right end at about (67.3, 60)) becomes
``(50, 50, 40, 10, -30)``.

``<bndbox>`` objects (labelImg's axis-aligned boxes, ``xmin ymin xmax ymax`` pixels, taken as
they are) become angle-0 boxes. An object without ``<type>`` is read by the box element it has.
``poly`` in the dicts is the box's corners (:func:`rotated_det.structures.rbox_to_poly`).
``difficult`` is ``<difficult>`` (0 or 1; missing means 0). ``image_id`` is the XML file's stem.

The image, in ``image_dir`` (default: the XML folder), is the first that exists of:
``<xml stem>.<image ext>``, ``<filename>`` (with or without an extension), then ``<path>``
(absolute, or relative to the XML file). ``height``/``width`` come from ``<size>`` when both are
positive, else from the image file. Malformed input (not XML, an object without ``<name>`` or
with a missing or non-numeric box value) raises an error naming the file and the object
(``<object> #i``) and element.

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
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from rotated_det.data.catalog import DatasetCatalog, MetadataCatalog
from rotated_det.data.datasets.hrsc import hrsc_mbox_to_rbox
from rotated_det.data.datasets.loading import IMAGE_EXTENSIONS, gc_paused, image_size, list_images
from rotated_det.structures import BoxMode, rbox_to_poly

__all__ = [
    "RoLabelImgObjects",
    "parse_rolabelimg_xml",
    "load_rolabelimg_instances",
    "register_rolabelimg_instances",
    "convert_to_rolabelimg_xml",
    "rbox_to_rolabelimg",
]

logger = logging.getLogger(__name__)

_RBOX_TAGS: tuple[str, ...] = ("cx", "cy", "w", "h", "angle")
_HBOX_TAGS: tuple[str, ...] = ("xmin", "ymin", "xmax", "ymax")


@dataclass
class RoLabelImgObjects:
    """The objects of one roLabelImg file, in file order.

    Attributes:
        names: N class names as written.
        boxes: ``[N, 5]`` float64 ``(cx, cy, w, h, angle)`` in roLabelImg's convention (pixels;
            radians, clockwise on screen); ``<bndbox>`` objects have angle 0.
        difficult: ``[N]`` int64, 0 or 1.
        filename: ``<filename>`` text, or None.
        path: ``<path>`` text, or None.
        height, width: ``<size>`` values, or None when absent or not positive.
    """

    names: list[str]
    boxes: np.ndarray
    difficult: np.ndarray
    filename: str | None = None
    path: str | None = None
    height: int | None = None
    width: int | None = None

    def __len__(self) -> int:
        return len(self.names)


def _number(node: ET.Element, tag: str, where: str) -> float:
    text = node.findtext(tag)
    if text is None:
        raise ValueError(f"{where}: <{node.tag}> has no <{tag}>")
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"{where}: <{node.tag}>/<{tag}> is {text!r}, not a number") from None
    if not math.isfinite(v):
        raise ValueError(f"{where}: <{node.tag}>/<{tag}> is {text!r}, not a finite number")
    return v


def _where(path: str, i: int, name: str) -> str:
    return f"{path}: <object> #{i} ({name!r})"


def _text(children: dict[str, ET.Element], tag: str) -> str:
    """The stripped text of child ``tag`` ("" when absent or empty)."""
    c = children.get(tag)
    return c.text.strip() if c is not None and c.text else ""


def _size(root: ET.Element, tag: str) -> int | None:
    text = root.findtext(f"size/{tag}")
    try:
        v = int(float(text)) if text is not None else 0
    except ValueError:
        return None  # the image file gives the size
    return v if v > 0 else None


def parse_rolabelimg_xml(content: str | bytes, path: str = "<string>") -> RoLabelImgObjects:
    """The objects of a roLabelImg (or labelImg Pascal VOC) XML document (module doc).

    Args:
        content: the file's content.
        path: the file, for error messages.
    Raises:
        ValueError: naming ``path``, the object (``<object> #i``, 0-based, with its name) and
            the element: malformed XML (with line and column), a root other than
            ``<annotation>``, an object without ``<name>``, an unknown ``<type>``, a missing
            box element or value, a non-numeric or non-finite value, a ``<difficult>`` other than
            0 or 1.
    """
    try:
        root = ET.fromstring(content)
    except ET.ParseError as e:
        line, col = e.position
        raise ValueError(f"{path}:{line}:{col}: not well-formed XML: {e}") from None
    if root.tag != "annotation":
        raise ValueError(f"{path}: root element is <{root.tag}>, expected <annotation>")
    names: list[str] = []
    diffs: list[int] = []
    # box value strings, converted once per file; (index, name, box element, tags) per object for
    # the precise error when that conversion fails
    values: dict[tuple[str, ...], list[str]] = {_RBOX_TAGS: [], _HBOX_TAGS: []}
    rows: dict[tuple[str, ...], list[int]] = {_RBOX_TAGS: [], _HBOX_TAGS: []}
    nodes: list[tuple[int, str, ET.Element, tuple[str, ...]]] = []
    for i, obj in enumerate(root.iterfind("object")):
        el = {c.tag: c for c in obj}  # one pass over the children (later ones win)
        name = _text(el, "name")
        if not name:
            raise ValueError(f"{path}: <object> #{i} has no <name>")
        kind = _text(el, "type")
        rb, bb = el.get("robndbox"), el.get("bndbox")
        if kind not in ("", "robndbox", "bndbox"):
            raise ValueError(
                f"{_where(path, i, name)}: <type> is {kind!r}, expected 'robndbox' or 'bndbox'"
            )
        node: ET.Element
        tags: tuple[str, ...]
        if kind == "robndbox" or (not kind and rb is not None):
            if rb is None:
                raise ValueError(
                    f"{_where(path, i, name)}: <type> robndbox but no <robndbox> element"
                )
            node, tags = rb, _RBOX_TAGS
        elif bb is not None:
            node, tags = bb, _HBOX_TAGS
        else:
            raise ValueError(f"{_where(path, i, name)}: no <robndbox> or <bndbox> element")
        sub = {c.tag: c.text or "" for c in node}
        texts = [sub.get(t) for t in tags]
        if None in texts:
            raise ValueError(
                f"{_where(path, i, name)}: <{node.tag}> has no <{tags[texts.index(None)]}>"
            )
        values[tags].extend(cast(list[str], texts))  # no None: checked above
        rows[tags].append(len(names))
        nodes.append((i, name, node, tags))
        d = _text(el, "difficult") or "0"
        if d not in ("0", "1"):
            raise ValueError(f"{_where(path, i, name)}: <difficult> is {d!r}, expected 0 or 1")
        names.append(name)
        diffs.append(int(d))
    boxes = np.zeros((len(names), 5))
    try:
        rbox = np.array(values[_RBOX_TAGS], dtype=np.float64).reshape(-1, 5)
        x0, y0, x1, y1 = np.array(values[_HBOX_TAGS], dtype=np.float64).reshape(-1, 4).T
        ok = bool(np.isfinite(rbox).all() and np.isfinite([x0, y0, x1, y1]).all())
    except ValueError:
        ok = False
    if not ok:
        for i, name, node, tags in nodes:
            for t in tags:
                _number(node, t, _where(path, i, name))
        raise ValueError(f"{path}: malformed box values")  # not reached: _number names them
    boxes[rows[_RBOX_TAGS]] = rbox
    boxes[rows[_HBOX_TAGS]] = np.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, 0 * x0], 1)
    filename = root.findtext("filename")
    img_path = root.findtext("path")
    return RoLabelImgObjects(
        names=names,
        boxes=boxes,
        difficult=np.array(diffs, dtype=np.int64),
        filename=filename.strip() if filename and filename.strip() else None,
        path=img_path.strip() if img_path and img_path.strip() else None,
        height=_size(root, "height"),
        width=_size(root, "width"),
    )


def _find_image(
    objs: RoLabelImgObjects, xml_path: str, image_dir: str, by_stem: dict[str, str]
) -> str:
    """The image of ``xml_path`` (module doc); ``by_stem`` maps stems to file names in
    ``image_dir``."""
    stem = os.path.splitext(os.path.basename(xml_path))[0]
    tried = [f"{stem}.<ext>"]
    if stem in by_stem:
        return os.path.join(image_dir, by_stem[stem])
    if objs.filename:
        name = os.path.basename(objs.filename.replace("\\", "/"))
        tried.append(name)
        if os.path.isfile(os.path.join(image_dir, name)):
            return os.path.join(image_dir, name)
        if os.path.splitext(name)[0] in by_stem:
            return os.path.join(image_dir, by_stem[os.path.splitext(name)[0]])
    if objs.path:
        p = os.path.join(os.path.dirname(xml_path), objs.path)  # an absolute path stays
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
    file, in file-name order.

    Args:
        xml_dir: folder of ``*.xml`` files (other files are ignored).
        image_dir: folder of the images; default ``xml_dir``.
        class_names: categories; ``category_id`` is the index into this list. None: the sorted
            names found in the files (set as ``thing_classes`` of ``dataset_name``'s metadata
            when ``dataset_name`` is given, and logged).
        unknown_classes: "error" (default): a name not in ``class_names`` raises naming the file
            and object; "skip": such objects are dropped and counted.
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

    parsed: list[tuple[dict, RoLabelImgObjects, str]] = []
    for f in files:
        xpath = os.path.join(xml_dir, f)
        try:
            with open(xpath, "rb") as fh:
                content = fh.read()
        except OSError as e:
            raise OSError(f"Cannot read roLabelImg file {xpath}: {e}") from e
        objs = parse_rolabelimg_xml(content, xpath)
        img = _find_image(objs, xpath, image_dir, by_stem)
        if objs.height is None or objs.width is None:
            h, w = image_size(img)
        else:
            h, w = objs.height, objs.width
        rec = {"file_name": img, "height": h, "width": w, "image_id": os.path.splitext(f)[0]}
        parsed.append((rec, objs, xpath))

    if class_names is None:
        found = sorted({n for _, o, _ in parsed for n in o.names})
        class_names = found
        logger.info(f"{tag}: classes found in the roLabelImg files: {found}")
        if dataset_name is not None:
            MetadataCatalog.get(dataset_name).set(thing_classes=list(found))
    class_to_id = {c: i for i, c in enumerate(class_names)}
    names_all = [n for _, o, _ in parsed for n in o.names]
    cats = np.fromiter((class_to_id.get(n, -1) for n in names_all), np.int64, len(names_all))
    if unknown_classes == "error" and (cats < 0).any():
        j = int(np.argmax(cats < 0))
        sizes = np.cumsum([len(o) for _, o, _ in parsed])
        k = int(np.searchsorted(sizes, j, side="right"))
        local = j - (int(sizes[k - 1]) if k else 0)
        raise KeyError(
            f"{parsed[k][2]}: <object> #{local}: unknown class {names_all[j]!r}; known classes "
            f"are: {', '.join(class_names)}"
        )
    # one conversion for the whole dataset
    boxes = hrsc_mbox_to_rbox(np.concatenate([o.boxes for _, o, _ in parsed]))
    polys = rbox_to_poly(boxes)
    diffs = np.concatenate([o.difficult for _, o, _ in parsed])
    b_all, c_all, d_all, p_all = boxes.tolist(), cats.tolist(), diffs.tolist(), polys.tolist()
    dicts, start = [], 0
    for rec, objs, _ in parsed:
        end = start + len(objs)
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
    logger.info(
        f"Loaded {len(dicts)} images and {n_obj} objects from roLabelImg files in {xml_dir} "
        f"({tag}) in {time.perf_counter() - t0:.2f}s"
    )
    if len(cats) > n_obj:
        logger.warning(f"{tag}: {len(cats) - n_obj} objects of unknown classes skipped.")
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
    names = None if class_names is None else list(class_names)
    DatasetCatalog.register(
        name,
        lambda: load_rolabelimg_instances(xml_dir, image_dir, names, dataset_name=name, **kwargs),
    )
    md: dict[str, Any] = {
        "xml_dir": xml_dir,
        "image_root": image_dir if image_dir is not None else xml_dir,
        "evaluator_type": "dota",
    }
    if names is not None:
        md["thing_classes"] = names
    md.update(metadata or {})
    MetadataCatalog.get(name).set(**md)


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

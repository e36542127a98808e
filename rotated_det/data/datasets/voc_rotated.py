"""Rotated boxes in Pascal-VOC-style XML: DIOR-R, RBox-SSDD (SSDD+), RSDD-SAR and roLabelImg
files, loaded as standard dataset dicts (format of :mod:`rotated_det.data.datasets.dota`).

One XML file per image, named like the image (``00001.xml`` for ``00001.jpg``)::

    <annotation>
      <size><width>800</width><height>800</height><depth>3</depth></size>   optional
      <object>
        <name>golffield</name>                 class (matched without regard to case)
        <difficult>0</difficult>               optional: 0 (default) or 1
        <robndbox>...</robndbox>               the rotated box, in the schema's element
      </object>
      ...
    </annotation>

Schemas (:data:`VOC_ROTATED_SCHEMAS`), i.e. where the rotated box is:

``"dior_r"`` (DIOR-R): ``<robndbox>`` holding the corners ``x_left_top, y_left_top, x_right_top,
    y_right_top, x_right_bottom, y_right_bottom, x_left_bottom, y_left_bottom`` (pixels). The box is
    the minimum-area rectangle of the 4 points (:func:`rotated_det.structures.poly_to_rbox`), as
    for DOTA labels; the object's ``<angle>`` element is not needed.
``"ssdd"`` (RBox-SSDD, SSDD+): ``<rotated_bndbox>`` holding the corners ``x1, y1, ..., x4, y4``
    and the parameters ``rotated_bbox_cx, rotated_bbox_cy, rotated_bbox_w, rotated_bbox_h,
    rotated_bbox_theta`` (theta in DEGREES). The corners are used when present, else the parameters.
``"rolabelimg"`` (roLabelImg, RSDD-SAR): ``<robndbox>`` holding ``cx, cy, w, h, angle`` (angle in
    RADIANS); an ``<object>``'s ``<type>``, when present, is ``robndbox`` or ``bndbox``. The folder
    loader of :mod:`rotated_det.data.datasets.rolabelimg` reads its files with this schema too.

Angle conversion (parameter forms). SSDD's ``rotated_bbox_theta`` and roLabelImg's ``angle`` are
OpenCV-style: the ``w`` side points along ``(cos t, sin t)`` in image coordinates (x right, y down),
so a positive ``t`` turns clockwise on screen: HRSC2016's ``mbox_ang`` convention. rotated_det's
angle is counter-clockwise (docs/design.md), so ``angle = -degrees(t)`` with the same ``w`` and
``h`` (:func:`rotated_det.data.datasets.hrsc.hrsc_mbox_to_rbox`, the one such conversion). Worked
example (an RBox-SSDD object): ``(cx, cy, w, h, theta) = (242, 96, 98, 45, 85.815)`` becomes
``(242, 96, 98, 45, -85.815)``, whose corners are about ``(215, 48), (261, 45), (268, 143),
(223, 147)``: the file's own ``x1 .. y4``. Every box is then written in the ``"le90"``
normalisation (``w >= h``, angle in [-90, 90)), like the DOTA and HRSC loaders.

An object without the schema's element but with a VOC ``<bndbox>`` (``xmin, ymin, xmax, ymax``;
roLabelImg writes one for an axis-aligned rectangle) loads as an angle-0 box; such objects are
counted in the log. Anything else malformed (a root other than ``<annotation>``, no box, a missing
coordinate, a value that is not a number, a negative size, a difficult flag other than 0/1, an
unknown class) raises an error naming the file, the line and the ``<object>`` (``a.xml:14:
<object> #0: ...``; :class:`VocRotatedBatch` is the one parser).
"""

from __future__ import annotations

import logging
import os
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from rotated_det.data.catalog import DatasetCatalog, MetadataCatalog
from rotated_det.data.datasets.hrsc import hrsc_mbox_to_rbox
from rotated_det.data.datasets.loading import gc_paused, image_size
from rotated_det.data.datasets.xml_labels import (
    parse_floats,
    read_xml,
    where_element,
    xml_image_size,
)
from rotated_det.structures import BoxMode, poly_to_rbox, rbox_to_poly

__all__ = [
    "DIOR_R_CLASSES",
    "VocRotatedSchema",
    "VOC_ROTATED_SCHEMAS",
    "VocRotatedLabels",
    "VocRotatedBatch",
    "parse_voc_rotated_xml",
    "load_voc_rotated_instances",
    "register_voc_rotated_instances",
]

logger = logging.getLogger(__name__)

# The 20 DIOR-R classes, in MMRotate's order (so that per-class tables line up). DIOR's files
# spell some with capitals ("Expressway-Service-area"); names are matched without regard to case.
DIOR_R_CLASSES = (
    "airplane", "airport", "baseballfield", "basketballcourt", "bridge", "chimney",
    "expressway-service-area", "expressway-toll-station", "dam", "golffield",
    "groundtrackfield", "harbor", "overpass", "ship", "stadium", "storagetank", "tenniscourt",
    "trainstation", "vehicle", "windmill",
)  # fmt: skip


@dataclass(frozen=True)
class VocRotatedSchema:
    """Where an ``<object>``'s rotated box is (module doc).

    Attributes:
        box_tag: the element holding the box, a child of ``<object>``.
        corner_tags: 8 child elements ``x1, y1, ..., x4, y4`` (pixels), or empty.
        param_tags: 5 child elements ``cx, cy, w, h, t`` (pixels; ``t`` clockwise on screen),
            or empty; used when the corners are absent.
        angle_unit: ``"deg"`` or ``"rad"``, the unit of ``t``.
        types: the ``<type>`` texts an ``<object>`` may have (any other raises), or empty to
            ignore ``<type>``.
    """

    box_tag: str
    corner_tags: tuple[str, ...] = ()
    param_tags: tuple[str, ...] = ()
    angle_unit: str = "rad"
    types: tuple[str, ...] = ()


VOC_ROTATED_SCHEMAS = {
    "dior_r": VocRotatedSchema(
        "robndbox",
        corner_tags=(
            "x_left_top",
            "y_left_top",
            "x_right_top",
            "y_right_top",
            "x_right_bottom",
            "y_right_bottom",
            "x_left_bottom",
            "y_left_bottom",
        ),
    ),  # fmt: skip
    "ssdd": VocRotatedSchema(
        "rotated_bndbox",
        corner_tags=("x1", "y1", "x2", "y2", "x3", "y3", "x4", "y4"),
        param_tags=(
            "rotated_bbox_cx",
            "rotated_bbox_cy",
            "rotated_bbox_w",
            "rotated_bbox_h",
            "rotated_bbox_theta",
        ),
        angle_unit="deg",
    ),  # fmt: skip
    "rolabelimg": VocRotatedSchema(
        "robndbox",
        param_tags=("cx", "cy", "w", "h", "angle"),
        angle_unit="rad",
        types=("robndbox", "bndbox"),
    ),
}

_HBOX_TAGS = ("xmin", "ymin", "xmax", "ymax")
_OBJECT = ("object",)
_CORNERS, _PARAMS, _HBOX = 0, 1, 2


@dataclass
class VocRotatedLabels:
    """The objects of one annotation file.

    Attributes:
        boxes: ``[N, 5]`` float64 ``(cx, cy, w, h, angle_deg)``, ``BoxMode.XYWHA_ABS``, "le90".
        polys: ``[N, 8]`` float64 corners: as written for corner schemas, else the box's corners.
        class_names: N names as written (stripped).
        difficult: ``[N]`` int64, 0 or 1.
        image_size: ``(height, width)`` from ``<size>``, or None.
    """

    boxes: np.ndarray
    polys: np.ndarray
    class_names: list[str]
    difficult: np.ndarray
    image_size: tuple[int, int] | None


def _schema(schema: str | VocRotatedSchema) -> VocRotatedSchema:
    if isinstance(schema, VocRotatedSchema):
        return schema
    if schema not in VOC_ROTATED_SCHEMAS:
        raise ValueError(f"schema must be one of {sorted(VOC_ROTATED_SCHEMAS)}, got {schema!r}")
    return VOC_ROTATED_SCHEMAS[schema]


class VocRotatedBatch:
    """The one parser of rotated VOC-style ``<object>`` elements (every schema, and the roLabelImg
    folder loader of :mod:`rotated_det.data.datasets.rolabelimg`): objects of many files are
    added one file at a time, their numbers kept as strings until one conversion for all.

    Attributes:
        schema: the box form.
        files: the files added, in order.
        names: N class names as written (stripped), over all files in order.
        difficult: N flags, 0 or 1.
        counts: the number of objects of each file.
    """

    def __init__(self, schema: str | VocRotatedSchema):
        self.schema = _schema(schema)
        self.files: list[str] = []
        self.counts: list[int] = []
        self.names: list[str] = []
        self.difficult: list[int] = []
        # per kind: flat number strings and (global object index, file index, object index)
        self.values: tuple[list[str], list[str], list[str]] = ([], [], [])
        self.origin: tuple[list[tuple[int, int, int]], ...] = ([], [], [])

    def add_file(self, path: str, root: ET.Element) -> int:
        """Append the objects of one parsed file (``root`` from
        :func:`~rotated_det.data.datasets.xml_labels.read_xml`); returns their number.

        Raises:
            ValueError: naming the file, line and ``<object> #i`` (module doc).
        """
        s = self.schema
        if root.tag != "annotation":
            raise ValueError(f"{path}: root element is <{root.tag}>, expected <annotation>")
        fi = len(self.files)
        self.files.append(path)
        objs = root.findall("object")
        for oi, obj in enumerate(objs):
            name = obj.findtext("name")
            if name is None or not name.strip():
                raise ValueError(f"{where_element(path, _OBJECT, oi)} has no <name>")
            diff = obj.findtext("difficult")
            if diff is None:
                d = 0
            else:
                d = {"0": 0, "1": 1}.get(diff.strip(), -1)
                if d < 0:
                    raise ValueError(
                        f"{where_element(path, _OBJECT, oi)}: <difficult> is {diff!r}; "
                        "expected 0 or 1"
                    )
            kind_text = obj.findtext("type")
            if s.types and kind_text is not None and kind_text.strip() not in s.types:
                raise ValueError(
                    f"{where_element(path, _OBJECT, oi)}: <type> is {kind_text!r}; expected "
                    f"{' or '.join(s.types)}"
                )
            box = obj.find(s.box_tag)
            if box is not None:
                kind, tags = _CORNERS, s.corner_tags
                texts = [box.findtext(t) for t in tags]
                if not tags or (None in texts and s.param_tags):  # the parameters instead
                    kind, tags = _PARAMS, s.param_tags
                    texts = [box.findtext(t) for t in tags]
            else:
                hbox = obj.find("bndbox")
                if hbox is None:
                    raise ValueError(
                        f"{where_element(path, _OBJECT, oi)} has no <{s.box_tag}> (nor an "
                        f"axis-aligned <bndbox>); expected <{s.box_tag}> with "
                        f"{', '.join(s.corner_tags or s.param_tags)}"
                    )
                kind, tags = _HBOX, _HBOX_TAGS
                texts = [hbox.findtext(t) for t in tags]
            if None in texts:
                missing = [t for t, v in zip(tags, texts) if v is None]
                parent = "bndbox" if kind == _HBOX else s.box_tag
                want = " or ".join(
                    ", ".join(g) for g in (s.corner_tags, s.param_tags) if g and kind != _HBOX
                )
                raise ValueError(
                    f"{where_element(path, _OBJECT, oi)}: <{parent}> has no "
                    f"{', '.join(f'<{t}>' for t in missing)}"
                    + (f"; expected {want}" if want else "")
                )
            self.values[kind].extend(cast(list[str], texts))  # no None: checked above
            self.origin[kind].append((len(self.names), fi, oi))
            self.names.append(name.strip())
            self.difficult.append(d)
        self.counts.append(len(objs))
        return len(objs)

    def where(self, i: int) -> str:
        """``"<file>:<line>: <object> #<k>"`` of object ``i`` (0-based over all files)."""
        _, fi, oi = next(o for k in self.origin for o in k if o[0] == i)
        return where_element(self.files[fi], _OBJECT, oi)

    def convert(self) -> tuple[np.ndarray, np.ndarray]:
        """``([N, 5] le90 boxes, [N, 8] polygons)`` of every object added, in order (module doc;
        the parameter forms through :func:`rotated_det.data.datasets.hrsc.hrsc_mbox_to_rbox`).

        Raises:
            ValueError: naming the file, line and ``<object>`` of the first value that is not a
                finite number, or of a negative width or height.
        """
        s = self.schema
        n = len(self.names)
        boxes = np.zeros((n, 5), dtype=np.float64)
        polys = np.zeros((n, 8), dtype=np.float64)
        for kind, tags, width in (
            (_CORNERS, s.corner_tags, 8),
            (_PARAMS, s.param_tags, 5),
            (_HBOX, _HBOX_TAGS, 4),
        ):
            origin = self.origin[kind]
            if not origin:
                continue
            parent = "bndbox" if kind == _HBOX else s.box_tag

            def describe(row: int, origin: list[tuple[int, int, int]] = origin) -> str:
                return where_element(self.files[origin[row][1]], _OBJECT, origin[row][2])

            vals = parse_floats(
                self.values[kind], width, describe, [f"<{parent}><{t}>" for t in tags]
            )
            idx = np.fromiter((o[0] for o in origin), dtype=np.int64, count=len(origin))
            if kind == _CORNERS:
                polys[idx] = vals
                boxes[idx] = poly_to_rbox(vals)
                continue
            if kind == _PARAMS:  # OpenCV-style (cx, cy, w, h, t), t clockwise: radians
                mbox = vals.copy()
                if s.angle_unit == "deg":
                    mbox[:, 4] = np.radians(vals[:, 4])
            else:  # xmin, ymin, xmax, ymax -> angle 0
                mbox = np.concatenate(
                    [
                        (vals[:, :2] + vals[:, 2:]) / 2,
                        vals[:, 2:] - vals[:, :2],
                        np.zeros((len(vals), 1)),
                    ],
                    axis=1,
                )
            neg = np.nonzero((mbox[:, 2:4] < 0).any(axis=1))[0]
            if len(neg):
                raise ValueError(
                    f"{describe(int(neg[0]))}: <{parent}> gives a negative width or height "
                    f"{vals[int(neg[0])].tolist()}"
                )
            boxes[idx] = hrsc_mbox_to_rbox(mbox) + 0.0  # + 0.0: no -0.0 angles
            polys[idx] = rbox_to_poly(boxes[idx])
        return boxes, polys

    def annotations(
        self,
        category_ids: np.ndarray,
        class_names: Sequence[str],
        unknown_classes: str = "error",
        tag: str = "",
    ) -> list[list[dict]]:
        """Every file's objects as dataset-dict annotations (``bbox`` XYWHA_ABS le90, ``poly``,
        ``category_id``, ``difficult``), one list per file added; one :meth:`convert` for all.
        Objects of unknown classes (skipped) and of axis-aligned ``<bndbox>`` form are counted
        in the log.

        Args:
            category_ids: ``[N]`` int, each object's category, -1 for a name not in
                ``class_names``.
            class_names: the categories, for the error message.
            unknown_classes: "error" raises on the first -1; "skip" drops those objects.
            tag: the dataset, for log messages.
        Raises:
            KeyError: naming the file, line and object of an unknown class ("error").
        """
        cats = np.asarray(category_ids, dtype=np.int64)
        unknown = np.nonzero(cats < 0)[0]
        if len(unknown) and unknown_classes == "error":
            i = int(unknown[0])
            raise KeyError(
                f"{self.where(i)}: unknown class '{self.names[i]}'; known classes are: "
                f"{', '.join(class_names)}"
            )
        boxes, polys = self.convert()
        b_list, p_list, c_list, d_list = (
            boxes.tolist(),
            polys.tolist(),
            cats.tolist(),
            self.difficult,
        )
        out, start = [], 0
        for n in self.counts:
            out.append(
                [
                    {
                        "bbox": b_list[i],
                        "bbox_mode": BoxMode.XYWHA_ABS,
                        "category_id": c_list[i],
                        "difficult": d_list[i],
                        "poly": p_list[i],
                    }
                    for i in range(start, start + n)
                    if c_list[i] >= 0
                ]
            )
            start += n
        if len(unknown):
            logger.warning(f"{tag}: {len(unknown)} objects of unknown classes skipped.")
        if self.origin[_HBOX]:
            logger.info(
                f"{tag}: {len(self.origin[_HBOX])} objects had only an axis-aligned <bndbox> "
                "(loaded with angle 0)."
            )
        return out


def parse_voc_rotated_xml(path: str, schema: str | VocRotatedSchema) -> VocRotatedLabels:
    """Parse one annotation file (module doc).

    Args:
        path: the ``.xml`` file.
        schema: a key of :data:`VOC_ROTATED_SCHEMAS` (``"dior_r"``, ``"ssdd"``,
            ``"rolabelimg"``) or a :class:`VocRotatedSchema`.
    Raises:
        ValueError: naming the file, line and ``<object>`` for malformed content.
    """
    batch = VocRotatedBatch(schema)
    root = read_xml(path, "rotated VOC annotation")
    batch.add_file(path, root)
    boxes, polys = batch.convert()
    return VocRotatedLabels(
        boxes=boxes,
        polys=polys,
        class_names=batch.names,
        difficult=np.asarray(batch.difficult, dtype=np.int64),
        image_size=xml_image_size(root, path),
    )


def _read_ids(split_file: str | None, ann_dir: str) -> list[str]:
    if split_file is None:
        if not os.path.isdir(ann_dir):
            raise FileNotFoundError(f"Annotation directory {ann_dir} does not exist")
        return sorted(os.path.splitext(f)[0] for f in os.listdir(ann_dir) if f.endswith(".xml"))
    if not os.path.isfile(split_file):
        raise FileNotFoundError(f"Split file {split_file} does not exist")
    with open(split_file, encoding="utf-8-sig") as f:
        ids = [ln.strip() for ln in f if ln.strip()]
    if not ids:
        raise ValueError(f"Split file {split_file} lists no images")
    return ids


@gc_paused()
def load_voc_rotated_instances(
    image_dir: str,
    ann_dir: str,
    class_names: Sequence[str],
    schema: str | VocRotatedSchema,
    split_file: str | None = None,
    *,
    image_ext: str = ".jpg",
    unknown_classes: str = "error",
    dataset_name: str | None = None,
) -> list[dict]:
    """Load a dataset of rotated VOC-style XML annotations as standard dataset dicts (format of
    :mod:`rotated_det.data.datasets.dota`; ``poly`` as in :class:`VocRotatedLabels`).

    Args:
        image_dir: folder of the images ``<id><image_ext>``.
        ann_dir: folder of the annotations ``<id>.xml``.
        class_names: categories; ``category_id`` indexes this list. A ``<name>`` matches the
            class spelled the same without regard to case.
        schema: the box form, see :func:`parse_voc_rotated_xml`.
        split_file: a text file of image ids, one per line (e.g. DIOR's
            ``ImageSets/Main/trainval.txt``); None loads every ``.xml`` of ``ann_dir`` (sorted).
        image_ext: the images' extension.
        unknown_classes: "error" (default) raises a KeyError naming the file, line and object
            and listing the known classes; "skip" drops such objects (counted in the log).
        dataset_name: name for log messages.
    Raises:
        FileNotFoundError: a missing split file, annotation or image (naming it).
        ValueError / KeyError: malformed annotations, naming file, line and ``<object>``.
    """
    if unknown_classes not in ("error", "skip"):
        raise ValueError(f"unknown_classes must be 'error' or 'skip', got {unknown_classes!r}")
    t0 = time.perf_counter()
    batch = VocRotatedBatch(schema)
    ids = _read_ids(split_file, ann_dir)
    class_to_id = {c.lower(): i for i, c in enumerate(class_names)}
    dicts: list[dict[str, Any]] = []
    images: set[str] | None = None  # the files of image_dir, listed once when first needed
    for img_id in ids:
        xml = os.path.join(ann_dir, img_id + ".xml")
        try:
            root = read_xml(xml, "rotated VOC annotation")
        except FileNotFoundError:
            where = f" (listed in {split_file})" if split_file else ""
            raise FileNotFoundError(f"Annotation {xml}{where} does not exist") from None
        batch.add_file(xml, root)
        file_name = os.path.join(image_dir, img_id + image_ext)
        size = xml_image_size(root, xml)
        if size is None:
            size = image_size(file_name)
        else:
            if images is None:
                images = set(os.listdir(image_dir)) if os.path.isdir(image_dir) else set()
            if img_id + image_ext not in images and not os.path.isfile(file_name):
                raise FileNotFoundError(f"Image {file_name} (annotated in {xml}) does not exist")
        dicts.append(
            {"file_name": file_name, "height": size[0], "width": size[1], "image_id": img_id}
        )
    cats = np.fromiter(
        (class_to_id.get(n.lower(), -1) for n in batch.names), np.int64, count=len(batch.names)
    )
    tag = dataset_name or split_file or ann_dir
    for rec, anns in zip(dicts, batch.annotations(cats, class_names, unknown_classes, tag)):
        rec["annotations"] = anns
    n_obj = sum(len(d["annotations"]) for d in dicts)
    logger.info(
        f"Loaded {len(dicts)} images and {n_obj} objects from rotated VOC annotations in "
        f"{ann_dir} ({tag}) in {time.perf_counter() - t0:.2f}s"
    )
    return dicts


def register_voc_rotated_instances(
    name: str,
    metadata: dict,
    image_dir: str,
    ann_dir: str,
    class_names: Sequence[str],
    schema: str | VocRotatedSchema,
    split_file: str | None = None,
    **kwargs,
) -> None:
    """Register a rotated VOC-style dataset (see :func:`load_voc_rotated_instances`).

    ``metadata`` adds to or overrides ``thing_classes``, ``image_root`` and
    ``evaluator_type="dota"``.
    """
    class_names = tuple(class_names)
    DatasetCatalog.register(
        name,
        lambda: load_voc_rotated_instances(
            image_dir, ann_dir, class_names, schema, split_file, dataset_name=name, **kwargs
        ),
    )
    md = {"thing_classes": list(class_names), "image_root": image_dir, "evaluator_type": "dota"}
    md.update(metadata or {})
    MetadataCatalog.get(name).set(**md)

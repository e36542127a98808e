"""FAIR1M (v1.0 and v2.0) from its XML annotations, as standard dataset dicts (format of
:mod:`rotated_det.data.datasets.dota`), and converted to DOTA label files so that the split tool
(:func:`rotated_det.data.dota_split.split_dota`) can cut its large images into patches.

One XML file per image (``labelXml/<stem>.xml`` for ``images/<stem>.tif``)::

    <annotation>
      <size><width>1000</width><height>1000</height><depth>3</depth></size>   optional
      <objects>
        <object>
          <coordinate>pixel</coordinate>                      optional; must be "pixel"
          <possibleresult><name>Small Car</name></possibleresult>
          <points>
            <point>544.0,324.0</point>                        "x,y" in pixels
            ... 4 corners, then the first again (a closed ring of 5 points)
          </points>
        </object>
        ...
      </objects>
    </annotation>

A ring of 4 points (not closed) is accepted too; any other count, a fifth point that does not
repeat the first, a point that is not ``x,y`` numbers or a class not in the class list raises an
error naming the file, the line and the ``<object>``.

Class names: DOTA label files separate fields by spaces, so every run of spaces in a FAIR1M name
becomes a hyphen ("Small Car" -> "Small-Car"); :data:`FAIR1M_CLASSES` lists the 37 classes in that
spelling, and names are matched without regard to case. The box is the minimum-area rectangle of
the 4 corners (:func:`rotated_det.structures.poly_to_rbox`, "le90"), as for DOTA labels; FAIR1M
has no difficult flag (0 everywhere).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rotated_det.data.catalog import DatasetCatalog, MetadataCatalog
from rotated_det.data.datasets.loading import (
    IMAGE_EXTENSIONS,
    gc_paused,
    image_size,
    list_images,
)
from rotated_det.data.datasets.xml_labels import (
    parse_floats,
    read_xml,
    where_element,
    xml_image_size,
)
from rotated_det.structures import BoxMode, poly_to_rbox

__all__ = [
    "FAIR1M_CLASSES",
    "fair1m_class_name",
    "Fair1mLabels",
    "parse_fair1m_xml",
    "load_fair1m_instances",
    "register_fair1m_instances",
    "convert_fair1m_to_dota",
]

logger = logging.getLogger(__name__)

# The 37 FAIR1M classes (v1.0 and v2.0), grouped as in the FAIR1M paper: 11 airplanes, 9 ships,
# 10 vehicles, 4 courts, 3 roads; spaces written as hyphens (module doc).
FAIR1M_CLASSES = (
    "Boeing737", "Boeing747", "Boeing777", "Boeing787", "C919", "A220", "A321", "A330", "A350",
    "ARJ21", "other-airplane",
    "Passenger-Ship", "Motorboat", "Fishing-Boat", "Tugboat", "Engineering-Ship",
    "Liquid-Cargo-Ship", "Dry-Cargo-Ship", "Warship", "other-ship",
    "Small-Car", "Bus", "Cargo-Truck", "Dump-Truck", "Van", "Trailer", "Tractor", "Excavator",
    "Truck-Tractor", "other-vehicle",
    "Basketball-Court", "Tennis-Court", "Football-Field", "Baseball-Field",
    "Intersection", "Roundabout", "Bridge",
)  # fmt: skip

_OBJECT = ("objects", "object")
_POINT_COLUMNS = tuple(f"<point> {i // 2 + 1} {'xy'[i % 2]}" for i in range(8))
_CLOSE_TOL = 1e-3  # pixels: how far the fifth point may lie from the first


def fair1m_class_name(name: str) -> str:
    """A FAIR1M ``<name>`` in the spelling of :data:`FAIR1M_CLASSES` (runs of whitespace ->
    ``-``): ``"Liquid Cargo Ship"`` -> ``"Liquid-Cargo-Ship"``."""
    return "-".join(name.split())


@dataclass
class Fair1mLabels:
    """The objects of one FAIR1M annotation file.

    Attributes:
        polys: ``[N, 8]`` float64 corners ``(x1, y1, ..., x4, y4)`` in pixels, as written.
        class_names: N names in :func:`fair1m_class_name` spelling.
        image_size: ``(height, width)`` from ``<size>``, or None.
    """

    polys: np.ndarray
    class_names: list[str]
    image_size: tuple[int, int] | None


class _Batch:
    """Objects of many files, their coordinates kept as strings until one conversion."""

    def __init__(self) -> None:
        self.files: list[str] = []
        self.names: list[str] = []
        self.coords: list[str] = []  # 8 per object
        self.closing: list[str] = []  # 4 per closed ring: first and fifth point
        self.closing_rows: list[int] = []
        self.origin: list[tuple[int, int]] = []  # (file index, object index) per object

    def add_file(self, path: str, root) -> int:
        fi = len(self.files)
        self.files.append(path)
        objs = root.findall("objects/object")
        for oi, obj in enumerate(objs):
            coord = obj.findtext("coordinate")
            if coord is not None and coord.strip() != "pixel":
                raise ValueError(
                    f"{where_element(path, _OBJECT, oi)}: <coordinate> is {coord!r}; only "
                    "'pixel' coordinates are supported"
                )
            name = obj.findtext("possibleresult/name")
            if name is None or not name.strip():
                raise ValueError(
                    f"{where_element(path, _OBJECT, oi)} has no <possibleresult><name>"
                )
            pts = obj.find("points")
            texts = [p.text for p in pts.iter("point")] if pts is not None else []
            if len(texts) not in (4, 5):
                raise ValueError(
                    f"{where_element(path, _OBJECT, oi)}: <points> has {len(texts)} <point> "
                    "elements; expected 5 (4 corners and the first again) or 4"
                )
            xy: list[str] = []
            for k, t in enumerate(texts):
                parts = t.split(",") if t is not None else []
                if len(parts) != 2:
                    raise ValueError(
                        f"{where_element(path, _OBJECT, oi)}: <point> {k + 1} is {t!r}; "
                        "expected 'x,y'"
                    )
                xy += parts
            if len(texts) == 5:
                self.closing += xy[:2] + xy[8:]
                self.closing_rows.append(len(self.names))
            self.coords += xy[:8]
            self.names.append(fair1m_class_name(name))
            self.origin.append((fi, oi))
        return len(objs)

    def describe(self, row: int) -> str:
        fi, oi = self.origin[row]
        return where_element(self.files[fi], _OBJECT, oi)

    def polys(self) -> np.ndarray:
        """``[N, 8]`` corners of every object added; checks that closed rings close."""
        polys = parse_floats(self.coords, 8, self.describe, _POINT_COLUMNS)
        if self.closing:
            ends = parse_floats(
                self.closing,
                4,
                lambda r: self.describe(self.closing_rows[r]),
                ("<point> 1 x", "<point> 1 y", "<point> 5 x", "<point> 5 y"),
            )
            bad = np.nonzero(np.abs(ends[:, :2] - ends[:, 2:]).max(axis=1) > _CLOSE_TOL)[0]
            if len(bad):
                r = int(bad[0])
                raise ValueError(
                    f"{self.describe(self.closing_rows[r])}: the fifth <point> "
                    f"{ends[r, 2:].tolist()} does not repeat the first {ends[r, :2].tolist()}; "
                    "expected a closed ring of 4 corners"
                )
        return polys


def parse_fair1m_xml(path: str) -> Fair1mLabels:
    """Parse one FAIR1M annotation file (module doc).

    Raises:
        ValueError: naming the file, line and ``<object>`` for malformed content.
    """
    root = read_xml(path, "FAIR1M annotation")
    batch = _Batch()
    batch.add_file(path, root)
    return Fair1mLabels(batch.polys(), batch.names, xml_image_size(root, path))


def _class_ids(batch: _Batch, class_names: Sequence[str], unknown_classes: str) -> np.ndarray:
    """``[N]`` int64 index into ``class_names`` (case-insensitive), -1 for unknown classes
    (unknown_classes="skip") or a KeyError naming the first one (unknown_classes="error")."""
    lookup = {fair1m_class_name(c).lower(): i for i, c in enumerate(class_names)}
    cats = np.fromiter(
        (lookup.get(n.lower(), -1) for n in batch.names), np.int64, count=len(batch.names)
    )
    if unknown_classes == "error" and (cats < 0).any():
        r = int(np.nonzero(cats < 0)[0][0])
        raise KeyError(
            f"{batch.describe(r)}: unknown class '{batch.names[r]}'; known classes are: "
            f"{', '.join(class_names)}"
        )
    return cats


def _check_unknown(unknown_classes: str) -> None:
    if unknown_classes not in ("error", "skip"):
        raise ValueError(f"unknown_classes must be 'error' or 'skip', got {unknown_classes!r}")


@gc_paused()
def load_fair1m_instances(
    image_dir: str,
    xml_dir: str | None,
    class_names: Sequence[str] = FAIR1M_CLASSES,
    *,
    image_exts: Sequence[str] = IMAGE_EXTENSIONS,
    unknown_classes: str = "error",
    dataset_name: str | None = None,
) -> list[dict]:
    """Load FAIR1M images and their XML annotations as standard dataset dicts (``poly``: the 4
    corners as written).

    Args:
        image_dir: folder of the images (FAIR1M ships ``.tif``).
        xml_dir: folder of ``<stem>.xml`` annotations, one per image; None for a test set (dicts
            without ``annotations``).
        class_names: categories (:data:`FAIR1M_CLASSES`); ``category_id`` indexes it.
        image_exts: image extensions to list.
        unknown_classes: "error" (default) or "skip" (dropped and counted in the log).
        dataset_name: name for log messages.
    Raises:
        FileNotFoundError: no images, or an image without its annotation.
        ValueError / KeyError: malformed annotations, naming file, line and ``<object>``.
    """
    _check_unknown(unknown_classes)
    t0 = time.perf_counter()
    files = list_images(image_dir, image_exts)
    if not files:
        raise FileNotFoundError(f"No images with extensions {tuple(image_exts)} in {image_dir}")
    batch = _Batch()
    dicts: list[dict[str, Any]] = []
    counts: list[int] = []
    for f in files:
        stem = os.path.splitext(f)[0]
        rec: dict[str, Any] = {"file_name": os.path.join(image_dir, f), "image_id": stem}
        size = None
        if xml_dir is not None:
            xml = os.path.join(xml_dir, stem + ".xml")
            try:
                root = read_xml(xml, "FAIR1M annotation")
            except FileNotFoundError:
                raise FileNotFoundError(
                    f"FAIR1M annotation {xml} for image {f} does not exist"
                ) from None
            counts.append(batch.add_file(xml, root))
            size = xml_image_size(root, xml)
        if size is None:
            size = image_size(rec["file_name"])
        rec["height"], rec["width"] = size
        dicts.append(rec)
    n_obj = n_unknown = 0
    if xml_dir is not None:
        polys = batch.polys()
        boxes = poly_to_rbox(polys).tolist()
        cats = _class_ids(batch, class_names, unknown_classes)
        n_unknown = int((cats < 0).sum())
        p_list, c_list = polys.tolist(), cats.tolist()
        start = 0
        for rec, n in zip(dicts, counts):
            rec["annotations"] = [
                {
                    "bbox": boxes[i],
                    "bbox_mode": BoxMode.XYWHA_ABS,
                    "category_id": c_list[i],
                    "difficult": 0,
                    "poly": p_list[i],
                }
                for i in range(start, start + n)
                if c_list[i] >= 0
            ]
            start += n
        n_obj = len(c_list) - n_unknown
    tag = dataset_name or image_dir
    logger.info(
        f"Loaded {len(dicts)} images and {n_obj} objects of FAIR1M from {image_dir} ({tag}) in "
        f"{time.perf_counter() - t0:.2f}s"
    )
    if n_unknown:
        logger.warning(f"{tag}: {n_unknown} objects of unknown classes skipped.")
    return dicts


def register_fair1m_instances(
    name: str,
    metadata: dict,
    image_dir: str,
    xml_dir: str | None,
    class_names: Sequence[str] = FAIR1M_CLASSES,
    **kwargs,
) -> None:
    """Register FAIR1M images with their XML annotations (see :func:`load_fair1m_instances`);
    ``metadata`` adds to or overrides ``thing_classes``, ``image_root`` and
    ``evaluator_type="dota"``."""
    class_names = tuple(class_names)
    DatasetCatalog.register(
        name,
        lambda: load_fair1m_instances(image_dir, xml_dir, class_names, dataset_name=name, **kwargs),
    )
    md = {"thing_classes": list(class_names), "image_root": image_dir, "evaluator_type": "dota"}
    md.update(metadata or {})
    MetadataCatalog.get(name).set(**md)


def convert_fair1m_to_dota(
    xml_dir: str,
    out_dir: str,
    class_names: Sequence[str] = FAIR1M_CLASSES,
    *,
    unknown_classes: str = "error",
) -> dict:
    """Write a DOTA label file ``out_dir/<stem>.txt`` for every ``xml_dir/<stem>.xml``: one line
    ``x1 y1 x2 y2 x3 y3 x4 y4 Class-Name 0`` per object, the corners as written (shortest
    round-trip decimal form) and the class in the spelling of ``class_names``. Loading the result
    with :func:`rotated_det.data.datasets.dota.load_dota_instances` gives the boxes of
    :func:`load_fair1m_instances`.

    Args:
        xml_dir: the FAIR1M ``labelXml`` folder.
        out_dir: the ``labelTxt`` folder to write (created).
        class_names: the known classes; ``unknown_classes`` says what to do with others
            ("error" or "skip", counted).
    Returns:
        ``{"files": int, "objects": int, "skipped": int}``.
    """
    _check_unknown(unknown_classes)
    if not os.path.isdir(xml_dir):
        raise FileNotFoundError(f"FAIR1M annotation directory {xml_dir} does not exist")
    if os.path.abspath(out_dir) == os.path.abspath(xml_dir):
        raise ValueError(f"out_dir must differ from xml_dir ({xml_dir})")
    stems = sorted(os.path.splitext(f)[0] for f in os.listdir(xml_dir) if f.endswith(".xml"))
    batch = _Batch()
    counts = [
        batch.add_file(p, read_xml(p, "FAIR1M annotation"))
        for p in (os.path.join(xml_dir, s + ".xml") for s in stems)
    ]
    polys = batch.polys()
    cats = _class_ids(batch, class_names, unknown_classes)
    os.makedirs(out_dir, exist_ok=True)
    rows = [" ".join(map(repr, p)) for p in polys.tolist()]
    out_names = [fair1m_class_name(c) for c in class_names]
    start = 0
    for stem, n in zip(stems, counts):
        lines = [
            f"{rows[i]} {out_names[c]} 0\n"
            for i, c in zip(range(start, start + n), cats[start : start + n].tolist())
            if c >= 0
        ]
        start += n
        with open(os.path.join(out_dir, stem + ".txt"), "w", encoding="utf-8") as f:
            f.writelines(lines)
    skipped = int((cats < 0).sum())
    logger.info(
        f"Converted {len(stems)} FAIR1M annotation files ({len(cats) - skipped} objects) from "
        f"{xml_dir} to DOTA labels in {out_dir}"
    )
    if skipped:
        logger.warning(f"{xml_dir}: {skipped} objects of unknown classes skipped.")
    return {"files": len(stems), "objects": len(cats) - skipped, "skipped": skipped}

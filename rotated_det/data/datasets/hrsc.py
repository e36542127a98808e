"""HRSC2016 (ship detection) from its XML annotations.

Layout: ``FullDataSet/AllImages/<id>.bmp``, ``FullDataSet/Annotations/<id>.xml`` and
``ImageSets/{trainval,test}.txt`` (one image id per line). Each ``HRSC_Object`` has the rotated box
``mbox_cx, mbox_cy, mbox_w, mbox_h`` (pixels) and ``mbox_ang`` (RADIANS), ``difficult`` and
``Class_ID`` (e.g. ``100000007``).

Angle conversion. HRSC's ``mbox_ang`` is OpenCV's ``RotatedRect`` angle in radians: the ``mbox_w``
side points along ``(cos t, sin t)`` in image coordinates (x right, y down), i.e. positive ``t``
turns clockwise on screen (``cv2.boxPoints(((cx, cy), (w, h), degrees(t)))`` gives the corners).
Our convention is counter-clockwise positive with the w-axis along ``(cos a, -sin a)``, so
``a = -degrees(mbox_ang)`` with the same ``w`` and ``h``. Example: ``mbox_ang = 0.5236`` (30
degrees clockwise, the ship's long side descending to the right on screen) becomes
``angle = -30``. Boxes are then written with the ``"le90"`` normalisation (w >= h).
"""

from __future__ import annotations

import logging
import math
import os
import time
import xml.etree.ElementTree as ET

import numpy as np

from rotated_det.data.catalog import DatasetCatalog, MetadataCatalog
from rotated_det.structures import BoxMode, normalize_rbox_angles, rbox_to_poly

__all__ = [
    "HRSC_CLASS_IDS",
    "HRSC_FINE_CLASSES",
    "hrsc_mbox_to_rbox",
    "parse_hrsc_xml",
    "load_hrsc_instances",
    "register_hrsc_instances",
]

logger = logging.getLogger(__name__)

# Fine-grained HRSC2016 categories: Class_ID = 1000000xx, in the order of their ids (21 and 23 are
# unused by the dataset). Level-1 "ship" (01) and level-2 "aircraft carrier", "warcraft",
# "merchant ship" (02-04) are categories of their own in the annotations.
HRSC_CLASS_IDS = (
    "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12", "13", "14", "15",
    "16", "17", "18", "19", "20", "22", "24", "25", "26", "27", "28", "29", "30", "31", "32",
    "33",
)  # fmt: skip
HRSC_FINE_CLASSES = (
    "ship", "aircraft-carrier", "warcraft", "merchant-ship", "nimitz", "enterprise",
    "arleigh-burke", "whidbey-island", "perry", "san-antonio", "ticonderoga", "kitty-hawk",
    "kuznetsov", "abukuma", "austin", "tarawa", "blue-ridge", "container-ship", "oxo",
    "car-carrier", "hovercraft", "yacht", "container-ship-2", "cruise-ship", "submarine",
    "lute", "medical-ship", "car-carrier-2", "ford-class", "midway-class", "invincible-class",
)  # fmt: skip


def hrsc_mbox_to_rbox(mbox: np.ndarray) -> np.ndarray:
    """``[N, 5]`` HRSC ``(cx, cy, w, h, ang_rad)`` -> ``[N, 5]`` XYWHA_ABS boxes (le90)."""
    m = np.asarray(mbox, dtype=np.float64).reshape(-1, 5)
    out = m.copy()
    out[:, 4] = -np.degrees(m[:, 4])
    return normalize_rbox_angles(out, "le90")


def _text(node, tag, path, required=True):
    child = node.find(tag)
    if child is None or child.text is None:
        if required:
            raise ValueError(f"{path}: <{node.tag}> has no <{tag}> element")
        return None
    return child.text.strip()


def parse_hrsc_xml(path: str) -> dict:
    """Parse one HRSC2016 annotation file.

    Returns:
        dict with ``width``, ``height``, ``file_stem``, ``file_fmt``, ``mboxes`` ``[N, 5]``
        (HRSC convention, radians), ``class_ids`` (list of 2-digit strings, e.g. ``"07"``),
        ``difficult`` ``[N]`` int64.
    """
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        raise ValueError(f"Cannot parse HRSC annotation {path}: {e}") from e
    mboxes, cls, diff = [], [], []
    objs = root.find("HRSC_Objects")
    for i, obj in enumerate(objs.findall("HRSC_Object") if objs is not None else []):
        try:
            vals = [
                float(_text(obj, k, path))
                for k in ("mbox_cx", "mbox_cy", "mbox_w", "mbox_h", "mbox_ang")
            ]
        except ValueError as e:
            raise ValueError(f"{path}: HRSC_Object #{i}: {e}") from e
        if not all(math.isfinite(v) for v in vals):
            raise ValueError(f"{path}: HRSC_Object #{i} has a non-finite mbox value {vals}")
        mboxes.append(vals)
        cid = _text(obj, "Class_ID", path, required=False) or "100000001"
        cls.append(cid[-2:])
        diff.append(int(_text(obj, "difficult", path, required=False) or 0))
    w = _text(root, "Img_SizeWidth", path, required=False)
    h = _text(root, "Img_SizeHeight", path, required=False)
    return {
        "width": int(w) if w else None,
        "height": int(h) if h else None,
        "file_stem": _text(root, "Img_FileName", path, required=False),
        "file_fmt": _text(root, "Img_FileFmt", path, required=False),
        "mboxes": np.asarray(mboxes, dtype=np.float64).reshape(-1, 5),
        "class_ids": cls,
        "difficult": np.asarray(diff, dtype=np.int64),
    }


def _read_split(split_file: str) -> list[str]:
    if not os.path.isfile(split_file):
        raise FileNotFoundError(f"HRSC2016 split file {split_file} does not exist")
    with open(split_file, encoding="utf-8-sig") as f:
        ids = [ln.strip() for ln in f if ln.strip()]
    if not ids:
        raise ValueError(f"HRSC2016 split file {split_file} lists no images")
    return ids


def load_hrsc_instances(
    image_dir: str,
    ann_dir: str,
    split_file: str | None = None,
    fine_grained: bool = False,
    image_ext: str = ".bmp",
    dataset_name: str | None = None,
) -> list[dict]:
    """Load HRSC2016 as standard dataset dicts (format of
    :mod:`rotated_det.data.datasets.dota`, ``poly`` being the box's corners).

    Args:
        image_dir: ``FullDataSet/AllImages``.
        ann_dir: ``FullDataSet/Annotations``.
        split_file: ``ImageSets/trainval.txt`` / ``test.txt``; None loads every annotation.
        fine_grained: if False (default), every object is class 0 "ship"; if True,
            ``category_id`` indexes :data:`HRSC_FINE_CLASSES` (unknown ``Class_ID`` -> error).
        image_ext: extension of the images (HRSC ships ``.bmp``).
    """
    t0 = time.perf_counter()
    if split_file is not None:
        ids = _read_split(split_file)
    else:
        if not os.path.isdir(ann_dir):
            raise FileNotFoundError(f"HRSC2016 annotation directory {ann_dir} does not exist")
        ids = sorted(os.path.splitext(f)[0] for f in os.listdir(ann_dir) if f.endswith(".xml"))
    id_to_cat = {c: i for i, c in enumerate(HRSC_CLASS_IDS)}
    dicts = []
    n_obj = 0
    for img_id in ids:
        xml = os.path.join(ann_dir, img_id + ".xml")
        if not os.path.isfile(xml):
            raise FileNotFoundError(
                f"HRSC2016 annotation {xml} (listed in {split_file}) is missing"
            )
        info = parse_hrsc_xml(xml)
        ext = "." + info["file_fmt"] if info["file_fmt"] else image_ext
        file_name = os.path.join(image_dir, img_id + ext)
        if info["width"] is None or info["height"] is None:
            from rotated_det.data.datasets.loading import image_size

            info["height"], info["width"] = image_size(file_name)
        elif not os.path.isfile(file_name):
            raise FileNotFoundError(f"HRSC2016 image {file_name} (for {xml}) does not exist")
        boxes = hrsc_mbox_to_rbox(info["mboxes"])
        polys = rbox_to_poly(boxes)
        if fine_grained:
            cats = []
            for c in info["class_ids"]:
                if c not in id_to_cat:
                    raise KeyError(
                        f"{xml}: unknown HRSC Class_ID 1000000{c}; known ids end in "
                        f"{', '.join(HRSC_CLASS_IDS)}"
                    )
                cats.append(id_to_cat[c])
        else:
            cats = [0] * len(boxes)
        anns = [
            {"bbox": b, "bbox_mode": BoxMode.XYWHA_ABS, "category_id": c, "difficult": d, "poly": p}
            for b, c, d, p in zip(boxes.tolist(), cats, info["difficult"].tolist(), polys.tolist())
        ]
        n_obj += len(anns)
        dicts.append(
            {
                "file_name": file_name,
                "height": info["height"],
                "width": info["width"],
                "image_id": img_id,
                "annotations": anns,
            }
        )
    logger.info(
        f"Loaded {len(dicts)} images and {n_obj} objects of HRSC2016 from {ann_dir} "
        f"({dataset_name or split_file}) in {time.perf_counter() - t0:.2f}s"
    )
    return dicts


def register_hrsc_instances(
    name: str,
    metadata: dict,
    image_dir: str,
    ann_dir: str,
    split_file: str | None = None,
    fine_grained: bool = False,
    **kwargs,
) -> None:
    """Register HRSC2016 (see :func:`load_hrsc_instances`) under ``name``."""
    DatasetCatalog.register(
        name,
        lambda: load_hrsc_instances(
            image_dir, ann_dir, split_file, fine_grained, dataset_name=name, **kwargs
        ),
    )
    md = {
        "thing_classes": list(HRSC_FINE_CLASSES) if fine_grained else ["ship"],
        "image_root": image_dir,
        "evaluator_type": "hrsc",
    }
    md.update(metadata or {})
    MetadataCatalog.get(name).set(**md)

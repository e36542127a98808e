#!/usr/bin/env python
"""Convert oriented-box annotations between DOTA txt, YOLO-OBB, rotated COCO json, labelme JSON
and roLabelImg XML.

    python tools/convert_dataset.py --from labelme --to dota --input my_labelme --output my_dota
    python tools/convert_dataset.py --from dota --to coco --input DOTA/train --output coco_train \\
        --classes plane,ship
    python tools/convert_dataset.py --from yolo-obb --split train --to rolabelimg --input yolo \\
        --output rolabel --copy-images

Layouts: what --output writes for a format is what --input of that format reads.
  dota        DIR/labelTxt/<stem>.txt; images in DIR/images (or --images)
  yolo-obb    DIR/labels/<stem>.txt and DIR/dataset.yaml (class names); images in DIR/images
              (or --images). --split NAME reads Ultralytics' DIR/{labels,images}/NAME.
  coco        DIR/annotations.json (or --input FILE.json), image file names relative to DIR
              (or to --images)
  labelme     DIR/<stem>.json, imagePath relative to DIR (labelme's convention)
  rolabelimg  DIR/<stem>.xml; images in DIR (or --images)
Without --copy-images / --link-images only annotations are written; the formats that name their
image (coco, labelme, rolabelimg) then point at the source images; DOTA and YOLO-OBB outputs are
read back with --images SOURCE_IMAGES.

Classes: --classes a,b,c fixes the class list and its order (a name the data has but the list
lacks is an error naming the file); without it, classes come from the source (COCO categories,
YOLO-OBB's dataset.yaml or data.yaml) or are the sorted names found (DOTA, labelme, roLabelImg).

Exactness. DOTA, COCO and labelme keep each object's 4-point polygon (written with 6 decimals,
i.e. to 1e-6 px), so conversions among them are exact. YOLO-OBB keeps the polygon too, normalised
by the image width and height and written with 10 decimals (exact to about 1e-10 of the image
size); a round trip through it changes coordinates by that rounding only. Lossy, by format:
  yolo-obb    no difficult flag (written as 0), coordinates more than 1% of the image outside it
              are clamped to the border (the reader refuses them; counted)
  rolabelimg  rectangles only: a polygon that is not a rectangle becomes its minimum-area
              rectangle (the box rotated_det trains on, kept exactly)
  dota        its header lines (imagesource, gsd) are not carried over
  coco        category ids are renumbered 1..K in class order; image ids are kept when they are
              unique integers, else numbered 1..N
  labelme     (as a source) polygons of other than 4 points become their minimum-area rectangles
              and non-box shapes are skipped, both counted (--strict: errors)

Safety: existing output files are never overwritten without --overwrite (checked before anything
is written); every file is written under --output (names from the data are escaped); --output may
not be the input folder. Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from rotated_det.data.catalog import MetadataCatalog
from rotated_det.data.datasets.coco_rotated import (
    convert_to_coco_rotated_dict,
    load_coco_rotated_json,
)
from rotated_det.data.datasets.dota import load_dota_instances
from rotated_det.data.datasets.labelme import convert_to_labelme_dict, load_labelme_instances
from rotated_det.data.datasets.loading import annotation_polygons, list_images
from rotated_det.data.datasets.rolabelimg import (
    convert_to_rolabelimg_xml,
    load_rolabelimg_instances,
)
from rotated_det.data.datasets.yolo_obb import (
    COORD_TOLERANCE,
    load_yolo_obb_instances,
    read_yolo_names,
)
from rotated_det.structures.dota_format import parse_dota_label_file
from rotated_det.utils.file_io import safe_path

logger = logging.getLogger("convert_dataset")

FORMATS = ("dota", "yolo-obb", "coco", "labelme", "rolabelimg")
COCO_FILE = "annotations.json"
YOLO_YAML = "dataset.yaml"


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--from", dest="src", choices=FORMATS, required=True, help="source format")
    p.add_argument("--to", dest="dst", choices=FORMATS, required=True, help="target format")
    p.add_argument("--input", required=True, help="source folder (coco: also a .json file)")
    p.add_argument("--output", required=True, help="output folder (created)")
    p.add_argument("--images", default=None, help="source image folder (see the layouts)")
    p.add_argument("--classes", default=None, help="comma-separated class names, in order")
    p.add_argument("--split", default=None, help="yolo-obb source: Ultralytics split name")
    p.add_argument("--copy-images", action="store_true", help="copy the images to the output")
    p.add_argument("--link-images", action="store_true", help="symlink the images instead")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument(
        "--strict",
        action="store_true",
        help="labelme source: polygons of other than 4 points and non-box shapes are errors",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


# ---------------------------------------------------------------------------------------------
# reading


def _dota_class_names(image_dir: str, label_dir: str) -> list[str]:
    """The sorted class names in the label files of the images in ``image_dir``."""
    names: set[str] = set()
    for f in list_images(image_dir):
        path = os.path.join(label_dir, os.path.splitext(f)[0] + ".txt")
        if os.path.isfile(path):
            names.update(parse_dota_label_file(path).class_names)
    return sorted(names)


def _yolo_class_names(root: str) -> list[str]:
    for name in (YOLO_YAML, "data.yaml"):
        path = os.path.join(root, name)
        if os.path.isfile(path):
            return read_yolo_names(path)
    raise FileNotFoundError(
        f"YOLO-OBB class names: pass --classes, or put a {YOLO_YAML} or data.yaml with 'names' "
        f"in {root}"
    )


def _with_metadata_classes(load, *args, **kwargs) -> tuple[list[dict], list[str]]:
    """Run a loader that reports the classes it found through a dataset's metadata."""
    name = f"_convert_dataset_{uuid.uuid4().hex}"
    try:
        dicts = load(*args, dataset_name=name, **kwargs)
        classes = list(MetadataCatalog.get(name).get("thing_classes", []))
    finally:
        MetadataCatalog.remove(name)
    return dicts, classes


def read_dataset(
    fmt: str,
    input_path: str,
    images: str | None = None,
    classes: Sequence[str] | None = None,
    split: str | None = None,
    strict: bool = False,
) -> tuple[list[dict], list[str]]:
    """Standard dataset dicts (boxes XYWHA_ABS, ``poly`` the 4-point polygon) and class names
    of a dataset in format ``fmt`` laid out as the module doc says."""
    if fmt == "dota":
        label_dir = os.path.join(input_path, "labelTxt")
        image_dir = images or os.path.join(input_path, "images")
        if not os.path.isdir(label_dir):
            raise FileNotFoundError(f"DOTA label folder {label_dir} does not exist")
        names = list(classes) if classes is not None else _dota_class_names(image_dir, label_dir)
        dicts = load_dota_instances(
            image_dir, label_dir, names, out_of_image="keep", missing_labels="empty"
        )
        return dicts, names
    if fmt == "yolo-obb":
        sub = split or ""
        names = list(classes) if classes is not None else _yolo_class_names(input_path)
        image_dir = images or os.path.join(input_path, "images", sub)
        return load_yolo_obb_instances(
            image_dir, os.path.join(input_path, "labels", sub), names
        ), names
    if fmt == "coco":
        json_file = input_path
        if os.path.isdir(input_path):
            json_file = os.path.join(input_path, COCO_FILE)
        image_root = images or os.path.dirname(json_file)
        dicts, found = _with_metadata_classes(load_coco_rotated_json, json_file, image_root)
        if classes is not None:
            dicts = _remap_classes(dicts, found, list(classes))
            found = list(classes)
        return dicts, found
    if fmt == "labelme":
        strictness = {"polygons": "error", "other_shapes": "error"} if strict else {}
        if classes is not None:
            dicts = load_labelme_instances(input_path, images, list(classes), **strictness)
            return dicts, list(classes)
        return _with_metadata_classes(load_labelme_instances, input_path, images, **strictness)
    if fmt == "rolabelimg":
        if classes is not None:
            return load_rolabelimg_instances(input_path, images, list(classes)), list(classes)
        return _with_metadata_classes(load_rolabelimg_instances, input_path, images)
    raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")


def _remap_classes(dicts: list[dict], src: list[str], dst: list[str]) -> list[dict]:
    """Renumber ``category_id`` from class list ``src`` to ``dst`` by name."""
    to_dst = {i: dst.index(n) for i, n in enumerate(src) if n in dst}
    for d in dicts:
        for ann in d.get("annotations", ()):
            c = ann["category_id"]
            if c not in to_dst:
                raise KeyError(
                    f"{d['file_name']}: class {src[c]!r} is not in --classes ({', '.join(dst)})"
                )
            ann["category_id"] = to_dst[c]
    return dicts


# ---------------------------------------------------------------------------------------------
# writing


def _fmt(v: float, decimals: int) -> str:
    s = f"{v:.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def dota_label_text(record: dict, classes: Sequence[str]) -> str:
    """One DOTA label file (no header): ``x1 y1 ... x4 y4 class difficult`` per object, the
    object's polygon to 6 decimals."""
    anns = record.get("annotations", ())
    polys = annotation_polygons(anns, str(record["file_name"])).tolist()
    lines = [
        " ".join(_fmt(v, 6) for v in p)
        + f" {classes[a['category_id']]} {int(bool(a.get('difficult')))}"
        for a, p in zip(anns, polys)
    ]
    return "".join(line + "\n" for line in lines)


def yolo_label_text(record: dict) -> tuple[str, int]:
    """One YOLO-OBB label file and the number of objects whose coordinates were clamped to the
    image (those more than ``COORD_TOLERANCE`` outside it)."""
    anns = record.get("annotations", ())
    w, h = float(record["width"]), float(record["height"])
    polys = annotation_polygons(anns, str(record["file_name"])) / np.array([w, h] * 4)
    outside = (polys < -COORD_TOLERANCE) | (polys > 1.0 + COORD_TOLERANCE)
    polys = np.where(outside, polys.clip(0.0, 1.0), polys)
    lines = [
        f"{a['category_id']} " + " ".join(_fmt(v, 10) for v in p)
        for a, p in zip(anns, polys.tolist())
    ]
    return "".join(line + "\n" for line in lines), int(outside.any(axis=1).sum())


def yolo_yaml_text(root: str, classes: Sequence[str]) -> str:
    """An Ultralytics dataset YAML naming the classes (names as JSON strings, valid YAML)."""
    lines = [
        "# written by tools/convert_dataset.py",
        f"path: {json.dumps(os.path.abspath(root))}",
        "train: images",
        "val: images",
        "names:",
        *(f"  {i}: {json.dumps(str(n))}" for i, n in enumerate(classes)),
    ]
    return "\n".join(lines) + "\n"


def _image_folder(fmt: str, out: str) -> str:
    """Where ``--copy-images`` puts the images of format ``fmt``."""
    return out if fmt in ("labelme", "rolabelimg") else os.path.join(out, "images")


def _annotation_path(fmt: str, out: str, stem: str) -> str | None:
    """The per-image annotation file of ``fmt`` (None: one file for the dataset)."""
    if fmt == "dota":
        return safe_path(os.path.join(out, "labelTxt"), stem, ".txt")
    if fmt == "yolo-obb":
        return safe_path(os.path.join(out, "labels"), stem, ".txt")
    if fmt == "labelme":
        return safe_path(out, stem, ".json")
    if fmt == "rolabelimg":
        return safe_path(out, stem, ".xml")
    return None


def _check_classes(fmt: str, classes: Sequence[str]) -> None:
    if fmt == "dota":
        bad = [c for c in classes if not c or any(ch.isspace() for ch in c)]
        if bad:
            raise ValueError(
                f"class names {bad} contain whitespace, which DOTA label lines cannot hold; "
                "rename them (e.g. --classes with '-' instead of spaces)"
            )


def plan_outputs(
    dicts: list[dict], fmt: str, out: str, images: str | None
) -> tuple[list[str | None], list[str | None], list[str]]:
    """Per image: its annotation file and (with ``images`` "copy"/"link") its image's
    destination; and the dataset-level files. All under ``out``.

    Raises:
        ValueError: two images that would write the same file (same file stem).
    """
    ann_paths: list[str | None] = []
    img_paths: list[str | None] = []
    seen: dict[str, str] = {}
    for d in dicts:
        src = d["file_name"]
        name = os.path.basename(src)
        stem = os.path.splitext(name)[0]
        if stem in seen:
            raise ValueError(
                f"images {seen[stem]} and {src} have the same name stem {stem!r}; their "
                f"{fmt} files would collide"
            )
        seen[stem] = src
        ann_paths.append(_annotation_path(fmt, out, stem))
        img_paths.append(safe_path(_image_folder(fmt, out), name) if images else None)
    dataset_files = {
        "coco": [os.path.join(out, COCO_FILE)],
        "yolo-obb": [os.path.join(out, YOLO_YAML)],
    }.get(fmt, [])
    return ann_paths, img_paths, dataset_files


def write_dataset(
    dicts: list[dict],
    classes: Sequence[str],
    fmt: str,
    out: str,
    *,
    images: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``dicts`` in format ``fmt`` under ``out`` (module doc). ``images``: None, "copy"
    or "link". Returns counts."""
    _check_classes(fmt, classes)
    ann_paths, img_paths, dataset_files = plan_outputs(dicts, fmt, out, images)
    planned = [p for p in [*ann_paths, *img_paths, *dataset_files] if p is not None]
    existing = [p for p in planned if os.path.lexists(p)]
    if existing and not overwrite:
        raise FileExistsError(
            f"{len(existing)} output files exist already (first: {existing[0]}); pass --overwrite "
            "to replace them"
        )
    sources = {os.path.realpath(d["file_name"]) for d in dicts}
    clash = [p for p in planned if os.path.realpath(p) in sources]
    if clash:
        raise ValueError(f"output {clash[0]} is a source image; choose another --output")
    for folder in {os.path.dirname(p) for p in planned}:
        os.makedirs(folder, exist_ok=True)

    counts = {"images": len(dicts), "objects": 0, "clamped": 0, "files": 0}
    coco_records = []
    for d, ann_path, img_path in tqdm(
        list(zip(dicts, ann_paths, img_paths)), desc=f"write {fmt}", disable=not progress
    ):
        src = d["file_name"]
        if img_path is not None:
            if os.path.lexists(img_path):
                os.remove(img_path)
            if images == "link":
                os.symlink(os.path.abspath(src), img_path)
            else:
                shutil.copy2(src, img_path)
            counts["files"] += 1
        image = os.path.abspath(img_path or src)
        counts["objects"] += len(d.get("annotations", ()))
        if fmt == "coco":
            coco_records.append({**d, "file_name": os.path.relpath(image, out)})
            continue
        assert ann_path is not None
        if fmt == "dota":
            text = dota_label_text(d, classes)
        elif fmt == "yolo-obb":
            text, clamped = yolo_label_text(d)
            counts["clamped"] += clamped
        elif fmt == "labelme":
            rel = os.path.relpath(image, os.path.dirname(ann_path))
            text = (
                json.dumps(convert_to_labelme_dict(d, classes, rel), indent=2, ensure_ascii=False)
                + "\n"
            )
        else:
            text = convert_to_rolabelimg_xml(d, classes, image)
        with open(ann_path, "w", encoding="utf-8") as f:
            f.write(text)
        counts["files"] += 1
    if fmt == "coco":
        ids = [r.get("image_id") for r in coco_records]
        if not all(type(i) is int for i in ids) or len(set(ids)) != len(ids):
            coco_records = [{**r, "image_id": i + 1} for i, r in enumerate(coco_records)]
        coco = convert_to_coco_rotated_dict(coco_records, {"thing_classes": list(classes)})
        with open(dataset_files[0], "w", encoding="utf-8") as f:
            json.dump(coco, f)
        counts["files"] += 1
    elif fmt == "yolo-obb":
        with open(dataset_files[0], "w", encoding="utf-8") as f:
            f.write(yolo_yaml_text(out, classes))
        counts["files"] += 1
        if counts["clamped"]:
            logger.warning(
                f"{counts['clamped']} objects reach more than {COORD_TOLERANCE:.0%} of the image "
                "size outside their image; their coordinates were clamped to the image border "
                "(YOLO-OBB readers refuse them)."
            )
    return counts


# ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.copy_images and args.link_images:
        raise SystemExit("--copy-images and --link-images exclude each other")
    if args.split and args.src != "yolo-obb":
        raise SystemExit("--split is for --from yolo-obb")
    out = os.path.abspath(args.output)
    for src in (args.input, args.images):
        if src and os.path.realpath(src) == os.path.realpath(out):
            raise SystemExit(f"--output {args.output} is a source folder; choose another")
    classes = None
    if args.classes is not None:
        classes = [c.strip() for c in args.classes.split(",")]
        if any(not c for c in classes) or len(set(classes)) != len(classes):
            raise SystemExit(f"--classes {args.classes!r}: empty or repeated names")
    dicts, names = read_dataset(
        args.src, args.input, args.images, classes, split=args.split, strict=args.strict
    )
    images = "copy" if args.copy_images else "link" if args.link_images else None
    counts = write_dataset(
        dicts,
        names,
        args.dst,
        out,
        images=images,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    summary = {"from": args.src, "to": args.dst, "output": out, "classes": names, **counts}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    try:
        main()
    except (ValueError, KeyError, OSError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e  # no quotes around it
        sys.exit(f"convert_dataset: error: {msg}")

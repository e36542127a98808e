#!/usr/bin/env python
"""Parse speed of the dataset loaders of rotated_det.data.datasets for DIOR-R, RBox-SSDD,
RSDD-SAR (roLabelImg), FAIR1M and HRSID, each next to a straightforward loop measured in the same
run on the same generated files.

    python dev/bench_dataset_parsers.py [--files 2000] [--repeat 3] [--workdir DIR]

For each format the script writes ``--files`` annotation files (HRSID: one JSON file with that
many images) with random rotated boxes (objects per image: DIOR-R 10, SSDD 3, RSDD-SAR 3,
FAIR1M 30, HRSID 3 with 4-16 point outlines) and empty image files (sizes come from the
annotations). Both sides build the same standard dataset dicts (file name, size, annotations
with box, class, difficult flag, polygon):

- ours: ``load_voc_rotated_instances`` / ``load_fair1m_instances`` / ``load_coco_polygon_json``
  (number strings converted in bulk, one vectorised polygon -> rotated box conversion for the
  whole dataset, the garbage collector paused);
- baseline: ``ElementTree.parse`` (or ``json.load``) and a loop over the objects, ``float()`` per
  coordinate and ``cv2.minAreaRect`` per object (the angle left in OpenCV's convention), as
  MMRotate's dataset classes and most conversion scripts do.

Prints, for each format, the CPU seconds of both (best of ``--repeat`` runs, one torch thread by
default) and of reading and parsing the files alone (the floor both share: ElementTree's parse is
most of the time of the XML formats), objects/s and the load average.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import tempfile
import time
import xml.etree.ElementTree as ET

import cv2
import numpy as np

from rotated_det.data.datasets.coco_polygons import load_coco_polygon_json
from rotated_det.data.datasets.fair1m import FAIR1M_CLASSES, load_fair1m_instances
from rotated_det.data.datasets.loading import gc_paused
from rotated_det.data.datasets.voc_rotated import (
    DIOR_R_CLASSES,
    VOC_ROTATED_SCHEMAS,
    load_voc_rotated_instances,
)


# ------------------------------------------------------------------------------ generated files
def _boxes(rng, n, size=800):
    """n random boxes (cx, cy, w, h, t) with t in radians clockwise on screen, and corners."""
    cx, cy = rng.uniform(40, size - 40, (2, n))
    w = rng.uniform(10, 120, n)
    h = w / rng.uniform(1, 5, n)
    t = rng.uniform(0, math.pi, n)
    corners = np.stack(
        [cv2.boxPoints(((a, b), (c, d), math.degrees(e))) for a, b, c, d, e in zip(cx, cy, w, h, t)]
    )
    return np.stack([cx, cy, w, h, t], 1), corners.reshape(n, 8)


def _voc_file(objects: list[str], size=800) -> str:
    return (
        f"<annotation>\n\t<filename>x.jpg</filename>\n\t<size>\n\t\t<width>{size}</width>\n"
        f"\t\t<height>{size}</height>\n\t\t<depth>3</depth>\n\t</size>\n"
        + "".join(objects)
        + "</annotation>\n"
    )


def _obj(name: str, box_tag: str, fields: list[tuple[str, float]]) -> str:
    inner = "".join(f"\t\t\t<{k}>{v:.4f}</{k}>\n" for k, v in fields)
    return (
        f"\t<object>\n\t\t<type>{box_tag}</type>\n\t\t<name>{name}</name>\n"
        f"\t\t<pose>Unspecified</pose>\n\t\t<truncated>0</truncated>\n"
        f"\t\t<difficult>0</difficult>\n\t\t<{box_tag}>\n{inner}\t\t</{box_tag}>\n\t</object>\n"
    )


def write_voc(root: str, schema: str, n_files: int, per_image: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    s = VOC_ROTATED_SCHEMAS[schema]
    names = DIOR_R_CLASSES if schema == "dior_r" else ("ship",)
    os.makedirs(os.path.join(root, "Annotations"), exist_ok=True)
    os.makedirs(os.path.join(root, "JPEGImages"), exist_ok=True)
    for i in range(n_files):
        params, corners = _boxes(rng, per_image)
        objs = []
        for k, (p, c) in enumerate(zip(params, corners)):
            fields = list(zip(s.corner_tags, c)) if s.corner_tags else []
            if s.param_tags:
                deg = p[4] if s.angle_unit == "rad" else math.degrees(p[4])
                fields += list(zip(s.param_tags, [*p[:4], deg]))
            objs.append(_obj(names[(i + k) % len(names)], s.box_tag, fields))
        with open(os.path.join(root, "Annotations", f"{i:05d}.xml"), "w") as f:
            f.write(_voc_file(objs))
        open(os.path.join(root, "JPEGImages", f"{i:05d}.jpg"), "wb").close()


def write_fair1m(root: str, n_files: int, per_image: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "labelXml"), exist_ok=True)
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    for i in range(n_files):
        _, corners = _boxes(rng, per_image, 1000)
        objs = []
        for k, c in enumerate(corners):
            name = FAIR1M_CLASSES[(i + k) % len(FAIR1M_CLASSES)].replace("-", " ")
            if name.startswith("other "):
                name = name.replace(" ", "-")
            pts = "".join(
                f"\t\t\t\t<point>{c[2 * j % 8]:.6f},{c[(2 * j + 1) % 8]:.6f}</point>\n"
                for j in range(5)
            )
            objs.append(
                "\t\t<object>\n\t\t\t<coordinate>pixel</coordinate>\n\t\t\t<type>rectangle</type>\n"
                "\t\t\t<description>None</description>\n\t\t\t<possibleresult>\n"
                f"\t\t\t\t<name>{name}</name>\n\t\t\t</possibleresult>\n\t\t\t<points>\n{pts}"
                "\t\t\t</points>\n\t\t</object>\n"
            )
        text = (
            "<?xml version='1.0' encoding='utf-8'?>\n<annotation>\n\t<source>\n"
            f"\t\t<filename>{i}.tif</filename>\n\t\t<origin>GF2/GF3</origin>\n\t</source>\n"
            "\t<size>\n\t\t<width>1000</width>\n\t\t<height>1000</height>\n\t\t<depth>3</depth>\n"
            "\t</size>\n\t<objects>\n" + "".join(objs) + "\t</objects>\n</annotation>\n"
        )
        with open(os.path.join(root, "labelXml", f"{i}.xml"), "w") as f:
            f.write(text)
        open(os.path.join(root, "images", f"{i}.tif"), "wb").close()


def write_hrsid(root: str, n_images: int, per_image: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for i in range(n_images):
        images.append({"id": i, "file_name": f"P{i:05d}.jpg", "height": 800, "width": 800})
        params, _ = _boxes(rng, per_image)
        for p in params:
            k = int(rng.integers(4, 17))  # outline points on the ellipse inside the box
            a = np.linspace(0, 2 * math.pi, k, endpoint=False)
            x = p[0] + p[2] / 2 * np.cos(a) * math.cos(p[4]) - p[3] / 2 * np.sin(a) * math.sin(p[4])
            y = p[1] + p[2] / 2 * np.cos(a) * math.sin(p[4]) + p[3] / 2 * np.sin(a) * math.cos(p[4])
            seg = np.round(np.stack([x, y], 1).ravel(), 1).tolist()
            x0, y0 = float(x.min()), float(y.min())
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": 1,
                    "iscrowd": 0,
                    "segmentation": [seg],
                    "area": 1.0,
                    "bbox": [x0, y0, float(x.max()) - x0, float(y.max()) - y0],
                }
            )
    path = os.path.join(root, "annotations.json")
    with open(path, "w") as f:
        json.dump(
            {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "ship"}]}, f
        )
    return path


# ---------------------------------------------------------------------------- naive baselines
def _rect(points: np.ndarray) -> list[float]:
    (cx, cy), (w, h), a = cv2.minAreaRect(points.astype(np.float32))
    return [cx, cy, w, h, a]


def naive_voc(root: str, schema: str, classes) -> list[dict]:
    s = VOC_ROTATED_SCHEMAS[schema]
    cat = {c.lower(): i for i, c in enumerate(classes)}
    out = []
    ann_dir = os.path.join(root, "Annotations")
    for fname in sorted(os.listdir(ann_dir)):
        root_el = ET.parse(os.path.join(ann_dir, fname)).getroot()
        size = root_el.find("size")
        w, h = int(size.find("width").text), int(size.find("height").text)
        anns = []
        for obj in root_el.findall("object"):
            box = obj.find(s.box_tag)
            if s.corner_tags:
                poly = [float(box.find(t).text) for t in s.corner_tags]
                bbox = _rect(np.array(poly).reshape(4, 2))
            else:
                cx, cy, bw, bh, t = (float(box.find(t).text) for t in s.param_tags)
                bbox = [cx, cy, bw, bh, -math.degrees(t)]
                poly = cv2.boxPoints(((cx, cy), (bw, bh), math.degrees(t))).ravel().tolist()
            anns.append(
                {
                    "bbox": bbox,
                    "category_id": cat[obj.find("name").text.lower()],
                    "difficult": int(obj.find("difficult").text),
                    "poly": poly,
                }
            )
        stem = os.path.splitext(fname)[0]
        out.append(
            {
                "file_name": os.path.join(root, "JPEGImages", stem + ".jpg"),
                "height": h,
                "width": w,
                "image_id": stem,
                "annotations": anns,
            }
        )
    return out


def naive_fair1m(root: str) -> list[dict]:
    cat = {c.lower(): i for i, c in enumerate(FAIR1M_CLASSES)}
    out = []
    for fname in sorted(os.listdir(os.path.join(root, "labelXml"))):
        root_el = ET.parse(os.path.join(root, "labelXml", fname)).getroot()
        w, h = int(root_el.find("size/width").text), int(root_el.find("size/height").text)
        anns = []
        for obj in root_el.find("objects").findall("object"):
            name = obj.find("possibleresult").find("name").text
            pts = [p.text.split(",") for p in obj.find("points").findall("point")][:4]
            poly = [float(v) for p in pts for v in p]
            anns.append(
                {
                    "bbox": _rect(np.array(poly).reshape(4, 2)),
                    "difficult": 0,
                    "category_id": cat["-".join(name.split()).lower()],
                    "poly": poly,
                }
            )
        stem = os.path.splitext(fname)[0]
        out.append(
            {
                "file_name": os.path.join(root, "images", stem + ".tif"),
                "height": h,
                "width": w,
                "image_id": stem,
                "annotations": anns,
            }
        )
    return out


def naive_hrsid(json_file: str, image_root: str) -> list[dict]:
    with open(json_file) as f:
        data = json.load(f)
    cat = {c["id"]: i for i, c in enumerate(sorted(data["categories"], key=lambda c: c["id"]))}
    by_id = {}
    for img in data["images"]:
        by_id[img["id"]] = {
            "file_name": os.path.join(image_root, img["file_name"]),
            "height": img["height"],
            "width": img["width"],
            "image_id": img["id"],
            "annotations": [],
        }
    for ann in data["annotations"]:
        pts = np.array([v for p in ann["segmentation"] for v in p]).reshape(-1, 2)
        bbox = _rect(pts)
        poly = cv2.boxPoints(((bbox[0], bbox[1]), (bbox[2], bbox[3]), bbox[4])).ravel().tolist()
        by_id[ann["image_id"]]["annotations"].append(
            {
                "bbox": bbox,
                "category_id": cat[ann["category_id"]],
                "difficult": int(ann.get("iscrowd", 0)),
                "poly": poly,
            }
        )
    return list(by_id.values())


# ------------------------------------------------------------------------------------- timing
@gc_paused()
def parse_only(paths: list[str], kind: str) -> int:
    """The floor both sides share: read and parse every file (ElementTree's C parser or json),
    nothing else (the garbage collector paused, as in the loaders)."""
    for p in paths:
        with open(p, "rb") as f:
            data = f.read()
        ET.fromstring(data) if kind == "xml" else json.loads(data)
    return len(paths)


def best_time(fn, repeat: int):
    """Best CPU time of this process over ``repeat`` runs (steadier than wall time when other
    jobs share the cores; one torch thread, so the two agree on an idle machine)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.process_time()
        result = fn()
        best = min(best, time.process_time() - t0)
    return best, result


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--files", type=int, default=2000, help="annotation files per format")
    ap.add_argument("--repeat", type=int, default=3, help="runs per loader (best is kept)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--workdir", default=None, help="where to write the files (default: temp)")
    args = ap.parse_args(argv)
    import logging

    import torch

    torch.set_num_threads(args.threads)
    logging.getLogger("rotated_det").setLevel(logging.WARNING)
    work = args.workdir or tempfile.mkdtemp(prefix="bench_parsers_")
    n = args.files
    print(
        f"load average: {', '.join(f'{v:.2f}' for v in os.getloadavg())} (cpus: "
        f"{os.cpu_count()}, torch threads: {args.threads}); {n} files per format; CPU seconds, "
        f"best of {args.repeat}"
    )
    cases = []
    for name, schema, per, classes in (
        ("DIOR-R", "dior_r", 10, DIOR_R_CLASSES),
        ("RBox-SSDD", "ssdd", 3, ("ship",)),
        ("RSDD-SAR", "rolabelimg", 3, ("ship",)),
    ):
        root = os.path.join(work, name)
        write_voc(root, schema, n, per)
        files = [os.path.join(root, "Annotations", f"{i:05d}.xml") for i in range(n)]
        cases.append(
            (
                name,
                lambda r=root, s=schema, c=classes: load_voc_rotated_instances(
                    os.path.join(r, "JPEGImages"), os.path.join(r, "Annotations"), c, s
                ),
                lambda r=root, s=schema, c=classes: naive_voc(r, s, c),
                lambda f=files: parse_only(f, "xml"),
            )
        )
    root = os.path.join(work, "FAIR1M")
    write_fair1m(root, n, 30)
    files = [os.path.join(root, "labelXml", f"{i}.xml") for i in range(n)]
    cases.append(
        (
            "FAIR1M",
            lambda r=root: load_fair1m_instances(
                os.path.join(r, "images"), os.path.join(r, "labelXml")
            ),
            lambda r=root: naive_fair1m(r),
            lambda f=files: parse_only(f, "xml"),
        )
    )
    root = os.path.join(work, "HRSID")
    os.makedirs(root, exist_ok=True)
    js = write_hrsid(root, n, 3)
    cases.append(
        (
            "HRSID",
            lambda: load_coco_polygon_json(js, root),
            lambda: naive_hrsid(js, root),
            lambda: parse_only([js], "json"),
        )
    )

    rows = []
    print(
        f"{'format':<10} {'files':>6} {'objects':>8} {'parse only s':>13} {'ours s':>7} "
        f"{'baseline s':>11} {'ours obj/s':>11} {'baseline obj/s':>15} {'speed-up':>9}"
    )
    for name, ours, naive, floor in cases:
        t_ours, d_ours = best_time(ours, args.repeat)
        t_naive, d_naive = best_time(naive, args.repeat)
        t_floor, _ = best_time(floor, args.repeat)
        n_obj = sum(len(d["annotations"]) for d in d_ours)
        assert n_obj == sum(len(d["annotations"]) for d in d_naive), name
        assert len(d_ours) == len(d_naive) == n, name
        row = dict(
            format=name, files=n, objects=n_obj, parse_s=t_floor, ours_s=t_ours, baseline_s=t_naive
        )
        rows.append(row)
        print(
            f"{name:<10} {n:>6} {n_obj:>8} {t_floor:>13.3f} {t_ours:>7.3f} {t_naive:>11.3f} "
            f"{n_obj / t_ours:>11.0f} {n_obj / t_naive:>15.0f} {t_naive / t_ours:>8.2f}x"
        )
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return rows


if __name__ == "__main__":
    main()

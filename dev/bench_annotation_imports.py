#!/usr/bin/env python
"""Parse speed of the annotation-tool imports, each next to a straightforward loop measured in the
same run.

    python dev/bench_annotation_imports.py [--quick] [--files 400] [--objects 60] [--repeats 5]

Generates ``--files`` labelme JSON files and as many roLabelImg XML files, each with
``--objects`` rotated rectangles at random angles (labelme: 4-point polygons and X-AnyLabeling
rotated rectangles, half each; roLabelImg: robndbox), and times, as objects per second:

1. labelme: ``load_labelme_instances`` (per-file validation, one vectorised polygon -> rotated
   box conversion for the dataset) vs a ``json.load`` loop with ``cv2.minAreaRect`` per shape
   building the same dataset dicts (box and polygon per object).
2. roLabelImg: ``load_rolabelimg_instances`` (one vectorised angle conversion, normalisation and
   corner computation) vs an ``ElementTree`` loop converting each object with ``math``
   (degrees, corners) into the same dicts.

Times are the best of ``--repeats`` interleaved rounds (the machine is shared). Prints a table.
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

from rotated_det.data.datasets.labelme import load_labelme_instances
from rotated_det.data.datasets.rolabelimg import load_rolabelimg_instances

CLASSES = ("plane", "ship", "small-vehicle")


def _boxes(rng, n: int, size: int = 1000) -> np.ndarray:
    """[n, 5] random (cx, cy, w, h, angle_deg) boxes inside a size x size image."""
    cx, cy = rng.uniform(60, size - 60, (2, n))
    w = rng.uniform(12, 100, n)
    h = w / rng.uniform(1, 4, n)
    return np.stack([cx, cy, w, h, rng.uniform(-90, 90, n)], axis=1)


def _corners(b: np.ndarray) -> np.ndarray:
    """[n, 4, 2] corners of [n, 5] boxes (counter-clockwise degrees, y down)."""
    a = np.radians(b[:, 4])
    u = np.stack([np.cos(a), -np.sin(a)], 1) * b[:, 2:3] / 2
    v = np.stack([np.sin(a), np.cos(a)], 1) * b[:, 3:4] / 2
    c = b[:, :2]
    return np.stack([c - u - v, c + u - v, c + u + v, c - u + v], axis=1)


def make_data(root: str, n_files: int, n_obj: int, seed: int = 0) -> tuple[str, str]:
    """Write the labelme and roLabelImg folders (each with a 1000 x 1000 image per file, hard
    links of one small PNG: the loaders only check the image exists)."""
    rng = np.random.default_rng(seed)
    lm, ro = os.path.join(root, "labelme"), os.path.join(root, "rolabelimg")
    os.makedirs(lm)
    os.makedirs(ro)
    png = os.path.join(root, "img.png")
    cv2.imwrite(png, np.zeros((8, 8, 3), np.uint8))
    for i in range(n_files):
        stem = f"img{i:05d}"
        for folder in (lm, ro):
            os.link(png, os.path.join(folder, stem + ".png"))
        b = _boxes(rng, n_obj)
        corners = np.round(_corners(b), 2).tolist()
        shapes = [
            {
                "label": CLASSES[j % 3],
                "points": corners[j],
                "group_id": None,
                "description": "",
                "shape_type": "polygon" if j % 2 else "rotation",
                "flags": {},
                "mask": None,
            }
            for j in range(n_obj)
        ]
        data = {
            "version": "5.5.0",
            "flags": {},
            "shapes": shapes,
            "imagePath": stem + ".png",
            "imageData": None,
            "imageHeight": 1000,
            "imageWidth": 1000,
        }
        with open(os.path.join(lm, stem + ".json"), "w") as f:
            json.dump(data, f, indent=2)
        objs = "".join(
            f"<object><type>robndbox</type><name>{CLASSES[j % 3]}</name><pose>Unspecified</pose>"
            f"<truncated>0</truncated><difficult>0</difficult><robndbox><cx>{x[0]:.4f}</cx>"
            f"<cy>{x[1]:.4f}</cy><w>{x[2]:.4f}</w><h>{x[3]:.4f}</h>"
            f"<angle>{math.radians(-x[4]) % math.pi:.6f}</angle></robndbox></object>\n"
            for j, x in enumerate(b.tolist())
        )
        with open(os.path.join(ro, stem + ".xml"), "w") as f:
            f.write(
                f"<annotation verified='no'><folder>ro</folder><filename>{stem}</filename>"
                f"<size><width>1000</width><height>1000</height><depth>3</depth></size>\n"
                f"{objs}</annotation>\n"
            )
    return lm, ro


# ------------------------------------------------------------------------------ naive baselines
def naive_labelme(json_dir: str) -> list[dict]:
    """json.load per file, cv2.minAreaRect per shape, a dict per object."""
    out = []
    for f in sorted(os.listdir(json_dir)):
        if not f.endswith(".json"):
            continue
        with open(os.path.join(json_dir, f)) as fh:
            data = json.load(fh)
        image = os.path.join(json_dir, data["imagePath"])
        assert os.path.isfile(image)
        anns = []
        for s in data["shapes"]:
            pts = s["points"]
            (cx, cy), (w, h), a = cv2.minAreaRect(np.array(pts, np.float32))
            anns.append(
                {
                    "bbox": [cx, cy, w, h, -a],
                    "category_id": CLASSES.index(s["label"]),
                    "poly": [v for p in pts for v in p],
                }
            )
        out.append(
            {
                "file_name": image,
                "height": data["imageHeight"],
                "width": data["imageWidth"],
                "annotations": anns,
            }
        )
    return out


def naive_rolabelimg(xml_dir: str) -> list[dict]:
    """ElementTree per file, math per object (angle to degrees, corners), a dict per object."""
    out = []
    for f in sorted(os.listdir(xml_dir)):
        if not f.endswith(".xml"):
            continue
        root = ET.parse(os.path.join(xml_dir, f)).getroot()
        image = os.path.join(xml_dir, f[:-4] + ".png")
        assert os.path.isfile(image)
        anns = []
        for obj in root.iter("object"):
            rb = obj.find("robndbox")
            cx, cy, w, h, t = (float(rb.find(k).text) for k in ("cx", "cy", "w", "h", "angle"))
            c, s = math.cos(t), math.sin(t)
            poly = []
            for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)):
                poly += [cx + c * dx - s * dy, cy + s * dx + c * dy]
            anns.append(
                {
                    "bbox": [cx, cy, w, h, -math.degrees(t)],
                    "category_id": CLASSES.index(obj.find("name").text),
                    "difficult": int(obj.find("difficult").text),
                    "poly": poly,
                }
            )
        out.append(
            {
                "file_name": image,
                "height": int(root.find("size/height").text),
                "width": int(root.find("size/width").text),
                "annotations": anns,
            }
        )
    return out


def interleaved(fns: dict, repeats: int) -> dict:
    """Best wall time of each function over ``repeats`` rounds, alternating within a round."""
    best = {k: float("inf") for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--files", type=int, default=400)
    p.add_argument("--objects", type=int, default=60, help="objects per file")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="100 files, 3 repeats")
    args = p.parse_args()
    if args.quick:
        args.files, args.repeats = 100, 3
    root = tempfile.mkdtemp(prefix="bench_annotation_imports_")
    try:
        lm, ro = make_data(root, args.files, args.objects)
        n = args.files * args.objects
        # the same boxes, as a check that both sides do the work
        ours, naive = load_labelme_instances(lm, class_names=CLASSES), naive_labelme(lm)
        assert (
            sum(len(d["annotations"]) for d in ours)
            == n
            == sum(len(d["annotations"]) for d in naive)
        )
        rows = []
        t = interleaved(
            {
                "ours": lambda: load_labelme_instances(lm, class_names=CLASSES),
                "naive": lambda: naive_labelme(lm),
            },
            args.repeats,
        )
        rows.append(("labelme JSON", "json.load + cv2.minAreaRect loop", t))
        t = interleaved(
            {
                "ours": lambda: load_rolabelimg_instances(ro, class_names=CLASSES),
                "naive": lambda: naive_rolabelimg(ro),
            },
            args.repeats,
        )
        rows.append(("roLabelImg XML", "ElementTree + math loop", t))
        print(
            f"{args.files} files x {args.objects} objects, best of {args.repeats}; load "
            f"{os.getloadavg()[0]:.2f}"
        )
        print(f"{'format':<16}{'rotated_det':>16}{'baseline':>16}{'speed-up':>10}  baseline")
        for name, base, t in rows:
            print(
                f"{name:<16}{n / t['ours']:>12,.0f} o/s{n / t['naive']:>12,.0f} o/s"
                f"{t['naive'] / t['ours']:>9.2f}x  {base}"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Benchmarks of the data pipeline, each next to a naive baseline measured in the same run.

    python dev/bench_data.py [--quick] [--workdir /tmp/bench_data]

1. Label parsing (objects/s): DOTA label files of a generated 8000 x 8000 scene with 5000 objects
   (x 8 files): ``load_dota_instances`` (batched float parsing, one vectorised polygon -> rotated
   box conversion) vs a per-line loop with ``cv2.minAreaRect`` per object (DOTA-devkit style).
   The conversion alone (``rotated_det.structures.poly_to_rbox``) on label-file sized arrays
   (10 to 10000 polygons) vs ``cv2.minAreaRect`` per polygon.
2. Splitting (megapixels/s): that scene cut into 1024 px patches with a 200 px gap
   (``split_dota``, vectorised Sutherland-Hodgman object/window assignment) vs a DOTA-devkit style
   loop testing every object against every window with shapely. Both write the same PNG patches
   and label files; the assignment step alone is timed too.
3. Train loader (images/s), 2 workers, batch 4, flips: ``build_detection_train_loader`` +
   ``DatasetMapper`` on the synthetic 512 px patches vs a plain torch Dataset that re-reads and
   re-parses its label file for every item (the usual quick script).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import tempfile
import time

import cv2
import numpy as np

from rotated_det.data.datasets.dota import load_dota_instances
from rotated_det.data.dota_split import assign_objects_to_windows, get_sliding_windows, split_dota


def _scene(root: str, size: int, n_obj: int, seed: int = 0):
    """A size x size BGR scene with n_obj filled rotated rectangles, written in DOTA format."""
    rng = np.random.default_rng(seed)
    low = rng.integers(60, 140, (size // 64, size // 64, 3)).astype(np.uint8)
    img = cv2.resize(low, (size, size), interpolation=cv2.INTER_LINEAR)
    cx, cy = rng.uniform(20, size - 20, (2, n_obj))
    w = rng.uniform(12, 120, n_obj)
    h = w / rng.uniform(1, 4, n_obj)
    a = np.radians(rng.uniform(-180, 180, n_obj))
    u = np.stack([np.cos(a), -np.sin(a)], 1)
    v = np.stack([np.sin(a), np.cos(a)], 1)
    c = np.stack([cx, cy], 1)
    corners = np.stack(
        [
            c - w[:, None] / 2 * u - h[:, None] / 2 * v,
            c + w[:, None] / 2 * u - h[:, None] / 2 * v,
            c + w[:, None] / 2 * u + h[:, None] / 2 * v,
            c - w[:, None] / 2 * u + h[:, None] / 2 * v,
        ],
        axis=1,
    )
    colors = rng.integers(0, 255, (n_obj, 3))
    for q, col in zip(corners, colors):
        cv2.fillPoly(img, [np.round(q).astype(np.int32)], tuple(int(x) for x in col))
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    os.makedirs(os.path.join(root, "labelTxt"), exist_ok=True)
    cv2.imwrite(os.path.join(root, "images", "scene.png"), img, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    lines = ["imagesource:bench", "gsd:1"] + [
        " ".join(f"{x:.1f}" for x in q.ravel()) + f" {('plane', 'ship', 'small-vehicle')[i % 3]} "
        f"{int(i % 17 == 0)}"
        for i, q in enumerate(corners)
    ]
    with open(os.path.join(root, "labelTxt", "scene.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return img


# ------------------------------------------------------------------------------ naive baselines
def naive_parse(label_dir: str, make_dicts: bool) -> int:
    """Per-line float parsing and cv2.minAreaRect per object; arrays or per-object dicts."""
    n = 0
    for fname in sorted(os.listdir(label_dir)):
        boxes, annos = [], []
        with open(os.path.join(label_dir, fname)) as f:
            for line in f:
                parts = line.split()
                if len(parts) < 9:
                    continue
                poly = [float(x) for x in parts[:8]]
                (cx, cy), (w, h), ang = cv2.minAreaRect(np.array(poly, np.float32).reshape(4, 2))
                if make_dicts:
                    annos.append(
                        {
                            "bbox": [cx, cy, w, h, -ang],
                            "category": parts[8],
                            "difficult": int(parts[9]) if len(parts) > 9 else 0,
                            "poly": poly,
                        }
                    )
                else:
                    boxes.append((cx, cy, w, h, -ang))
                n += 1
        if not make_dicts:
            np.asarray(boxes)
    return n


def naive_min_area_rects(polys: np.ndarray) -> np.ndarray:
    """cv2.minAreaRect per polygon, angle turned into our counter-clockwise convention."""
    out = np.empty((len(polys), 5))
    for i, p in enumerate(polys.astype(np.float32).reshape(-1, 4, 2)):
        (cx, cy), (w, h), ang = cv2.minAreaRect(p)
        out[i] = (cx, cy, w, h, -ang)
    return out


def interleaved(fns: dict, repeats: int) -> dict:
    """Best (smallest) wall time of each function over ``repeats`` rounds, the functions
    alternating within each round so that a change of machine load hits all of them alike."""
    best = {k: float("inf") for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t)
    return best


def best_of(fn, repeats):
    """Smallest wall time of ``repeats`` calls (the machine is shared: the minimum is the
    least disturbed run)."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def naive_split(img_path, label_path, out_dir, size=1024, gap=200, iof_thr=0.7):
    import shapely.geometry as sg

    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    os.makedirs(os.path.join(out_dir, "labelTxt"), exist_ok=True)
    img = cv2.imread(img_path)
    h, w = img.shape[:2]
    objs = []
    with open(label_path) as f:
        for line in f:
            p = line.split()
            if len(p) >= 9:
                objs.append((sg.Polygon(np.array(p[:8], float).reshape(4, 2)), p[8], p[9]))
    step = size - gap
    n_keep = 0
    for y in range(0, max(h - gap, 1), step):
        for x in range(0, max(w - gap, 1), step):
            x0, y0 = min(x, max(w - size, 0)), min(y, max(h - size, 0))
            win = sg.box(x0, y0, x0 + size, y0 + size)
            lines = []
            for poly, cls, diff in objs:
                inter = poly.intersection(win)
                if poly.area > 0 and inter.area / poly.area >= iof_thr:
                    q = np.asarray(inter.minimum_rotated_rectangle.exterior.coords)[:4]
                    q = q - (x0, y0)
                    lines.append(" ".join(f"{v:.1f}" for v in q.ravel()) + f" {cls} {diff}")
            n_keep += len(lines)
            name = f"scene__1.0__{x0}___{y0}"
            cv2.imwrite(
                os.path.join(out_dir, "images", name + ".png"), img[y0 : y0 + size, x0 : x0 + size]
            )
            with open(os.path.join(out_dir, "labelTxt", name + ".txt"), "w") as f:
                f.write("\n".join(lines))
    return n_keep


class NaiveDataset:
    """Re-reads and re-parses the label file of every item; cv2.minAreaRect per object."""

    def __init__(self, image_dir, label_dir):
        self.items = sorted(os.listdir(image_dir))
        self.image_dir, self.label_dir = image_dir, label_dir

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        import torch

        f = self.items[i % len(self.items)]
        img = cv2.imread(os.path.join(self.image_dir, f))
        boxes, classes = [], []
        with open(os.path.join(self.label_dir, os.path.splitext(f)[0] + ".txt")) as fh:
            for line in fh:
                p = line.split()
                if len(p) < 9 or ":" in p[0]:
                    continue
                pts = np.array([float(x) for x in p[:8]], np.float32).reshape(4, 2)
                (cx, cy), (w, h), a = cv2.minAreaRect(pts)
                boxes.append([cx, cy, w, h, -a])
                classes.append(hash(p[8]) % 6)
        if np.random.rand() < 0.5:
            img = img[:, ::-1]
            boxes = [[img.shape[1] - b[0], b[1], b[2], b[3], -b[4]] for b in boxes]
        return {
            "image": torch.as_tensor(np.ascontiguousarray(img.transpose(2, 0, 1))),
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 5),
            "classes": torch.tensor(classes),
        }


def _list_collate(b):
    return b


def _rate(n, t):
    return n / max(t, 1e-9)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller scene (4000 px, 1250 objects)")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--loader-iters", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    args = ap.parse_args()
    size, n_obj = (4000, 1250) if args.quick else (8000, 5000)
    work = args.workdir or tempfile.mkdtemp(prefix="bench_data_")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    print(f"workdir {work}")
    t = time.perf_counter()
    _scene(os.path.join(work, "scene"), size, n_obj)
    print(f"generated a {size}x{size} scene with {n_obj} objects in {time.perf_counter() - t:.1f}s")

    # 1. label parsing ---------------------------------------------------------------------
    lbl = os.path.join(work, "parse")
    os.makedirs(os.path.join(lbl, "images"))
    os.makedirs(os.path.join(lbl, "labelTxt"))
    tiny = np.zeros((size, size, 3), np.uint8)[:8, :8]
    for i in range(8):
        cv2.imwrite(os.path.join(lbl, "images", f"s{i}.png"), tiny)
        shutil.copy(
            os.path.join(work, "scene", "labelTxt", "scene.txt"),
            os.path.join(lbl, "labelTxt", f"s{i}.txt"),
        )
    total = 8 * n_obj
    from rotated_det.structures import poly_to_rbox
    from rotated_det.structures.dota_format import parse_dota_label_file

    scene_polys = parse_dota_label_file(os.path.join(work, "scene", "labelTxt", "scene.txt")).polys
    labels_for_convert = np.concatenate([scene_polys] * (1 + 10000 // len(scene_polys)))

    files = sorted(os.listdir(os.path.join(lbl, "labelTxt")))

    def ours_arrays():
        for f in files:
            lab = parse_dota_label_file(os.path.join(lbl, "labelTxt", f))
            poly_to_rbox(lab.polys)

    r = args.repeats
    ldir = os.path.join(lbl, "labelTxt")
    t = interleaved({"ours": ours_arrays, "naive": lambda: naive_parse(ldir, False)}, r + 2)
    print(
        f"[parse]  to box arrays   parse_dota_label_file + poly_to_rbox: "
        f"{_rate(total, t['ours']):>9,.0f} objects/s   naive per-line + cv2.minAreaRect: "
        f"{_rate(total, t['naive']):>9,.0f} objects/s   (x{t['naive'] / t['ours']:.1f})"
    )
    t = interleaved(
        {
            "ours": lambda: load_dota_instances(
                os.path.join(lbl, "images"), ldir, out_of_image="keep"
            ),
            "naive": lambda: naive_parse(ldir, True),
        },
        r + 2,
    )
    print(
        f"[parse]  to dataset dicts load_dota_instances:                  "
        f"{_rate(total, t['ours']):>9,.0f} objects/s   naive per-line dicts:             "
        f"{_rate(total, t['naive']):>9,.0f} objects/s   (x{t['naive'] / t['ours']:.1f})"
    )

    polys_by_n = {n: labels_for_convert[:n] for n in (10, 100, 1000, 10000)}
    for n, polys in polys_by_n.items():
        reps = max(3, 3000 // n)
        t = interleaved(
            {
                "ours": lambda p=polys: poly_to_rbox(p),
                "naive": lambda p=polys: naive_min_area_rects(p),
            },
            reps,
        )
        print(
            f"[convert] {len(polys):>5} polygons: poly_to_rbox {t['ours'] * 1e6:9.1f} us   "
            f"cv2.minAreaRect per polygon {t['naive'] * 1e6:9.1f} us   "
            f"(x{t['naive'] / t['ours']:.1f})"
        )

    # 2. splitting ---------------------------------------------------------------------------
    mp = size * size / 1e6
    img_dir, ann_dir = (
        os.path.join(work, "scene", "images"),
        os.path.join(work, "scene", "labelTxt"),
    )
    labels = parse_dota_label_file(os.path.join(ann_dir, "scene.txt"))
    wins = get_sliding_windows(size, size, [1024], [200])
    t_assign = best_of(
        lambda: assign_objects_to_windows(labels.polys, wins, 0.7, image_size=(size, size)), r
    )
    res = assign_objects_to_windows(labels.polys, wins, 0.7, image_size=(size, size))
    import shapely.geometry as sg

    polys = [sg.Polygon(p.reshape(4, 2)) for p in labels.polys]
    t = time.perf_counter()
    n_ref = 0
    for wdw in wins:
        box = sg.box(*wdw)
        for p in polys:
            if p.area > 0 and p.intersection(box).area / p.area >= 0.7:
                n_ref += 1
    t_assign_naive = time.perf_counter() - t
    print(
        f"[split]  object/window assignment ({len(wins)} windows x {n_obj} objects): "
        f"vectorised {t_assign * 1e3:.1f} ms  shapely loop {t_assign_naive * 1e3:.0f} ms "
        f"(x{t_assign_naive / t_assign:.0f}); pieces {len(res.obj_idx)} vs {n_ref}"
    )
    summary = {}

    def ours_split():
        shutil.rmtree(os.path.join(work, "ours"), ignore_errors=True)
        summary.update(
            split_dota(
                [img_dir],
                os.path.join(work, "ours"),
                [ann_dir],
                sizes=[1024],
                gaps=[200],
                progress=False,
            )
        )

    def naive_split_run():
        shutil.rmtree(os.path.join(work, "naive"), ignore_errors=True)
        naive_split(
            os.path.join(img_dir, "scene.png"),
            os.path.join(ann_dir, "scene.txt"),
            os.path.join(work, "naive"),
        )

    t = interleaved({"ours": ours_split, "naive": naive_split_run}, max(r - 1, 1))
    print(
        f"[split]  split_dota (read, crop, PNG write, labels): {_rate(mp, t['ours']):6.2f} MP/s "
        f"({summary['patches']} patches, {summary['kept']} pieces, {t['ours']:.1f}s)   "
        f"naive devkit-style loop: {_rate(mp, t['naive']):6.2f} MP/s ({t['naive']:.1f}s)   "
        f"(x{t['naive'] / t['ours']:.1f})"
    )

    # 3. train loader --------------------------------------------------------------------------
    import itertools

    import torch

    import rotated_det.data.transforms as T
    from rotated_det.data import DatasetMapper, build_detection_train_loader
    from rotated_det.data.datasets import builtin

    syn = builtin.prepare_synthetic(os.path.join(work, "synthetic"))
    from rotated_det.data.datasets.synthetic import SYNTHETIC_CLASSES

    pdir = os.path.join(syn, "split_512", "train")
    dicts = load_dota_instances(
        os.path.join(pdir, "images"), os.path.join(pdir, "labelTxt"), SYNTHETIC_CLASSES
    )
    iters, bs = args.loader_iters, 4
    loader = build_detection_train_loader(
        dicts,
        mapper=DatasetMapper(is_train=True, augmentations=[T.RandomFlip()]),
        total_batch_size=bs,
        num_workers=2,
        seed=0,
    )
    naive_ds = NaiveDataset(os.path.join(pdir, "images"), os.path.join(pdir, "labelTxt"))
    naive = torch.utils.data.DataLoader(
        naive_ds,
        batch_size=bs,
        # shuffled and long enough not to end during the benchmark
        sampler=torch.utils.data.RandomSampler(naive_ds, replacement=True, num_samples=10**7),
        num_workers=2,
        collate_fn=_list_collate,
    )
    its = {"ours": iter(loader), "naive": iter(naive)}
    for it in its.values():
        next(it)  # start the workers
    t = interleaved(
        {k: (lambda it=it: [None for _ in itertools.islice(it, iters)]) for k, it in its.items()},
        r,
    )
    t_ours, t_naive = t["ours"], t["naive"]
    del its, loader, naive
    import gc

    gc.collect()
    n = iters * bs
    print(
        f"[loader] build_detection_train_loader (2 workers): {_rate(n, t_ours):7.1f} images/s   "
        f"naive Dataset re-parsing labels (2 workers): {_rate(n, t_naive):7.1f} images/s   "
        f"(x{t_naive / t_ours:.2f})"
    )
    print(f"(machine: {os.cpu_count()} CPUs; timings include contention from other processes)")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return math.nan


if __name__ == "__main__":
    main()

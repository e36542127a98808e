#!/usr/bin/env python
"""Benchmark of the evaluation hot paths, each next to a baseline measured in the same run.

1. Rotated DOTA mAP of ``--images`` images x ``--dets`` detections over 15 classes
   (``rotated_voc_map``), against
   - the straightforward reference of the DOTA kit's algorithm (tests/evaluation/dota_reference.py:
     per-detection loop, shapely polygon IoU after the kit's horizontal-box prefilter), and
   - the kit's per-detection loop calling the compiled IoU (isolates the vectorisation),
   both run on the first ``--ref-images`` images and extrapolated linearly in the number of
   images (the work is per image); agreement of the APs on that subset is checked.
2. Merging ``--patches`` patches' detections into full images (``PatchMerger``, incremental,
   images released on their last patch) against
   - collect-all-then-NMS in Python (every raw detection kept until the end, then per image and
     class a greedy NMS with shapely polygon IoU, as the DOTA kit's merge script does), run on
     ``--ref-merge-images`` images and extrapolated, and
   - collect-all-then-``batched_nms_rotated`` per image (the compiled op in one call per image,
     every raw detection held: shows the memory cost; the merger's per-class ``nms_rotated``
     calls give the same boxes, checked).

    .venv/bin/python dev/bench_eval.py            # full sizes (about a minute or two on 2 cores)
    .venv/bin/python dev/bench_eval.py --quick    # small sizes, smoke test
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rotated_det.evaluation.patch_merger import PatchMerger, patch_boxes_to_image  # noqa: E402
from rotated_det.evaluation.rotated_map import (  # noqa: E402
    COCO_IOU_THRESHOLDS,
    rotated_voc_map,
)
from rotated_det.layers import batched_nms_rotated, pairwise_iou_rotated  # noqa: E402
from rotated_det.structures.dota_patch_name import (  # noqa: E402
    format_patch_name,
    parse_patch_name,
)


def _load_reference():
    path = REPO / "tests" / "evaluation" / "dota_reference.py"
    spec = importlib.util.spec_from_file_location("_dota_reference_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ref = _load_reference()


# ------------------------------------------------------------------------------------------------
# 1. mAP
# ------------------------------------------------------------------------------------------------
def make_map_data(num_images, dets_per_image, gts_per_image, num_classes, seed=0):
    rng = np.random.default_rng(seed)
    ng = num_images * gts_per_image
    gt_img = np.repeat(np.arange(num_images), gts_per_image)
    gt_box = np.c_[
        rng.uniform(0, 1024, (ng, 2)), rng.uniform(8, 80, (ng, 2)), rng.uniform(-90, 90, ng)
    ]
    gt_cls = rng.integers(0, num_classes, ng)
    gt_diff = rng.random(ng) < 0.05
    nd = num_images * dets_per_image
    det_img = np.repeat(np.arange(num_images), dets_per_image)
    # 60% of the detections are noisy copies of a GT of their image, the rest background.
    src = det_img * gts_per_image + rng.integers(0, gts_per_image, nd)
    det_box = gt_box[src] + rng.normal(0, 1, (nd, 5)) * [4, 4, 3, 3, 8]
    bg = rng.random(nd) < 0.4
    det_box[bg, :2] = rng.uniform(0, 1024, (int(bg.sum()), 2))
    det_box[:, 2:4] = np.abs(det_box[:, 2:4]) + 1
    det_cls = np.where(rng.random(nd) < 0.9, gt_cls[src], rng.integers(0, num_classes, nd))
    det_score = rng.random(nd)
    return (det_img, det_box, det_score, det_cls), (gt_img, gt_box, gt_cls, gt_diff)


def kit_loop_compiled_iou(dets, gts, num_classes, thr=0.5):
    """The DOTA kit's per-detection loop, with the compiled IoU instead of polygons."""
    det_img, det_box, det_score, det_cls = dets
    gt_img, gt_box, gt_cls, gt_diff = gts
    aps = []
    for c in range(num_classes):
        recs = {}
        sel = np.flatnonzero(gt_cls == c)
        for i in np.unique(gt_img[sel]):
            s = sel[gt_img[sel] == i]
            recs[i] = (torch.from_numpy(gt_box[s]), gt_diff[s], np.zeros(len(s), bool))
        npos = int((~gt_diff[sel]).sum())
        ds = np.flatnonzero(det_cls == c)
        ds = ds[np.argsort(-det_score[ds], kind="stable")]
        tp, fp = np.zeros(len(ds)), np.zeros(len(ds))
        for k, d in enumerate(ds):
            r = recs.get(det_img[d])
            if r is None:
                fp[k] = 1
                continue
            iou = pairwise_iou_rotated(torch.from_numpy(det_box[d : d + 1]), r[0])[0].numpy()
            j = int(iou.argmax())
            if iou[j] > thr:
                if not r[1][j]:
                    if not r[2][j]:
                        tp[k], r[2][j] = 1, True
                    else:
                        fp[k] = 1
            else:
                fp[k] = 1
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        if npos == 0:
            aps.append(np.nan)
            continue
        aps.append(ref.voc_ap_ref(tp / npos, tp / np.maximum(tp + fp, np.finfo(float).eps)))
    return np.array(aps)


def shapely_reference(dets, gts, num_classes, thr=0.5):
    det_img, det_box, det_score, det_cls = dets
    gt_img, gt_box, gt_cls, gt_diff = gts
    d = [(int(i), int(k), float(s), b) for i, b, s, k in zip(det_img, det_box, det_score, det_cls)]
    g = [(int(i), int(k), b, bool(x)) for i, b, k, x in zip(gt_img, gt_box, gt_cls, gt_diff)]
    return ref.dataset_aps_ref(d, g, num_classes, thr, False)


def subset(arrays, image_ids, n):
    keep = image_ids < n
    return tuple(a[keep] for a in arrays)


def bench_map(args):
    C = 15
    dets, gts = make_map_data(args.images, args.dets, args.gts, C)
    print(
        f"\n== mAP: {args.images} images x {args.dets} detections ({len(dets[0])} in all), "
        f"{args.gts} GT per image, {C} classes"
    )
    t = time.perf_counter()
    res = rotated_voc_map(*dets, *gts, num_classes=C, iou_thresholds=(0.5,))
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    res10 = rotated_voc_map(*dets, *gts, num_classes=C, iou_thresholds=COCO_IOU_THRESHOLDS)
    t_ours10 = time.perf_counter() - t
    print(f"rotated_voc_map, IoU 0.5          : {t_ours:8.3f} s   mAP50 = {res.mean_ap():.4f}")
    print(
        f"rotated_voc_map, IoU 0.50:0.95    : {t_ours10:8.3f} s   "
        f"mAP50-95 = {res10.mean_ap_over_thresholds():.4f}"
    )

    n = args.ref_images
    scale = args.images / n
    d_sub, g_sub = subset(dets, dets[0], n), subset(gts, gts[0], n)
    ours_sub = rotated_voc_map(*d_sub, *g_sub, num_classes=C).class_ap()
    t = time.perf_counter()
    loop_aps = kit_loop_compiled_iou(d_sub, g_sub, C)
    t_loop = (time.perf_counter() - t) * scale
    t = time.perf_counter()
    ref_aps = shapely_reference(d_sub, g_sub, C)
    t_ref = (time.perf_counter() - t) * scale
    diff = np.nanmax(np.abs(ours_sub - ref_aps))
    assert np.array_equal(np.isnan(ours_sub), np.isnan(ref_aps)) and diff < 1e-6, diff
    assert np.nanmax(np.abs(loop_aps - ref_aps)) < 1e-6
    print(
        f"kit loop + compiled IoU (baseline): {t_loop:8.3f} s   (run on {n} images, x{scale:g})"
        f"   -> ours {t_loop / t_ours:6.1f}x faster"
    )
    print(
        f"shapely reference (baseline)      : {t_ref:8.3f} s   (run on {n} images, x{scale:g})"
        f"   -> ours {t_ref / t_ours:6.1f}x faster"
    )
    print(f"per-class AP agreement with the reference on those {n} images: max |diff| = {diff:.1e}")


# ------------------------------------------------------------------------------------------------
# 2. patch merging
# ------------------------------------------------------------------------------------------------
def make_patches(num_patches, dets_per_patch, classes=15, seed=1, grid=5, size=1024, gap=200):
    """Full images of grid x grid overlapping patches; objects seen by overlapping patches are
    reported by each of them (the duplicates merging must remove)."""
    rng = np.random.default_rng(seed)
    step = size - gap
    per_image = grid * grid
    num_images = int(np.ceil(num_patches / per_image))
    extent = step * (grid - 1) + size
    patches = []
    for img in range(num_images):
        n_obj = dets_per_patch * per_image // 2
        obj = np.c_[
            rng.uniform(0, extent, (n_obj, 2)), rng.uniform(8, 60, (n_obj, 2)),
            rng.uniform(-90, 90, n_obj),
        ]  # fmt: skip
        obj_cls = rng.integers(0, classes, n_obj)
        for gy in range(grid):
            for gx in range(grid):
                if len(patches) == num_patches:
                    break
                x0, y0 = gx * step, gy * step
                inside = np.flatnonzero(
                    (obj[:, 0] >= x0) & (obj[:, 0] < x0 + size)
                    & (obj[:, 1] >= y0) & (obj[:, 1] < y0 + size)
                )[:dets_per_patch]  # fmt: skip
                b = obj[inside].copy()
                b[:, :2] -= (x0, y0)
                b += rng.normal(0, 0.5, b.shape)
                b[:, 2:4] = np.abs(b[:, 2:4]) + 1
                extra = dets_per_patch - len(b)
                if extra > 0:
                    fp = np.c_[
                        rng.uniform(0, size, (extra, 2)), rng.uniform(8, 60, (extra, 2)),
                        rng.uniform(-90, 90, extra),
                    ]  # fmt: skip
                    b = np.concatenate([b, fp])
                c = np.concatenate([obj_cls[inside], rng.integers(0, classes, max(extra, 0))])
                patches.append(
                    (
                        format_patch_name(f"IMG{img:05d}", 1.0, x0, y0),
                        b.astype(np.float32),
                        rng.random(len(b)).astype(np.float32),
                        c.astype(np.int64),
                    )
                )
    return patches, per_image


def python_poly_nms(boxes, scores, thr):
    """Greedy NMS with shapely polygon IoU (the DOTA kit merges with such a loop)."""
    from shapely.geometry import Polygon

    polys = [Polygon(np.asarray(ref.rbox_to_poly_ref(b)).reshape(4, 2)) for b in boxes]
    order = list(np.argsort(-scores, kind="stable"))
    keep = []
    while order:
        i = order.pop(0)
        keep.append(i)
        rest = []
        for j in order:
            inter = polys[i].intersection(polys[j]).area
            union = polys[i].area + polys[j].area - inter
            if union <= 0 or inter / union <= thr:
                rest.append(j)
        order = rest
    return keep


def bench_merge(args):
    patches, per_image = make_patches(args.patches, args.patch_dets)
    num_images = len({p[0].split("__")[0] for p in patches})
    total = sum(len(p[2]) for p in patches)
    print(
        f"\n== merging: {len(patches)} patches ({per_image} per image, {num_images} images), "
        f"{total} detections, NMS IoU 0.1"
    )
    expected = {}
    for name, *_ in patches:
        key = name.split("__")[0]
        expected[key] = expected.get(key, 0) + 1

    t = time.perf_counter()
    merger = PatchMerger(0.1, expected_patches=expected)
    kept, peak = 0, 0
    for name, b, s, c in patches:
        merger.add(name, b, s, c)
        peak = max(peak, merger.num_buffered_detections)
        for dets in merger.pop_finished().values():
            kept += len(dets)
    for dets in merger.finish().values():
        kept += len(dets)
    t_ours = time.perf_counter() - t
    print(
        f"PatchMerger (incremental)                    : {t_ours:8.3f} s   kept {kept}, "
        f"peak raw detections held {peak}"
    )

    # Baseline: collect everything, then compiled NMS per image.
    t = time.perf_counter()
    held: dict[str, list] = {}
    for name, b, s, c in patches:
        img, rate, x, y = parse_patch_name(name)
        held.setdefault(img, []).append((patch_boxes_to_image(b, rate, x, y), s, c))
    held_count = sum(len(p[1]) for v in held.values() for p in v)
    kept_b = 0
    for parts in held.values():
        b = torch.from_numpy(np.concatenate([p[0] for p in parts]))
        s = torch.from_numpy(np.concatenate([p[1] for p in parts]))
        c = torch.from_numpy(np.concatenate([p[2] for p in parts]))
        kept_b += len(batched_nms_rotated(b, s, c, 0.1))
    t_all = time.perf_counter() - t
    assert kept_b == kept, (kept_b, kept)
    print(
        f"collect-all + batched_nms_rotated (baseline): {t_all:8.3f} s   kept {kept_b}, "
        f"peak raw detections held {held_count}   -> ours {t_all / t_ours:6.1f}x faster"
    )

    # Baseline: collect everything, then Python greedy polygon NMS, on a few images.
    n = min(args.ref_merge_images, len(held))
    t = time.perf_counter()
    kept_py = 0
    for img in list(held)[:n]:
        parts = held[img]
        b = np.concatenate([p[0] for p in parts]).astype(np.float64)
        s = np.concatenate([p[1] for p in parts]).astype(np.float64)
        c = np.concatenate([p[2] for p in parts])
        for k in np.unique(c):
            idx = np.flatnonzero(c == k)
            kept_py += len(python_poly_nms(b[idx], s[idx], 0.1))
    t_py = (time.perf_counter() - t) * len(held) / n
    print(
        f"collect-all + Python polygon NMS (baseline)  : {t_py:8.3f} s   (run on {n} images, "
        f"x{len(held) / n:g})   -> ours {t_py / t_ours:6.1f}x faster"
    )


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--dets", type=int, default=2000, help="detections per image")
    p.add_argument("--gts", type=int, default=100, help="ground truths per image")
    p.add_argument("--ref-images", type=int, default=4, help="images the baselines run on")
    p.add_argument("--patches", type=int, default=10000)
    p.add_argument("--patch-dets", type=int, default=100, help="detections per patch")
    p.add_argument("--ref-merge-images", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    p.add_argument("--only", choices=["map", "merge"])
    args = p.parse_args()
    if args.quick:
        args.images, args.dets, args.ref_images = 10, 300, 2
        args.patches, args.patch_dets, args.ref_merge_images = 100, 40, 1
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if args.only in (None, "map"):
        bench_map(args)
    if args.only in (None, "merge"):
        bench_merge(args)


if __name__ == "__main__":
    main()

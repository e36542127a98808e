#!/usr/bin/env python
"""Benchmark of the result analyses, each next to a baseline measured in the same run.

``--images`` images x ``--dets`` detections (``--gts`` objects per image, 15 classes; 60% of the
detections are noisy copies of an object, 10% of those with a wrong class, the rest background):

1. ``rotated_confusion_matrix`` (score >= 0.25) against the straightforward reference of
   tests/evaluation/analysis_reference.py: per image an IoU matrix (the compiled rotated IoU) and
   a Python loop over the detections in score order.
2. ``tide_errors`` (error types and the dAP of each) against the same reference's loops (per
   detection: best GT of its class and of any class, then the fixes and an AP per class as loops).

The baselines run on the first ``--ref-images`` images and are extrapolated linearly in the number
of images (the work is per image); the results are checked equal on that subset.

    .venv/bin/python dev/bench_analysis.py            # 500 x 100 (about a minute on 2 cores)
    .venv/bin/python dev/bench_analysis.py --quick    # small sizes, smoke test
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from script_loading import load_script  # noqa: E402

from rotated_det.evaluation import (  # noqa: E402
    ERROR_TYPES,
    as_detection_arrays,
    rotated_confusion_matrix,
    tide_errors,
)

ref = load_script("tests/evaluation/analysis_reference.py")
NUM_CLASSES = 15


def make_data(num_images: int, dets_per_image: int, gts_per_image: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ng = num_images * gts_per_image
    gt_img = np.repeat(np.arange(num_images), gts_per_image)
    gt_box = np.c_[
        rng.uniform(0, 1024, (ng, 2)), rng.uniform(8, 80, (ng, 2)), rng.uniform(-90, 90, ng)
    ]
    gt_cls = rng.integers(0, NUM_CLASSES, ng)
    gt_diff = rng.random(ng) < 0.05
    nd = num_images * dets_per_image
    det_img = np.repeat(np.arange(num_images), dets_per_image)
    src = det_img * gts_per_image + rng.integers(0, gts_per_image, nd)
    det_box = gt_box[src] + rng.normal(0, 1, (nd, 5)) * [4, 4, 3, 3, 8]
    bg = rng.random(nd) < 0.4
    det_box[bg, :2] = rng.uniform(0, 1024, (int(bg.sum()), 2))
    det_box[:, 2:4] = np.abs(det_box[:, 2:4]) + 1
    det_cls = np.where(rng.random(nd) < 0.9, gt_cls[src], rng.integers(0, NUM_CLASSES, nd))
    return as_detection_arrays(
        det_img, det_box, rng.random(nd), det_cls, gt_img, gt_box, gt_cls, gt_diff,
        num_classes=NUM_CLASSES,
    )  # fmt: skip


def subset(a, n: int):
    d, g = a.det_image_ids < n, a.gt_image_ids < n
    return a._replace(
        det_image_ids=a.det_image_ids[d], det_boxes=a.det_boxes[d], det_scores=a.det_scores[d],
        det_labels=a.det_labels[d], gt_image_ids=a.gt_image_ids[g], gt_boxes=a.gt_boxes[g],
        gt_labels=a.gt_labels[g], gt_difficult=a.gt_difficult[g],
    )  # fmt: skip


def timed(fn, repeat: int = 1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--images", type=int, default=500)
    p.add_argument("--dets", type=int, default=100, help="detections per image")
    p.add_argument("--gts", type=int, default=40, help="objects per image")
    p.add_argument("--ref-images", type=int, default=100, help="images the baselines run on")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--quick", action="store_true", help="50 images, baselines on 20")
    args = p.parse_args()
    if args.quick:
        args.images, args.ref_images = 50, 20
    args.ref_images = min(args.ref_images, args.images)
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPUs, "
        f"load average {load:.2f}"
    )
    a = make_data(args.images, args.dets, args.gts)
    print(
        f"{args.images} images x {args.dets} detections ({len(a.det_scores)} in all), "
        f"{args.gts} objects per image, {NUM_CLASSES} classes; baselines on {args.ref_images} "
        f"images, x{args.images / args.ref_images:g}"
    )
    scale = args.images / args.ref_images
    sub = subset(a, args.ref_images)

    t_cm, cm = timed(lambda: rotated_confusion_matrix(*a[:8], num_classes=NUM_CLASSES), 3)
    t_ref, (counts, ignored) = timed(lambda: ref.confusion_reference(sub))
    sub_cm = rotated_confusion_matrix(*sub[:8], num_classes=NUM_CLASSES)
    assert np.array_equal(sub_cm.counts, counts) and sub_cm.num_ignored == ignored
    print(
        f"\nconfusion matrix        : {t_cm:8.3f} s   (diagonal {int(np.trace(cm.counts))} of "
        f"{int(cm.counts.sum())} entries)"
    )
    print(
        f"  loop reference        : {t_ref * scale:8.3f} s   -> ours {t_ref * scale / t_cm:6.1f}x "
        "faster; counts equal on the subset"
    )

    t_err, err = timed(lambda: tide_errors(*a[:8], num_classes=NUM_CLASSES), 3)
    t_ref, (status, missed, ap, delta) = timed(lambda: ref.tide_reference(sub))
    sub_err = tide_errors(*sub[:8], num_classes=NUM_CLASSES)
    names = {-1: "tp", -2: "ignored", **dict(enumerate(ERROR_TYPES))}
    assert [names[e] for e in sub_err.det_error.tolist()] == status
    assert set(np.flatnonzero(sub_err.gt_missed).tolist()) == missed
    diff = max(np.nanmax(np.abs(sub_err.ap - ap)), np.nanmax(np.abs(sub_err.delta_ap - delta)))
    assert diff < 1e-9, diff
    dmap = ", ".join(f"{t} {100 * v:.2f}" for t, v in zip(ERROR_TYPES, err.delta_map))
    print(
        f"\nTIDE errors + dAP       : {t_err:8.3f} s   (mAP50 {100 * err.mean_ap:.2f}; dAP {dmap})"
    )
    print(
        f"  loop reference        : {t_ref * scale:8.3f} s   -> ours {t_ref * scale / t_err:6.1f}x "
        f"faster; types, misses, AP and dAP equal on the subset (max |diff| {diff:.1e})"
    )


if __name__ == "__main__":
    main()

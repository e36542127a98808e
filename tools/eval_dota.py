#!/usr/bin/env python
"""Evaluate DOTA Task1 result files against DOTA label files, locally.

    python tools/eval_dota.py --det-dir work/task1 --ann-dir DOTA/val/labelTxt
    python tools/eval_dota.py --det-dir D --ann-dir A --imageset val.txt --iou-thr 0.5 0.75
    python tools/eval_dota.py --det-dir D --ann-dir A --use-07-metric --coco-thresholds
    python tools/eval_dota.py --det-dir patch_results --ann-dir A --merge-patches
    python tools/eval_dota.py --det-dir D --ann-dir A --polygon-iou   # the kit's exact geometry

``--det-dir`` holds ``Task1_<class>.txt`` files (``image score x1 y1 ... x4 y4`` per line, as
written by rotated_det's DOTA submission writer, MMRotate or the DOTA kit's merge scripts);
``--ann-dir`` holds DOTA label files named after the images. Prints a per-class table (GTs,
detections, recall, AP) and the mAP at each IoU threshold; ``--output-json`` saves them.
Difficult objects are ignored as in the DOTA kit; a detection matches when IoU > threshold.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

import numpy as np

from rotated_det.evaluation.dota_evaluation import format_class_table
from rotated_det.evaluation.dota_task1_eval import evaluate_task1_results, read_imageset
from rotated_det.evaluation.rotated_map import COCO_IOU_THRESHOLDS


def polygon_iou(polys1: np.ndarray, polys2: np.ndarray) -> np.ndarray:
    """IoU [N, M] of polygons [N, 8] and [M, 8] with shapely, computed only where the polygons'
    horizontal boxes meet (as the DOTA kit does). Self-intersecting point orders are repaired
    with ``buffer(0)``."""
    from shapely.geometry import Polygon

    def shapes(polys):
        out = []
        for p in polys:
            g = Polygon(p.reshape(4, 2))
            out.append(g if g.is_valid else g.buffer(0))
        return out

    iou = np.zeros((len(polys1), len(polys2)))
    if len(polys1) == 0 or len(polys2) == 0:
        return iou
    lo1, hi1 = polys1.reshape(-1, 4, 2).min(1), polys1.reshape(-1, 4, 2).max(1)
    lo2, hi2 = polys2.reshape(-1, 4, 2).min(1), polys2.reshape(-1, 4, 2).max(1)
    meet = np.all((lo1[:, None] <= hi2[None]) & (lo2[None] <= hi1[:, None]), axis=-1)  # [N, M]
    if not meet.any():
        return iou
    a, b = shapes(polys1), shapes(polys2)
    for i, j in zip(*np.nonzero(meet)):
        inter = a[i].intersection(b[j]).area
        union = a[i].area + b[j].area - inter
        iou[i, j] = inter / union if union > 0 else 0.0
    return iou


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--det-dir", required=True, help="directory of Task1_<class>.txt files")
    p.add_argument("--ann-dir", required=True, help="directory of DOTA label files (<image>.txt)")
    p.add_argument("--imageset", help="file listing the images to evaluate (default: all labels)")
    p.add_argument("--iou-thr", type=float, nargs="+", default=[0.5], help="IoU threshold(s)")
    p.add_argument(
        "--coco-thresholds", action="store_true", help="also report mAP over IoU 0.50:0.95"
    )
    p.add_argument("--use-07-metric", action="store_true", help="VOC2007 11-point AP")
    p.add_argument("--classes", help="comma-separated class list (default: DOTA v1/1.5/2 order)")
    p.add_argument(
        "--merge-patches",
        action="store_true",
        help="the Task1 files are on split patches (NAME__RATE__X___Y): merge them first",
    )
    p.add_argument("--merge-iou", type=float, default=0.1, help="NMS IoU of --merge-patches")
    p.add_argument(
        "--save-merged",
        help="with --merge-patches: also write the merged Task1 files (and zip) here",
    )
    p.add_argument(
        "--polygon-iou",
        action="store_true",
        help="IoU of the polygons as written (the DOTA kit's geometry; shapely, slower) instead\n"
        "of the rotated IoU of their minimum-area rectangles",
    )
    p.add_argument("--output-json", help="write the results to this JSON file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> dict:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    thresholds = list(args.iou_thr)
    if args.coco_thresholds:
        thresholds += [t for t in COCO_IOU_THRESHOLDS if not np.isclose(thresholds, t).any()]
    result, class_names = evaluate_task1_results(
        args.det_dir,
        args.ann_dir,
        image_names=read_imageset(args.imageset) if args.imageset else None,
        class_names=args.classes.split(",") if args.classes else None,
        iou_thresholds=thresholds,
        use_07_metric=args.use_07_metric,
        show_progress=not args.quiet,
        merge_patches=args.merge_patches,
        merge_iou_threshold=args.merge_iou,
        polygon_iou_fn=polygon_iou if args.polygon_iou else None,
        save_merged_dir=args.save_merged,
    )
    mode = "VOC07 11-point" if args.use_07_metric else "area (all-point)"
    print(f"AP mode: {mode}")
    print(format_class_table(class_names, result, thresholds[0]))
    out = {"mode": mode, "mAP": {}, "AP": {}}
    for t in thresholds:
        m = result.mean_ap(t)
        out["mAP"][f"{t:g}"] = m
        out["AP"][f"{t:g}"] = {
            c: float(a) for c, a, n in zip(class_names, result.class_ap(t), result.num_gts) if n > 0
        }
        print(f"mAP@{t:g}: {100 * m:.2f}")
    if args.coco_thresholds:
        m = float(np.mean([result.mean_ap(t) for t in COCO_IOU_THRESHOLDS]))
        out["mAP"]["0.5:0.95"] = m
        print(f"mAP@0.5:0.95: {100 * m:.2f}")
    if args.output_json:
        with open(args.output_json, "w") as f:
            json.dump(out, f, indent=2)
    return out


if __name__ == "__main__":
    main()
    sys.exit(0)

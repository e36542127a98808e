#!/usr/bin/env python
"""Analyze saved detections: a confusion matrix and a TIDE-style error breakdown, as PNG + table.

    python tools/analyze_results.py --task confusion errors \
        --predictions output/quickstart/eval/rotated_predictions.pth --dataset synthetic_val \
        --output output/quickstart/analysis
    python tools/analyze_results.py --task errors --predictions P --config-file configs/X.py \
        --output out/analysis                     # the dataset the config's evaluator scores
    python tools/analyze_results.py --task confusion --predictions P --dataset dota_v1_val \
        --ann-dir DOTA/val/labelTxt --output out  # merged DOTA predictions, labels from files

``--predictions``: what an evaluator saved in its ``output_dir``: ``rotated_predictions.pth``
(DOTAEvaluator, HRSCEvaluator: per image ``boxes``, ``scores``, ``classes``, keyed by image id or,
for merged patches, by the full image's file name stem) or ``rotated_coco_results.json``
(RotatedCOCOEvaluator). The ground truth comes from the registered dataset (``--dataset``, which
may be registered by ``--config-file``; images matched by image id, else by file name stem) or
from a DOTA label directory (``--ann-dir``; class names from the dataset's metadata).

Tasks (definitions in the modules' docstrings):

* ``confusion`` (rotated_det.evaluation.confusion_matrix): ``confusion_matrix.png`` (counts and
  row-normalised, rows true class, columns predicted, background last) and
  ``confusion_matrix.txt``.
* ``errors`` (rotated_det.evaluation.error_analysis): ``errors.png`` (dAP and counts per error
  type: cls, loc, both, dupe, bkg, miss; per class and the mean) and ``errors.txt``.

Files are written into ``--output`` only; existing ones are kept unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections import defaultdict
from typing import Any

import numpy as np
import torch

from rotated_det.config import LazyConfig
from rotated_det.data import DatasetCatalog, MetadataCatalog
from rotated_det.evaluation.confusion_matrix import rotated_confusion_matrix
from rotated_det.evaluation.detection_arrays import flatten_per_image
from rotated_det.evaluation.dota_evaluation import RotatedGroundTruth, load_dota_label_dir
from rotated_det.evaluation.error_analysis import format_error_table, plot_errors, tide_errors
from rotated_det.evaluation.patch_merger import strip_image_extension

logger = logging.getLogger("rotated_det.analyze_results")

OUTPUTS = {
    "confusion": ("confusion_matrix.png", "confusion_matrix.txt"),
    "errors": ("errors.png", "errors.txt"),
}


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--task", nargs="+", choices=sorted(OUTPUTS), required=True)
    p.add_argument("--predictions", required=True, help="rotated_predictions.pth or .json")
    p.add_argument("--dataset", help="registered dataset with the ground truth and class names")
    p.add_argument(
        "--config-file",
        help="LazyConfig: runs the registrations it holds; --dataset defaults to the dataset its "
        "dataloader.evaluator scores (full_dataset_name when it merges patches)",
    )
    p.add_argument("--ann-dir", help="DOTA label directory with the ground truth instead")
    p.add_argument("--output", required=True, help="folder for the PNG and text files")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--score-threshold", type=float, default=0.25, help="confusion: min score")
    p.add_argument("--iou-threshold", type=float, default=0.5, help="match IoU (> threshold)")
    p.add_argument("--bg-iou", type=float, default=0.1, help="errors: background IoU")
    return p


def _dataset_from_config(cfg: Any, config_file: str) -> str:
    try:
        ev = cfg.dataloader.evaluator
    except Exception:
        raise SystemExit(f"{config_file} has no dataloader.evaluator: pass --dataset") from None
    name = ev.get("full_dataset_name") if ev.get("merge_patches") else None
    name = name or ev.get("dataset_name")  # interpolations (${..test...}) resolve on access
    if not isinstance(name, str):
        raise SystemExit(f"{config_file}: cannot tell the evaluator's dataset ({name!r})")
    return name


def load_predictions(path: str) -> tuple[dict[str, Any], bool]:
    """Per-image detections from an evaluator's saved file.

    Returns:
        ``(predictions, complete)``: image key -> ``(boxes [K, 5], scores [K], classes [K])``
        (or the saved dict), and whether every evaluated image is a key (the ``.pth`` files keep
        images without detections; the COCO ``.json`` has rows only for detections).
    """
    if not os.path.isfile(path):
        raise SystemExit(f"--predictions {path}: no such file")
    if path.endswith(".json"):
        with open(path) as f:
            rows = json.load(f)
        if not isinstance(rows, list):
            raise SystemExit(f"{path}: expected a JSON list of detections")
        per_image: dict[str, list] = defaultdict(list)
        for i, r in enumerate(rows):
            try:
                per_image[str(r["image_id"])].append(
                    (r["bbox"], float(r["score"]), int(r["category_id"]))
                )
            except (KeyError, TypeError, ValueError) as e:
                raise SystemExit(
                    f"{path}: detection {i} is not {{image_id, bbox, score, category_id}}: {e!r}"
                ) from None
        preds = {
            k: (
                np.asarray([b for b, _, _ in v], np.float64).reshape(-1, 5),
                np.asarray([s for _, s, _ in v], np.float64),
                np.asarray([c for _, _, c in v], np.int64),
            )
            for k, v in per_image.items()
        }
        return preds, False
    # The evaluator's own output (a pickle of numpy arrays): load it as a full pickle.
    data = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(data, dict):
        raise SystemExit(f"{path}: expected a dict image -> detections, got {type(data).__name__}")
    return {str(k): v for k, v in data.items()}, True


def load_ground_truth(
    dataset: str, keys: list[str], complete: bool, ann_dir: str | None, class_names: list[str]
) -> dict[str, RotatedGroundTruth]:
    """Ground truth of the predicted images (all the dataset's images when the predictions file
    omits images without detections)."""
    if ann_dir is not None:
        if not complete:
            raise SystemExit("--ann-dir needs the .pth predictions (the .json omits images)")
        return load_dota_label_dir(ann_dir, keys, class_names)
    dicts = DatasetCatalog.get(dataset)
    for key_of in (
        lambda d: str(d["image_id"]),
        lambda d: strip_image_extension(os.path.basename(d["file_name"])),
    ):
        by_key = {key_of(d): d for d in dicts}
        if all(k in by_key for k in keys):
            break
    else:
        missing = [k for k in keys if k not in by_key]
        raise SystemExit(
            f"{len(missing)} predicted image(s) are not in dataset '{dataset}' (by image id or "
            f"file name), e.g. {missing[:3]}; pass the dataset the evaluator scored"
        )
    chosen = keys if complete else sorted(by_key)
    if len(chosen) < len(by_key):
        logger.warning(
            f"Analyzing the {len(chosen)} predicted images of {len(by_key)} in {dataset}"
        )
    if not any("annotations" in by_key[k] for k in chosen):
        raise SystemExit(
            f"Dataset '{dataset}' has no annotations (a test set?): nothing to analyze"
        )
    return {k: RotatedGroundTruth.from_dataset_dict(by_key[k]) for k in chosen}


def main(argv: list[str] | None = None) -> list[str]:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    tasks = list(dict.fromkeys(args.task))
    targets = [os.path.join(args.output, f) for t in tasks for f in OUTPUTS[t]]
    existing = [p for p in targets if os.path.exists(p)]
    if existing and not args.overwrite:
        raise SystemExit(f"{existing} exist already; pass --overwrite to replace them")
    dataset = args.dataset
    if args.config_file:
        cfg = LazyConfig.load(args.config_file)  # runs the registrations the file holds
        dataset = dataset or _dataset_from_config(cfg, args.config_file)
    if dataset is None:
        raise SystemExit("Pass --dataset (or --config-file) for the ground truth and class names")
    if dataset not in DatasetCatalog.list():
        raise SystemExit(
            f"Dataset '{dataset}' is not registered; register it in a --config-file. "
            f"Registered: {', '.join(sorted(DatasetCatalog.list()))}"
        )
    class_names = list(MetadataCatalog.get(dataset).thing_classes)
    predictions, complete = load_predictions(args.predictions)
    gts = load_ground_truth(dataset, sorted(predictions), complete, args.ann_dir, class_names)
    _, arrays = flatten_per_image(predictions, gts, len(class_names))
    logger.info(
        f"{len(gts)} images, {len(arrays.det_scores)} detections, {len(arrays.gt_labels)} "
        f"objects ({int(arrays.gt_difficult.sum())} difficult), {len(class_names)} classes"
    )
    os.makedirs(args.output, exist_ok=True)
    written = []
    for task in tasks:
        png, txt = (os.path.join(args.output, f) for f in OUTPUTS[task])
        if task == "confusion":
            cm = rotated_confusion_matrix(
                *arrays[:8],
                num_classes=arrays.num_classes,
                score_threshold=args.score_threshold,
                iou_threshold=args.iou_threshold,
            )
            table = cm.format_table(class_names)
            cm.plot(png, class_names)
        else:
            errors = tide_errors(
                *arrays[:8],
                num_classes=arrays.num_classes,
                fg_iou=args.iou_threshold,
                bg_iou=args.bg_iou,
            )
            table = format_error_table(errors, class_names)
            plot_errors(png, errors, class_names)
        with open(txt, "w") as f:
            f.write(table + "\n")
        print(table)
        written += [png, txt]
    print(f"Wrote {', '.join(written)}")
    return written


if __name__ == "__main__":
    main(sys.argv[1:])

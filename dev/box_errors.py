"""Where a zoo row's boxes go wrong: per class, how well the saved validation predictions of
``dev/zoo.py`` runs fit the ground truth of the synthetic validation scenes.

    python dev/box_errors.py s2anet r3det fcos_psc     # names of runs under output/zoo/

For every ground-truth object, the detection of its class (score > ``--min-score``) with the
highest rotated IoU; per class:

- ``found``: share of objects whose best detection has IoU > 0.1; ``IoU>0.5`` and ``IoU>0.75``:
  shares above those (what mAP50 and mAP75 reward);
- ``mean IoU``: over the found objects;
- ``angle err``: median and 90th percentile of the angle error of found objects in degrees, long
  sides aligned (so that ``(w, h, a)`` and ``(h, w, a + 90)`` agree); meaningless for the
  round storage tanks;
- ``long`` / ``short``: median ratio of the detection's long (short) side to the object's: a
  ratio away from 1 is a size bias.

Reads ``<output-dir>/<name>/eval/rotated_predictions.pth`` (written by the quickstart's
evaluation) and the labels of ``<datasets-root>/synthetic/val/labelTxt``.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def long_side_angle(boxes: torch.Tensor) -> torch.Tensor:
    """``[N, 5]`` boxes -> ``[N]`` angle (degrees) of the long side."""
    return boxes[:, 4] + torch.where(boxes[:, 2] < boxes[:, 3], 90.0, 0.0)


def class_errors(run_dir: str, dataset_dir: str, min_score: float) -> dict[str, np.ndarray]:
    """Per class name, ``[objects, 5]``: best IoU, angle error (degrees), long-side ratio,
    short-side ratio (0 where nothing of the class was detected), one row per object."""
    from rotated_det.data.datasets.dota import load_dota_instances
    from rotated_det.data.datasets.synthetic import SYNTHETIC_CLASSES
    from rotated_det.structures import pairwise_iou_rotated

    path = os.path.join(run_dir, "eval", "rotated_predictions.pth")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: run `python dev/zoo.py --run <name>` first")
    predictions = torch.load(path, weights_only=False)  # written by our own evaluator
    records = load_dota_instances(
        os.path.join(dataset_dir, "val", "images"),
        os.path.join(dataset_dir, "val", "labelTxt"),
        SYNTHETIC_CLASSES,
        out_of_image="keep",
    )
    rows: dict[str, list] = {c: [] for c in SYNTHETIC_CLASSES}
    for record in records:
        stem = os.path.splitext(os.path.basename(record["file_name"]))[0]
        if stem not in predictions or not record["annotations"]:
            continue
        pred = predictions[stem]
        keep = torch.as_tensor(pred["scores"]) > min_score
        boxes = torch.as_tensor(pred["boxes"]).float()[keep]
        classes = torch.as_tensor(pred["classes"])[keep]
        gt = torch.tensor([a["bbox"] for a in record["annotations"]], dtype=torch.float32)
        gt_classes = torch.tensor([a["category_id"] for a in record["annotations"]])
        iou = pairwise_iou_rotated(gt, boxes) * (gt_classes[:, None] == classes[None, :])
        for i, c in enumerate(gt_classes.tolist()):
            if len(boxes) == 0 or float(iou[i].max()) <= 0:
                rows[SYNTHETIC_CLASSES[c]].append((0.0, 0.0, 0.0, 0.0))
                continue
            j = int(iou[i].argmax())
            g, b = gt[i : i + 1], boxes[j : j + 1]
            da = float((long_side_angle(b) - long_side_angle(g) + 90) % 180 - 90)
            long = float(b[0, 2:4].max() / g[0, 2:4].max())
            short = float(b[0, 2:4].min() / g[0, 2:4].min())
            rows[SYNTHETIC_CLASSES[c]].append((float(iou[i, j]), abs(da), long, short))
    return {c: np.array(r).reshape(-1, 4) for c, r in rows.items()}


def report(name: str, errors: dict[str, np.ndarray]) -> str:
    lines = [
        f"{name}",
        "| class | objects | found | IoU>0.5 | IoU>0.75 | mean IoU | angle err median / p90 | "
        "long | short |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c, a in errors.items():
        if len(a) == 0:
            continue
        found = a[a[:, 0] > 0.1]
        if len(found) == 0:
            lines.append(f"| {c} | {len(a)} | 0.00 | | | | | | |")
            continue
        lines.append(
            f"| {c} | {len(a)} | {len(found) / len(a):.2f} | {np.mean(a[:, 0] > 0.5):.2f} | "
            f"{np.mean(a[:, 0] > 0.75):.2f} | {found[:, 0].mean():.3f} | "
            f"{np.median(found[:, 1]):.1f} / {np.percentile(found[:, 1], 90):.1f} | "
            f"{np.median(found[:, 2]):.3f} | {np.median(found[:, 3]):.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="+", help="run names under --output-dir")
    parser.add_argument("--output-dir", default=os.path.join(ROOT, "output", "zoo"))
    parser.add_argument(
        "--datasets-root",
        default=os.environ.get("ROTATED_DET_DATASETS", os.path.join(ROOT, "datasets")),
    )
    parser.add_argument("--min-score", type=float, default=0.3)
    args = parser.parse_args(argv)
    dataset = os.path.join(args.datasets_root, "synthetic")
    for name in args.names:
        errors = class_errors(os.path.join(args.output_dir, name), dataset, args.min_score)
        print(report(name, errors) + "\n", flush=True)


if __name__ == "__main__":
    main()

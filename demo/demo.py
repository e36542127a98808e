#!/usr/bin/env python
"""Run a detector on images, draw the rotated detections and save them.

    python demo/demo.py --config-file configs/DOTA-Rotated/rotated_retinanet_R_50_FPN_1x.py \
        --input tests/data/dota_samples/unlabeled/*.jpg --output output/demo \
        [--confidence-threshold 0.3] [--huge] train.init_checkpoint=model_final.pth

For each input image NAME.ext, writes to the output directory:
  NAME.png        the image with the detections drawn (class colours, names, scores);
  NAME.json       the detections: the input's path (``file_name``), image size and, per
                  detection, ``bbox`` [cx, cy, w, h, angle] (pixels, degrees counter-clockwise,
                  BoxMode.XYWHA_ABS), ``poly`` (4 corners), ``score``, ``category_id`` (0-based)
                  and ``category``;
  dota/NAME.txt   one line per detection in DOTA's label layout with the score last:
                  ``x1 y1 x2 y2 x3 y3 x4 y4 category score``;
and, over all images, ``task1/Task1_<category>.txt`` (DOTA Task1 result files:
``NAME score x1 y1 ... y4``).

Nothing is overwritten or skipped silently:
  - the output directory must not hold any input image (``--output`` equal to an input folder, or
    a folder above one, is an error before anything is written); a subfolder of an input folder
    is fine (folders given as ``--input`` are not searched recursively);
  - NAME is the input's file name without extension; inputs that share it (``a.jpg`` and
    ``a.png``, or ``x/a.jpg`` and ``y/a.jpg``) are told apart by their extension (``a_jpg``,
    ``a_png``), then by a number (``a_jpg_2``); each rename is logged. Names are compared
    ignoring case (for case-insensitive file systems) and written through
    :func:`rotated_det.utils.file_io.safe_path`;
  - files of an input folder or glob that are not images (by extension: IMAGE_EXTENSIONS) and
    subfolders are counted and reported in the log; the same image given twice is run once.

``--huge`` runs sliding-window inference (``--patch-size``, ``--overlap``, ``--scales``) for scenes
larger than the model's input; otherwise each image goes through DefaultPredictor (the config's
test-time resize).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import logging
import os
import sys
import time

import cv2
import torch
import tqdm

from rotated_det.config import LazyConfig
from rotated_det.engine.predictor import DefaultPredictor
from rotated_det.engine.sliding_window import SlidingWindowInference
from rotated_det.evaluation.dota_submission import Task1Writer
from rotated_det.structures import rbox_to_poly
from rotated_det.utils.file_io import IMAGE_EXTENSIONS, safe_path
from rotated_det.utils.visualizer import Visualizer

logger = logging.getLogger("rotated_det.demo")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="rotated_det demo: detect, draw, save.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument(
        "--input", nargs="+", required=True, help="image files, directories or glob patterns"
    )
    parser.add_argument(
        "--output", required=True, help="output directory (must not hold any input image)"
    )
    parser.add_argument("--confidence-threshold", type=float, default=0.5)
    parser.add_argument("--huge", action="store_true", help="sliding-window inference")
    parser.add_argument("--patch-size", type=int, default=1024)
    parser.add_argument("--overlap", type=int, default=200)
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0])
    parser.add_argument("--batch-size", type=int, default=2, help="windows per model call")
    parser.add_argument("--vis-scale", type=float, default=1.0, help="drawing upscale factor")
    parser.add_argument(
        "opts", nargs=argparse.REMAINDER, help="config overrides (key=value), e.g. weights"
    )
    return parser


def expand_inputs(patterns: list[str]) -> list[str]:
    """Image files from file names, directories (their images, not recursive) and glob patterns,
    in order, each once. Other files and subfolders met in directories and globs are counted and
    logged; a file named explicitly is taken as given."""
    files: list[str] = []
    seen: set[str] = set()
    for p in patterns:
        explicit = False
        if os.path.isdir(p):
            candidates = [os.path.join(p, f) for f in sorted(os.listdir(p))]
        elif any(ch in p for ch in "*?["):
            candidates = sorted(glob.glob(p))
        elif os.path.isfile(p):
            candidates, explicit = [p], True
        else:
            raise FileNotFoundError(f"--input: {p} does not exist")
        found, folders, others, repeated = [], [], [], 0
        for f in candidates:
            if os.path.isdir(f):
                folders.append(f)
            elif not explicit and not f.lower().endswith(IMAGE_EXTENSIONS):
                others.append(f)
            elif os.path.realpath(f) in seen:
                repeated += 1
            else:
                seen.add(os.path.realpath(f))
                found.append(f)
        if folders or others or repeated:
            exts = sorted({os.path.splitext(f)[1].lower() or "(none)" for f in others})
            logger.warning(
                "--input %s: skipped %d subfolder(s) (not searched; name them to include them), "
                "%d file(s) that are not images (extensions: %s; images are %s), %d image(s) "
                "already given",
                p,
                len(folders),
                len(others),
                ", ".join(exts) or "-",
                " ".join(IMAGE_EXTENSIONS),
                repeated,
            )
        if not found and not repeated:
            raise FileNotFoundError(f"--input {p}: no image found")
        files.extend(found)
    return files


def check_output_apart(output: str, files: list[str]) -> None:
    """Raise if the output directory is, or is above, the folder of any input image, or of the
    file a linked input points to (its drawings could overwrite the inputs, and a rerun would
    take them as inputs)."""
    out = os.path.normcase(os.path.realpath(output))
    for f in files:
        listed_in = os.path.realpath(os.path.dirname(os.path.abspath(f)))
        stored_in = os.path.dirname(os.path.realpath(f))  # differs for a symbolic link
        dirs = (os.path.normcase(listed_in), os.path.normcase(stored_in))
        if any(os.path.commonpath([out, d]) == out for d in dirs):
            raise ValueError(
                f"--output {output} holds the input image {f}: outputs could overwrite inputs. "
                f"Choose an output folder that holds no input, e.g. "
                f"{os.path.join(os.path.dirname(f) or '.', 'demo_output')}"
            )


def output_names(files: list[str]) -> list[str]:
    """One distinct output NAME per input (see the module doc): the file name without extension,
    else ``<stem>_<ext>`` when several inputs share the stem, else ``<stem>_<ext>_<k>``."""
    stems = [os.path.splitext(os.path.basename(f)) for f in files]
    counts: dict[str, int] = {}
    for stem, _ in stems:
        counts[stem.casefold()] = counts.get(stem.casefold(), 0) + 1
    taken = {stem.casefold() for stem, _ in stems if counts[stem.casefold()] == 1}
    names = []
    for f, (stem, ext) in zip(files, stems):
        if counts[stem.casefold()] == 1:
            names.append(stem)
            continue
        base = f"{stem}_{ext.lstrip('.')}" if ext else stem
        name, k = base, 1
        while name.casefold() in taken:
            k += 1
            name = f"{base}_{k}"
        taken.add(name.casefold())
        names.append(name)
        logger.warning("%s: outputs named %s (other inputs share the name %s)", f, name, stem)
    return names


def class_names(cfg, num_classes: int | None) -> list[str] | None:
    """thing_classes of the config's test dataset, else "class0" ... "class{K-1}" for a model
    with ``num_classes`` K, else None (unknown)."""
    try:
        from rotated_det.data import MetadataCatalog

        names = cfg.dataloader.test.dataset.names
        name = names if isinstance(names, str) else names[0]
        return list(MetadataCatalog.get(name).thing_classes)
    except Exception:  # no test dataset in the config, or not registered
        if num_classes:
            return [f"class{i}" for i in range(num_classes)]
        return None


def _num_classes(model) -> int | None:
    for obj in (model, getattr(model, "roi_heads", None)):
        n = getattr(obj, "num_classes", None)
        if isinstance(n, int):
            return n
    return None


def instances_to_records(instances, names: list[str] | None) -> list[dict]:
    boxes = instances.pred_boxes.tensor.detach().cpu().double()
    polys = rbox_to_poly(boxes) if len(boxes) else torch.zeros(0, 8, dtype=torch.float64)
    out = []
    for box, poly, score, cls in zip(
        boxes.tolist(), polys.tolist(), instances.scores.tolist(), instances.pred_classes.tolist()
    ):
        out.append(
            {
                "bbox": [round(v, 3) for v in box],
                "bbox_mode": "XYWHA_ABS",
                "poly": [round(v, 2) for v in poly],
                "score": round(float(score), 5),
                "category_id": int(cls),
                "category": names[cls] if names and 0 <= cls < len(names) else f"class{cls}",
            }
        )
    return out


class _Metadata:
    def __init__(self, names: list[str] | None):
        if names is not None:
            self.thing_classes = names


def main(argv: list[str] | None = None) -> list[dict]:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(name)s] %(message)s")
    cfg = LazyConfig.load(args.config_file)
    cfg = LazyConfig.apply_overrides(cfg, args.opts)
    files = expand_inputs(args.input)
    check_output_apart(args.output, files)
    out_names = output_names(files)
    predictor = DefaultPredictor(cfg)
    names = class_names(cfg, _num_classes(predictor.model))
    metadata = _Metadata(names)
    huge = None
    if args.huge:
        huge = SlidingWindowInference(
            predictor.model,
            patch_size=args.patch_size,
            overlap=args.overlap,
            scales=args.scales,
            batch_size=args.batch_size,
            score_threshold=args.confidence_threshold,
            input_format="BGR",
            model_input_format=predictor.input_format,
            show_progress=True,
        )
    dota_dir = os.path.join(args.output, "dota")
    os.makedirs(dota_dir, exist_ok=True)
    summary = []
    if names is None:
        logger.warning(
            "The config names no registered test dataset and the model has no num_classes: "
            "categories are written as class ids and the Task1 files are not written."
        )
        task1 = contextlib.nullcontext()
    else:
        task1_names = [n.replace(" ", "-") for n in names]
        task1 = Task1Writer(os.path.join(args.output, "task1"), task1_names, zip_path="")
    with task1:
        for path, name in zip(tqdm.tqdm(files, desc="demo", unit="image"), out_names):
            image = cv2.imread(path, cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError(f"{path}: cannot be read as an image")
            start = time.perf_counter()
            with torch.no_grad():
                instances = huge(image) if huge is not None else predictor(image)
            seconds = time.perf_counter() - start
            instances = instances.to("cpu")
            instances = instances[instances.scores >= args.confidence_threshold]
            records = instances_to_records(instances, names)

            vis = Visualizer(image[:, :, ::-1], metadata, scale=args.vis_scale)
            out = vis.draw_instance_predictions(instances)
            out.save(safe_path(args.output, name, ".png"))
            with open(safe_path(args.output, name, ".json"), "w", encoding="utf-8") as f:
                json.dump(
                    {
                        "file_name": os.path.abspath(path),
                        "height": int(image.shape[0]),
                        "width": int(image.shape[1]),
                        "seconds": round(seconds, 4),
                        "instances": records,
                    },
                    f,
                    indent=1,
                )
            with open(safe_path(dota_dir, name, ".txt"), "w") as f:
                for r in records:
                    coords = " ".join(f"{v:.2f}" for v in r["poly"])
                    category = r["category"].replace(" ", "-")
                    f.write(f"{coords} {category} {r['score']:.4f}\n")
            if names is not None:
                task1.add(
                    name, instances.pred_boxes.tensor, instances.scores, instances.pred_classes
                )
            logger.info(
                "%s -> %s: %d detections (>= %.2f) in %.2fs, %d labels hidden for readability",
                path,
                name,
                len(records),
                args.confidence_threshold,
                seconds,
                out.num_labels_hidden,
            )
            summary.append(
                {"file": path, "output": name, "detections": len(records), "seconds": seconds}
            )
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])

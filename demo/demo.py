#!/usr/bin/env python
"""Run a detector on images or a video, draw the rotated detections and save them.

    python demo/demo.py --config-file configs/DOTA-Rotated/rotated_retinanet_R_50_FPN_1x.py \
        --input tests/data/dota_samples/unlabeled/*.jpg --output output/demo \
        [--confidence-threshold 0.3] [--huge] [--batch-size 4] [--precision bfloat16] \
        train.init_checkpoint=model_final.pth
    python demo/demo.py --config-file C --video-input clip.mp4 --output output/demo_video ...

``--input`` takes image files, folders (their images, not recursive) and glob patterns;
``--video-input`` one video file that OpenCV reads (cv2.VideoCapture). Images and frames go
through DefaultPredictor (the config's test-time resize) ``--batch-size`` at a time (images of
one size share a model call), in ``--precision`` (float32; bfloat16 on CPU or CUDA; float16 on
CUDA; ``--half`` picks float16 on CUDA, bfloat16 on the CPU). At the end a line gives the
throughput: images (frames) per second end to end (reading, detection, drawing, writing) and for
detection alone, and the total time.

For each input image NAME.ext, writes to the output directory:
  NAME.png        the image with the detections drawn (class colours, names, scores);
  NAME.json       the detections: the input's path (``file_name``), image size, ``seconds``
                  (detection time: the image's share of its batch's model call) and, per
                  detection, ``bbox`` [cx, cy, w, h, angle] (pixels, degrees counter-clockwise,
                  BoxMode.XYWHA_ABS), ``poly`` (4 corners), ``score``, ``category_id`` (0-based)
                  and ``category``;
  dota/NAME.txt   one line per detection in DOTA's label layout with the score last:
                  ``x1 y1 x2 y2 x3 y3 x4 y4 category score``;
and, over all images, ``task1/Task1_<category>.txt`` (DOTA Task1 result files:
``NAME score x1 y1 ... y4``).

For a video NAME.ext, writes to the output directory:
  NAME.mp4        the video with the detections drawn (same frame rate and frame count; frame
                  size times ``--vis-scale``; MPEG-4 Part 2, fourcc mp4v);
  NAME.jsonl      one line per frame: ``frame`` (0-based), ``seconds`` and ``instances`` as in
                  the images' JSON files.

Nothing is overwritten or skipped silently:
  - the output directory must not hold any input image or the input video (``--output`` equal to
    an input folder, or a folder above one, is an error before anything is written); a subfolder
    of an input folder is fine (folders given as ``--input`` are not searched recursively);
  - NAME is the input's file name without extension; inputs that share it (``a.jpg`` and
    ``a.png``, or ``x/a.jpg`` and ``y/a.jpg``) are told apart by their extension (``a_jpg``,
    ``a_png``), then by a number (``a_jpg_2``); each rename is logged. Names are compared
    ignoring case (for case-insensitive file systems) and written through
    :func:`rotated_det.utils.file_io.safe_path`;
  - files of an input folder or glob that are not images (by extension: IMAGE_EXTENSIONS) and
    subfolders are counted and reported in the log; the same image given twice is run once.

``--huge`` runs sliding-window inference (``--patch-size``, ``--overlap``, ``--scales``) for scenes
larger than the model's input, one image at a time with ``--batch-size`` windows per model call.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import itertools
import json
import logging
import math
import os
import sys
import time

import cv2
import numpy as np
import torch
import tqdm

from rotated_det.config import LazyConfig, select
from rotated_det.engine.predictor import PRECISIONS, DefaultPredictor
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
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", nargs="+", help="image files, directories or glob patterns")
    source.add_argument("--video-input", metavar="FILE", help="a video file (cv2.VideoCapture)")
    parser.add_argument(
        "--output", required=True, help="output directory (must not hold any input)"
    )
    parser.add_argument("--confidence-threshold", type=float, default=0.5)
    parser.add_argument("--huge", action="store_true", help="sliding-window inference")
    parser.add_argument("--patch-size", type=int, default=1024)
    parser.add_argument("--overlap", type=int, default=200)
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0])
    parser.add_argument(
        "--batch-size",
        type=int,
        default=2,
        help="images or video frames per model call (with --huge: windows per model call)",
    )
    parser.add_argument(
        "--precision",
        choices=sorted(PRECISIONS),
        default="float32",
        help="autocast precision: bfloat16 on CPU or CUDA, float16 on CUDA only",
    )
    parser.add_argument(
        "--half",
        action="store_true",
        help="half precision where the device has it: float16 on CUDA, bfloat16 on the CPU",
    )
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


def check_output_apart(output: str, files: list[str], kind: str = "image") -> None:
    """Raise if the output directory is, or is above, the folder of any input file (``kind``:
    "image" or "video", for the message), or of the file a linked input points to (its outputs
    could overwrite the inputs, and a rerun would take them as inputs)."""
    out = os.path.normcase(os.path.realpath(output))
    for f in files:
        listed_in = os.path.realpath(os.path.dirname(os.path.abspath(f)))
        stored_in = os.path.dirname(os.path.realpath(f))  # differs for a symbolic link
        dirs = (os.path.normcase(listed_in), os.path.normcase(stored_in))
        if any(os.path.commonpath([out, d]) == out for d in dirs):
            raise ValueError(
                f"--output {output} holds the input {kind} {f}: outputs could overwrite inputs. "
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


class Throughput:
    """Counts items and times: end to end from construction, and detection alone."""

    def __init__(self, unit: str):
        self.unit = unit
        self.count = 0
        self.detect_seconds = 0.0
        self.start = time.perf_counter()

    def add(self, count: int, detect_seconds: float) -> None:
        self.count += count
        self.detect_seconds += detect_seconds

    def line(self, batch_size: int, precision: str) -> str:
        total = time.perf_counter() - self.start
        rate = self.count / total if total > 0 else float("inf")
        detect = self.count / self.detect_seconds if self.detect_seconds > 0 else float("inf")
        return (
            f"Throughput: {self.count} {self.unit} in {total:.2f} s total: {rate:.2f} "
            f"{self.unit}/s end to end (read, detect, draw, write); detection alone "
            f"{self.detect_seconds:.2f} s: {detect:.2f} {self.unit}/s (batch size {batch_size}, "
            f"{precision})"
        )


def _detect(predictor, huge, images: list) -> tuple[list, float]:
    """Detections (on the CPU) of each image and the seconds it took, all images together."""
    start = time.perf_counter()
    if huge is not None:
        with torch.no_grad(), predictor.autocast():
            outs = [huge(image) for image in images]
    else:
        outs = predictor(images)
    outs = [inst.to("cpu") for inst in outs]  # waits for the device: part of the time
    return outs, time.perf_counter() - start


def _batches(items, size: int):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the demo; returns one summary dict per image (``file``, ``output``, ``detections``,
    ``seconds``) or per video frame (``frame``, ``detections``, ``seconds``)."""
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(name)s] %(message)s")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    cfg = LazyConfig.load(args.config_file)
    cfg = LazyConfig.apply_overrides(cfg, args.opts)
    if args.half:
        if args.precision != "float32":
            raise ValueError(f"--half and --precision {args.precision}: give one of them")
        device = select(cfg, "train.device") or ("cuda" if torch.cuda.is_available() else "cpu")
        args.precision = "float16" if str(device).startswith("cuda") else "bfloat16"
    if args.video_input is not None:
        if not os.path.isfile(args.video_input):
            raise FileNotFoundError(f"--video-input: {args.video_input} does not exist")
        files = [args.video_input]
    else:
        files = expand_inputs(args.input)
    check_output_apart(args.output, files, "image" if args.video_input is None else "video")
    predictor = DefaultPredictor(
        cfg, batch_size=1 if args.huge else args.batch_size, precision=args.precision
    )
    names = class_names(cfg, _num_classes(predictor.model))
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
    if args.video_input is not None:
        return run_video(args, predictor, huge, names)
    return run_images(args, files, predictor, huge, names)


def run_images(args, files: list[str], predictor, huge, names: list[str] | None) -> list[dict]:
    """Detect on image files ``--batch-size`` at a time; write the outputs of the module doc."""
    out_names = output_names(files)
    metadata = _Metadata(names)
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
    throughput = Throughput("images")
    progress = tqdm.tqdm(total=len(files), desc="demo", unit="image")
    with task1, progress:
        for batch in _batches(list(zip(files, out_names)), predictor.batch_size):
            images = []
            for path, _ in batch:
                image = cv2.imread(path, cv2.IMREAD_COLOR)
                if image is None:
                    raise ValueError(f"{path}: cannot be read as an image")
                images.append(image)
            outputs, seconds = _detect(predictor, huge, images)
            throughput.add(len(images), seconds)
            for (path, name), image, instances in zip(batch, images, outputs):
                share = seconds / len(images)
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
                            "seconds": round(share, 4),
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
                    share,
                    out.num_labels_hidden,
                )
                summary.append(
                    {"file": path, "output": name, "detections": len(records), "seconds": share}
                )
            progress.update(len(batch))
    print(throughput.line(args.batch_size, args.precision), flush=True)
    return summary


def run_video(args, predictor, huge, names: list[str] | None) -> list[dict]:
    """Detect on every frame of ``--video-input``, ``--batch-size`` frames at a time; write the
    drawn video and the per-frame detections (module doc)."""
    path = args.video_input
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise ValueError(f"--video-input {path}: OpenCV (cv2.VideoCapture) cannot open it")
    fps = capture.get(cv2.CAP_PROP_FPS)
    if not fps or not math.isfinite(fps) or fps <= 0:
        logger.warning("%s: the video gives no frame rate; the output is written at 30 fps", path)
        fps = 30.0
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    stem = os.path.splitext(os.path.basename(path))[0]
    video_path = safe_path(args.output, stem, ".mp4")
    metadata = _Metadata(names)
    writer = None
    summary = []
    throughput = Throughput("frames")

    def frames():
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield frame

    stream = frames()
    first = next(stream, None)
    if first is None:
        capture.release()
        raise ValueError(f"--video-input {path}: no frame could be read")
    os.makedirs(args.output, exist_ok=True)
    progress = tqdm.tqdm(total=count if count > 0 else None, desc="demo", unit="frame")
    try:
        with open(safe_path(args.output, stem, ".jsonl"), "w", encoding="utf-8") as records_file:
            for batch in _batches(itertools.chain([first], stream), args.batch_size):
                outputs, seconds = _detect(predictor, huge, batch)
                throughput.add(len(batch), seconds)
                for frame, instances in zip(batch, outputs):
                    instances = instances[instances.scores >= args.confidence_threshold]
                    records = instances_to_records(instances, names)
                    vis = Visualizer(frame[:, :, ::-1], metadata, scale=args.vis_scale)
                    drawn = vis.draw_instance_predictions(instances).get_image()[:, :, ::-1]
                    if writer is None:
                        size = (drawn.shape[1], drawn.shape[0])
                        writer = cv2.VideoWriter(
                            video_path, cv2.VideoWriter_fourcc(*"mp4v"), fps, size
                        )
                        if not writer.isOpened():
                            raise OSError(f"cv2.VideoWriter cannot write {video_path} (mp4v)")
                    writer.write(np.ascontiguousarray(drawn))
                    index = len(summary)
                    line = {"frame": index, "seconds": round(seconds / len(batch), 4)}
                    records_file.write(json.dumps({**line, "instances": records}) + "\n")
                    summary.append({**line, "detections": len(records)})
                progress.update(len(batch))
    finally:
        progress.close()
        capture.release()
        if writer is not None:
            writer.release()
    logger.info("%s -> %s: %d frames at %.2f fps", path, video_path, len(summary), fps)
    print(throughput.line(args.batch_size, args.precision), flush=True)
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])

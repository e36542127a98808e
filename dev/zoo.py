#!/usr/bin/env python
"""The model zoo's CPU table: every detector family's quickstart config trained and evaluated on
the synthetic dataset by ``dev/quickstart.py``, one after the other.

    python dev/zoo.py                      # print the table from the last runs' summaries
    python dev/zoo.py --run                # train + evaluate every family, then print the table
    python dev/zoo.py --run fcos atss      # only these rows (names from ZOO below)
    python dev/zoo.py --measure            # parameters and inference ms per 512 px patch of the
                                           # trained rows (1 thread), added to the table

Each run writes ``<output-dir>/<name>/summary.json`` (mAP, timings, machine load). Runs need the
2 cores to themselves: the table prints the load average each run started under, and a time
measured under load > 1.5 is marked as such. The README's model-zoo table quotes these rows.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> (config, detector as shown in the table)
ZOO: dict[str, tuple[str, str]] = {
    "faster_rcnn": ("configs/quickstart/synthetic_quickstart.py", "Rotated Faster R-CNN"),
    "roi_transformer": ("configs/quickstart/synthetic_roi_transformer.py", "RoI Transformer"),
    "gliding_vertex": ("configs/quickstart/synthetic_gliding_vertex.py", "Gliding Vertex"),
    "atss": ("configs/quickstart/synthetic_atss.py", "Rotated ATSS"),
    "retinanet_csl": ("configs/quickstart/synthetic_retinanet_csl.py", "Rotated RetinaNet + CSL"),
    "retinanet_psc": ("configs/quickstart/synthetic_retinanet_psc.py", "Rotated RetinaNet + PSC"),
    "fcos": ("configs/quickstart/synthetic_fcos.py", "Rotated FCOS"),
    "fcos_psc": ("configs/quickstart/synthetic_fcos_psc.py", "Rotated FCOS + PSC"),
    "h2rbox_v2": ("configs/quickstart/synthetic_h2rbox_v2.py", "H2RBox-v2 (horizontal labels)"),
    "r3det": ("configs/quickstart/synthetic_r3det.py", "R3Det"),
    "s2anet": ("configs/quickstart/synthetic_s2anet.py", "S2A-Net"),
    "rotated_reppoints": ("configs/quickstart/synthetic_rotated_reppoints.py", "Rotated RepPoints"),
    "oriented_reppoints": (
        "configs/quickstart/synthetic_oriented_reppoints.py",
        "Oriented RepPoints",
    ),
    "cfa": (
        "configs/quickstart/synthetic_cfa.py",
        "CFA (RepPoints, convex-hull feature adaptation)",
    ),
    "sasm": ("configs/quickstart/synthetic_sasm.py", "SASM (RepPoints, shape-adaptive selection)"),
    "rtmdet_tiny": ("configs/quickstart/synthetic_rtmdet_tiny.py", "Rotated RTMDet-tiny (CSPNeXt)"),
    "rtmdet_tiny_aug": (
        "configs/quickstart/synthetic_rtmdet_tiny_aug.py",
        "Rotated RTMDet-tiny, mosaic + mixup + rotation",
    ),
    "lsknet": (
        "projects/LSKNet/configs/synthetic_lsknet_t.py",
        "Rotated Faster R-CNN, small LSKNet (projects/LSKNet)",
    ),
    "redet": (
        "projects/ReDet/configs/synthetic_redet.py",
        "ReDet, ReResNet-18 + ReFPN (projects/ReDet)",
    ),
}
IDLE_LOAD = 1.5
VAL_PATCHES = os.path.join(ROOT, "datasets", "synthetic", "split_512", "val", "images")


def run_one(name: str, output_dir: str, extra: list[str]) -> None:
    config, _ = ZOO[name]
    cmd = [
        sys.executable,
        os.path.join(ROOT, "dev", "quickstart.py"),
        "--config-file",
        config,
        "--output-dir",
        os.path.join(output_dir, name),
        "--num-draw",
        "0",
        *extra,
    ]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def measure_one(name: str, output_dir: str, num_images: int, threads: int) -> dict:
    """Parameters and inference time of a trained row: ``DefaultPredictor`` (the config's test
    resize, the model, post-processing) on the first ``num_images`` validation patches (512 x 512),
    after 2 warm-up images, ``threads`` torch threads; written to ``<row>/speed.json``."""
    import glob
    import time

    import cv2
    import numpy as np
    import torch

    from rotated_det.config import LazyConfig, instantiate
    from rotated_det.engine import DefaultPredictor

    with open(os.path.join(output_dir, name, "summary.json"), encoding="utf-8") as f:
        checkpoint = json.load(f)["paths"]["checkpoint"]
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"{name}: no checkpoint {checkpoint}; run `--run {name}` first")
    paths = sorted(glob.glob(os.path.join(VAL_PATCHES, "*.png")))[: num_images + 2]
    if len(paths) < 3:
        raise FileNotFoundError(f"fewer than 3 validation patches in {VAL_PATCHES}")
    torch.set_num_threads(threads)
    cfg = LazyConfig.load(os.path.join(ROOT, ZOO[name][0]))
    cfg.train.init_checkpoint = checkpoint
    cfg.train.device = "cpu"
    # the model as trained (the predictor folds its batch norms into the convolutions)
    parameters = sum(p.numel() for p in instantiate(cfg.model).parameters())
    predictor = DefaultPredictor(cfg)  # as users run it: norms folded, channels-last weights
    images = [cv2.imread(p) for p in paths]
    times = []
    for i, image in enumerate(images):
        t0 = time.perf_counter()
        predictor(image)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    speed = {
        "parameters_M": round(parameters / 1e6, 2),
        "inference_ms_per_patch": round(1000 * float(np.median(times)), 1),
        "images": len(times),
        "threads": threads,
        "load_average": round(os.getloadavg()[0], 2),
    }
    with open(os.path.join(output_dir, name, "speed.json"), "w", encoding="utf-8") as f:
        json.dump(speed, f, indent=2)
    print(f"{name}: {speed}", flush=True)
    return speed


def table(output_dir: str, names: list[str]) -> str:
    """The markdown table of the summaries found (missing runs are listed as such)."""
    rows = [
        "| family | config | mAP50 | mAP75 | iterations | s/iter | total min | load at start "
        "| params (M) | ms / 512 px patch |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in names:
        config, detector = ZOO[name]
        path = os.path.join(output_dir, name, "summary.json")
        if not os.path.isfile(path):
            rows.append(f"| {detector} | `{config}` | not run | | | | | | | |")
            continue
        with open(path, encoding="utf-8") as f:
            s = json.load(f)
        load = s["load_average_start"]
        note = "" if load < IDLE_LOAD else " (loaded)"
        map75 = "" if s.get("mAP75") is None else f"{s['mAP75']:.1f}"
        speed_path = os.path.join(output_dir, name, "speed.json")
        params = ms = ""
        if os.path.isfile(speed_path):
            with open(speed_path, encoding="utf-8") as f:
                speed = json.load(f)
            params = f"{speed['parameters_M']:.2f}"
            ms = f"{speed['inference_ms_per_patch']:.0f} ({speed['threads']} thr)"
            if speed["load_average"] >= IDLE_LOAD:
                ms += " (loaded)"
        rows.append(
            f"| {detector} | `{config}` | {s['mAP50']:.1f} | {map75} | {s['iterations']} | "
            f"{s['sec_per_iter']} | {s['total_minutes']:.1f}{note} | {load:.2f} | {params} | {ms} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("names", nargs="*", help=f"rows to run or show (default: all): {list(ZOO)}")
    p.add_argument("--run", action="store_true", help="train and evaluate before printing")
    p.add_argument(
        "--measure",
        action="store_true",
        help="measure parameters and inference ms per patch of trained rows before printing",
    )
    p.add_argument("--measure-images", type=int, default=20, help="patches timed per row")
    p.add_argument("--measure-threads", type=int, default=1, help="torch threads when timing")
    p.add_argument("--output-dir", default=os.path.join(ROOT, "output", "zoo"))
    p.add_argument(
        "--quickstart-arg",
        action="append",
        default=[],
        help="passed on to dev/quickstart.py (repeat), e.g. --quickstart-arg=--max-iter=50",
    )
    args = p.parse_args(argv)
    unknown = [n for n in args.names if n not in ZOO]
    if unknown:
        p.error(f"unknown zoo rows {unknown}; known: {list(ZOO)}")
    names = args.names or list(ZOO)
    if args.run:
        for name in names:
            run_one(name, args.output_dir, args.quickstart_arg)
    if args.measure:
        for name in names:
            if os.path.isfile(os.path.join(args.output_dir, name, "summary.json")):
                measure_one(name, args.output_dir, args.measure_images, args.measure_threads)
    text = table(args.output_dir, names)
    print(text)
    return text


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""The model zoo's CPU table: every detector family's quickstart config trained and evaluated on
the synthetic dataset by ``dev/quickstart.py``, one after the other.

    python dev/zoo.py                      # print the table from the last runs' summaries
    python dev/zoo.py --run                # train + evaluate every family, then print the table
    python dev/zoo.py --run fcos atss      # only these rows (names from ZOO below)

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
    "rtmdet_tiny": ("configs/quickstart/synthetic_rtmdet_tiny.py", "Rotated RTMDet-tiny (CSPNeXt)"),
    "rtmdet_tiny_aug": (
        "configs/quickstart/synthetic_rtmdet_tiny_aug.py",
        "Rotated RTMDet-tiny, mosaic + mixup + rotation",
    ),
    "lsknet": (
        "projects/LSKNet/configs/synthetic_lsknet_t.py",
        "Rotated Faster R-CNN, small LSKNet (projects/LSKNet)",
    ),
}
IDLE_LOAD = 1.5


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


def table(output_dir: str, names: list[str]) -> str:
    """The markdown table of the summaries found (missing runs are listed as such)."""
    rows = [
        "| family | config | mAP50 | mAP75 | iterations | s/iter | total min | load at start |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in names:
        config, detector = ZOO[name]
        path = os.path.join(output_dir, name, "summary.json")
        if not os.path.isfile(path):
            rows.append(f"| {detector} | `{config}` | not run | | | | | |")
            continue
        with open(path, encoding="utf-8") as f:
            s = json.load(f)
        load = s["load_average_start"]
        note = "" if load < IDLE_LOAD else " (loaded)"
        map75 = "" if s.get("mAP75") is None else f"{s['mAP75']:.1f}"
        rows.append(
            f"| {detector} | `{config}` | {s['mAP50']:.1f} | {map75} | {s['iterations']} | "
            f"{s['sec_per_iter']} | {s['total_minutes']:.1f}{note} | {load:.2f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("names", nargs="*", help=f"rows to run or show (default: all): {list(ZOO)}")
    p.add_argument("--run", action="store_true", help="train and evaluate before printing")
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
    text = table(args.output_dir, names)
    print(text)
    return text


if __name__ == "__main__":
    main()

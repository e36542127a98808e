#!/usr/bin/env python
"""Prepare FAIR1M for training: write DOTA label files from the XML labels, then cut the large
images into 1024 px patches with a 200 px overlap (MMRotate's single-scale "ss" preset).

    python datasets/prepare_fair1m.py                    # FAIR1M-2.0 under $ROTATED_DET_DATASETS
    python datasets/prepare_fair1m.py --version 1.0 --nproc 8

For each labelled split (v1.0: train; v2.0: train, val) ``<split>/labelXml`` becomes
``<split>/labelTxt`` (:func:`rotated_det.data.datasets.fair1m.convert_fair1m_to_dota`); then
:func:`rotated_det.data.dota_split.split_dota` writes ``split_ss/<split>/{images,labelTxt}`` for
each split, ``split_ss/trainval`` (v2.0: train and val together) and ``split_ss/test`` (images
only, when ``test/images`` exists). The datasets ``fair1m_v1_*_ss`` / ``fair1m_v2_*_ss`` load
these (datasets/README.md).
"""

from __future__ import annotations

import argparse
import logging
import os

from rotated_det.data.datasets.fair1m import convert_fair1m_to_dota
from rotated_det.data.dota_split import SPLIT_PRESETS, split_dota

LABELLED = {"1.0": ("train",), "2.0": ("train", "val")}


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--version", choices=sorted(LABELLED), default="2.0", help="FAIR1M version")
    p.add_argument(
        "--root",
        default=None,
        help="the FAIR1M folder (default $ROTATED_DET_DATASETS/FAIR1M-<version>)",
    )
    p.add_argument("--nproc", type=int, default=os.cpu_count() or 1, help="worker processes")
    p.add_argument("--skip-split", action="store_true", help="only write the DOTA label files")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv=None) -> dict:
    """Run the preparation; returns ``{"convert": {split: counts}, "split": {split: summary}}``."""
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    root = args.root or os.path.join(
        os.path.expanduser(os.environ.get("ROTATED_DET_DATASETS", "datasets")),
        f"FAIR1M-{args.version}",
    )
    labelled = LABELLED[args.version]
    for split in labelled:
        for sub in ("images", "labelXml"):
            if not os.path.isdir(os.path.join(root, split, sub)):
                raise SystemExit(
                    f"missing {os.path.join(root, split, sub)} (see datasets/README.md, FAIR1M)"
                )
    out: dict = {"convert": {}, "split": {}}
    for split in labelled:
        out["convert"][split] = convert_fair1m_to_dota(
            os.path.join(root, split, "labelXml"), os.path.join(root, split, "labelTxt")
        )
        print(f"{split}: {out['convert'][split]}")
    if args.skip_split:
        return out
    jobs = {s: [s] for s in labelled}
    if len(labelled) > 1:
        jobs["trainval"] = list(labelled)
    if os.path.isdir(os.path.join(root, "test", "images")):
        jobs["test"] = ["test"]
    for name, parts in jobs.items():
        test = name == "test"
        out["split"][name] = split_dota(
            [os.path.join(root, p, "images") for p in parts],
            os.path.join(root, "split_ss", name),
            ann_dirs=None if test else [os.path.join(root, p, "labelTxt") for p in parts],
            nproc=args.nproc,
            progress=not args.no_progress,
            **SPLIT_PRESETS["ss"],
        )
        s = out["split"][name]
        print(f"split_ss/{name}: {s['images']} images -> {s['patches']} patches")
    return out


if __name__ == "__main__":
    main()

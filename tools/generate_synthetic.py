#!/usr/bin/env python
"""Generate the synthetic rotated-object dataset in DOTA format (and optionally split it).

    python tools/generate_synthetic.py                       # the default: datasets/synthetic
    python tools/generate_synthetic.py --root /data/syn --num-train 200 --num-val 40 --seed 1
    python tools/generate_synthetic.py --no-split            # full scenes only

Without options it writes exactly what the builtin datasets ``synthetic_train``,
``synthetic_val``, ``synthetic_train_512`` and ``synthetic_val_512`` load (generated on first use
anyway). The output is the same for the same arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import os

from rotated_det.data.datasets import builtin
from rotated_det.data.datasets.synthetic import generate_synthetic_dataset


def get_parser() -> argparse.ArgumentParser:
    d = builtin.SYNTHETIC_ARGS
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--root", default=None, help="output directory (default $ROTATED_DET_DATASETS/synthetic)"
    )
    p.add_argument("--num-train", type=int, default=d["num_train"])
    p.add_argument("--num-val", type=int, default=d["num_val"])
    p.add_argument("--seed", type=int, default=d["seed"])
    p.add_argument(
        "--image-size",
        type=int,
        default=d["image_size"],
        help="typical image side; some images are drawn 900-1600 px",
    )
    p.add_argument(
        "--large-fraction", type=float, default=0.2, help="fraction of images larger than a patch"
    )
    p.add_argument("--density", type=float, default=1.0, help="objects and clutter per area")
    p.add_argument("--image-ext", default=".png", choices=[".png", ".jpg"])
    p.add_argument("--no-split", action="store_true", help="do not cut 512 px patches")
    p.add_argument("--overwrite", action="store_true", help="regenerate even if present")
    return p


def main(argv=None) -> dict:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    root = args.root or os.path.join(builtin.get_datasets_root(), "synthetic")
    gen = dict(
        num_train=args.num_train,
        num_val=args.num_val,
        seed=args.seed,
        image_size=args.image_size,
        large_fraction=args.large_fraction,
        density=args.density,
        image_ext=args.image_ext,
    )
    summary = generate_synthetic_dataset(root, overwrite=args.overwrite, **gen)
    if not args.no_split:
        done = os.path.join(root, "split_512", "DONE")
        if args.overwrite and os.path.isfile(done):
            os.remove(done)
        builtin.prepare_synthetic(root, split_patches=True, generator_args=gen)
    print(json.dumps({"root": root, **summary}))
    return summary


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Split large DOTA-format images (and their labels) into overlapping patches.

    python tools/split_dota.py --preset ss --img-dirs DOTA/train/images DOTA/val/images \
        --ann-dirs DOTA/train/labelTxt DOTA/val/labelTxt --save-dir DOTA/split_ss/trainval --nproc 8
    python tools/split_dota.py --preset ms --img-dirs DOTA/test/images --save-dir DOTA/split_ms/test

Options keep the names of MMRotate's ``img_split.py``. ``--preset ss`` is 1024 px patches with a
200 px overlap at rate 1.0; ``--preset ms`` is 1024 / 500 at rates 0.5, 1.0 and 1.5; explicit
``--sizes/--gaps/--rates`` override the preset. Patches are named ``NAME__RATE__X___Y`` and written
to ``<save-dir>/images`` and ``<save-dir>/labelTxt`` (no labels without ``--ann-dirs``). Objects cut
by a patch border are kept (clipped to the patch) when at least ``--iof-thr`` of their area is
inside it. Prints a summary: images, patches, objects kept and dropped, time.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from rotated_det.data.dota_split import SPLIT_PRESETS, split_dota


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--img-dirs", nargs="+", required=True, help="image directories")
    p.add_argument(
        "--ann-dirs",
        nargs="+",
        default=None,
        help="label directories, one per image directory (omit for test sets)",
    )
    p.add_argument("--sizes", nargs="+", type=int, default=None, help="patch sizes (default 1024)")
    p.add_argument("--gaps", nargs="+", type=int, default=None, help="overlaps (default 200)")
    p.add_argument(
        "--rates", nargs="+", type=float, default=None, help="image resize rates (default 1.0)"
    )
    p.add_argument(
        "--img-rate-thr",
        type=float,
        default=0.6,
        help="minimum fraction of a patch inside the image",
    )
    p.add_argument(
        "--iof-thr",
        type=float,
        default=0.7,
        help="minimum fraction of an object inside a patch to keep it there",
    )
    p.add_argument("--no-padding", action="store_true", help="do not pad border patches")
    p.add_argument(
        "--padding-value",
        nargs="+",
        type=int,
        default=[0, 0, 0],
        help="BGR padding value (one value or three)",
    )
    p.add_argument("--save-dir", required=True, help="output directory")
    p.add_argument("--save-ext", default=".png", help="patch image extension")
    p.add_argument("--nproc", type=int, default=1, help="worker processes")
    p.add_argument(
        "--preset",
        choices=sorted(SPLIT_PRESETS),
        default=None,
        help="ss: 1024/200/1.0; ms: 1024/500/(0.5, 1.0, 1.5)",
    )
    p.add_argument(
        "--skip-malformed",
        action="store_true",
        help="skip (and count) malformed label lines instead of stopping",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--write-threads", type=int, default=2, help="threads encoding patch images in each process"
    )
    return p


def main(argv=None) -> dict:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    preset = SPLIT_PRESETS[args.preset] if args.preset else SPLIT_PRESETS["ss"]
    sizes = args.sizes or list(preset["sizes"])
    gaps = args.gaps or list(preset["gaps"])
    rates = args.rates or list(preset["rates"])
    if len(sizes) != len(gaps):
        sys.exit(f"--sizes {sizes} and --gaps {gaps} must have the same number of values")
    ext = args.save_ext if args.save_ext.startswith(".") else "." + args.save_ext
    summary = split_dota(
        args.img_dirs,
        args.save_dir,
        ann_dirs=args.ann_dirs,
        sizes=sizes,
        gaps=gaps,
        rates=rates,
        img_rate_thr=args.img_rate_thr,
        iof_thr=args.iof_thr,
        no_padding=args.no_padding,
        padding_value=args.padding_value,
        save_ext=ext,
        nproc=args.nproc,
        skip_malformed=args.skip_malformed,
        progress=not args.no_progress,
        write_threads=args.write_threads,
    )
    print(
        f"images: {summary['images']}  patches: {summary['patches']}  objects: "
        f"{summary['objects']}  kept (object pieces): {summary['kept']}  clipped: "
        f"{summary['clipped']}  dropped (in no patch): {summary['dropped']}  malformed lines "
        f"skipped: {summary['malformed']}  time: {summary['seconds']:.2f}s "
        f"({summary['megapixels'] / max(summary['seconds'], 1e-9):.1f} MP/s)"
    )
    with open(f"{args.save_dir}/split_summary.json", "w") as f:
        json.dump(
            dict(summary, sizes=sizes, gaps=gaps, rates=rates, iof_thr=args.iof_thr), f, indent=1
        )
    return summary


if __name__ == "__main__":
    main()

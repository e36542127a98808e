#!/usr/bin/env python
"""Draw rotated ground truth of a dataset to image files, as annotated or as the loader yields it.

    python tools/visualize_data.py --dataset synthetic_train --source annotation --output-dir vis
    python tools/visualize_data.py --config-file configs/common/data/synthetic.py \
        --source dataloader --output-dir vis --num-images 20

``--source annotation`` draws each dataset dict's boxes on its image; ``--source dataloader``
draws the mapped training batches (after augmentation), which shows whether augmentations keep
boxes on their objects. Difficult objects are drawn dashed.
"""

from __future__ import annotations

import argparse
import logging
import os

import numpy as np
from tqdm import tqdm

from rotated_det.data import DatasetCatalog, MetadataCatalog
from rotated_det.data.detection_utils import read_image
from rotated_det.utils.visualizer import Visualizer


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--source", choices=["annotation", "dataloader"], required=True)
    p.add_argument("--dataset", help="registered dataset name (default: the config's train set)")
    p.add_argument(
        "--config-file", help="LazyConfig with dataloader.train (for --source dataloader)"
    )
    p.add_argument("--output-dir", required=True)
    p.add_argument("--num-images", type=int, default=10, help="images to draw")
    p.add_argument("--scale", type=float, default=1.0, help="drawing scale")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides key=value")
    return p


def _metadata_for(name):
    return MetadataCatalog.get(name) if name else None


def main(argv=None) -> list[str]:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.makedirs(args.output_dir, exist_ok=True)
    written = []
    if args.source == "annotation":
        if not args.dataset:
            raise SystemExit("--source annotation needs --dataset")
        dicts = DatasetCatalog.get(args.dataset)
        md = _metadata_for(args.dataset)
        for d in tqdm(dicts[: args.num_images], desc="draw"):
            img = read_image(d["file_name"], "RGB")
            vis = Visualizer(img, md, scale=args.scale).draw_dataset_dict(d)
            out = os.path.join(args.output_dir, f"{d['image_id']}.jpg")
            vis.save(out)
            written.append(out)
    else:
        from rotated_det.config import LazyConfig, instantiate

        if not args.config_file:
            raise SystemExit("--source dataloader needs --config-file")
        cfg = LazyConfig.load(args.config_file)
        cfg = LazyConfig.apply_overrides(cfg, args.opts)
        if args.dataset:
            cfg.dataloader.train.dataset.names = args.dataset
        names = cfg.dataloader.train.dataset.names
        md = _metadata_for(names if isinstance(names, str) else names[0])
        fmt = cfg.dataloader.train.mapper.get("image_format", "BGR")
        loader = instantiate(cfg.dataloader.train)
        n = 0
        bar = tqdm(total=args.num_images, desc="draw")
        for batch in loader:
            if n >= args.num_images:
                break
            for x in batch:
                if n >= args.num_images:
                    break
                img = x["image"].permute(1, 2, 0).numpy()
                if fmt == "BGR":
                    img = img[:, :, ::-1]
                elif fmt == "L":
                    img = np.repeat(img, 3, axis=2)
                inst = x["instances"]
                vis = Visualizer(np.ascontiguousarray(img), md, scale=args.scale)
                vis = vis.overlay_rotated_instances(
                    inst.gt_boxes.tensor.numpy(), inst.gt_classes.numpy()
                )
                out = os.path.join(args.output_dir, f"{n:04d}_{x['image_id']}.jpg")
                vis.save(out)
                written.append(out)
                n += 1
                bar.update(1)
        bar.close()
    print(f"Wrote {len(written)} images to {args.output_dir}")
    return written


if __name__ == "__main__":
    main()

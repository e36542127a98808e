#!/usr/bin/env python
"""Draw rotated ground truth of a dataset to image files, as annotated or as the loader yields it.

    python tools/visualize_data.py --dataset synthetic_train --source annotation --output-dir vis
    python tools/visualize_data.py --config-file my_config.py --source annotation --output-dir vis
    python tools/visualize_data.py --config-file configs/common/data/synthetic.py \
        --source dataloader --output-dir vis --num-images 20

``--source annotation`` draws each dataset dict's boxes on its image; ``--source dataloader``
draws the mapped training batches (after augmentation), which shows whether augmentations keep
boxes on their objects. Difficult objects are drawn dashed.

``--config-file`` is loaded (and overridden) for both sources, so datasets that the config
registers (``register_dota_instances(...)`` in the file) can be drawn; ``--dataset`` defaults to
the config's ``dataloader.train.dataset.names``. Drawings are named after the image ids,
escaped by :func:`rotated_det.utils.file_io.safe_path` so that they stay in ``--output-dir``.
"""

from __future__ import annotations

import argparse
import logging
import os

import numpy as np
from tqdm import tqdm

from rotated_det.config import LazyConfig, instantiate
from rotated_det.data import DatasetCatalog, MetadataCatalog
from rotated_det.data.detection_utils import read_image
from rotated_det.utils.file_io import safe_path
from rotated_det.utils.visualizer import Visualizer


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--source", choices=["annotation", "dataloader"], required=True)
    p.add_argument("--dataset", help="registered dataset name (default: the config's train set)")
    p.add_argument(
        "--config-file",
        help="LazyConfig: runs the dataset registrations it holds; its dataloader.train is the "
        "default dataset (annotation) and the loader drawn (dataloader)",
    )
    p.add_argument("--output-dir", required=True)
    p.add_argument("--num-images", type=int, default=10, help="images to draw")
    p.add_argument("--scale", type=float, default=1.0, help="drawing scale")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides key=value")
    return p


def _metadata_for(name):
    return MetadataCatalog.get(name) if name else None


def _train_dataset_names(cfg, config_file: str) -> list[str]:
    try:
        names = cfg.dataloader.train.dataset.names
    except Exception:
        raise SystemExit(
            f"{config_file} has no dataloader.train.dataset.names: pass --dataset"
        ) from None
    return [names] if isinstance(names, str) else list(names)


def _check_registered(names: list[str], config_file: str | None) -> None:
    missing = [n for n in names if n not in DatasetCatalog.list()]
    if missing:
        where = f"{config_file} does not register" if config_file else "no --config-file registers"
        raise SystemExit(
            f"Dataset(s) {missing} not registered ({where} them). Register a dataset in a config "
            "file (e.g. register_dota_instances('my_train', {}, 'images', 'labelTxt', "
            "class_names=[...])) and pass it with --config-file. Registered: "
            f"{', '.join(sorted(DatasetCatalog.list()))}"
        )


def main(argv=None) -> list[str]:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = None
    if args.config_file:
        cfg = LazyConfig.load(args.config_file)  # runs the registrations the file holds
        cfg = LazyConfig.apply_overrides(cfg, args.opts)
    elif args.opts:
        raise SystemExit(f"Overrides {args.opts} need --config-file")
    os.makedirs(args.output_dir, exist_ok=True)
    written = []
    if args.source == "annotation":
        if args.dataset:
            names = [args.dataset]
        elif cfg is not None:
            names = _train_dataset_names(cfg, args.config_file)
        else:
            raise SystemExit("--source annotation needs --dataset or --config-file")
        _check_registered(names, args.config_file)
        todo = [(d, name) for name in names for d in DatasetCatalog.get(name)]
        for d, name in tqdm(todo[: args.num_images], desc="draw"):
            img = read_image(d["file_name"], "RGB")
            vis = Visualizer(img, _metadata_for(name), scale=args.scale).draw_dataset_dict(d)
            out = safe_path(args.output_dir, d["image_id"], ".jpg")
            vis.save(out)
            written.append(out)
    else:
        if cfg is None:
            raise SystemExit("--source dataloader needs --config-file")
        if args.dataset:
            cfg.dataloader.train.dataset.names = args.dataset
        names = _train_dataset_names(cfg, args.config_file)
        md = _metadata_for(names[0])
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
                out = safe_path(args.output_dir, f"{n:04d}_{x['image_id']}", ".jpg")
                vis.save(out)
                written.append(out)
                n += 1
                bar.update(1)
        bar.close()
    print(f"Wrote {len(written)} images to {args.output_dir}")
    return written


if __name__ == "__main__":
    main()

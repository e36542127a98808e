#!/usr/bin/env python
"""Benchmark of RTMDet's strong augmentation in the mapper (images/s, one process, one thread),
next to baselines measured in the same run:

1. ``plain``: ``DatasetMapper`` with the weak pipeline of MMRotate's rotated_rtmdet_l-100e-aug-dota
   (jitter x0.1-2 of S, rotation with prob 0.5, S px crop, flips) -- the baseline;
2. ``mosaic+mixup``: the strong pipeline of that config (``CachedMosaic`` of S px quadrants,
   jitter of the 2S canvas, rotation, crop, flips, ``CachedMixUp``);
3. ``mosaic, 4 reads``: the same mosaic without a cache, reading the three other images from disk
   for every image (MMDetection's plain ``Mosaic``), to show what the cache saves; the cached
   mosaic alone, and with the mixup.

Images are S x S PNG patches (DOTA: S = 1024) with ``--objects`` rotated rectangles each.

    python dev/bench_mosaic.py [--size 1024] [--objects 100] [--images 40] [--quick]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import cv2
import numpy as np

import rotated_det.data.transforms as T
from rotated_det.data import CachedMixUp, CachedMosaic, DatasetMapper
from rotated_det.data import detection_utils as utils
from rotated_det.data.image_mixing import LabeledImage
from rotated_det.structures import BoxMode


def _dataset(root: str, n: int, size: int, n_obj: int) -> list[dict]:
    rng = np.random.default_rng(0)
    dicts = []
    for i in range(n):
        low = rng.integers(40, 200, (size // 32, size // 32, 3)).astype(np.uint8)
        img = cv2.resize(low, (size, size), interpolation=cv2.INTER_LINEAR)
        path = os.path.join(root, f"{i}.png")
        cv2.imwrite(path, img)
        boxes = np.column_stack(
            [
                rng.uniform(20, size - 20, (2, n_obj)).T,
                rng.uniform(10, 80, n_obj),
                rng.uniform(6, 30, n_obj),
                rng.uniform(-180, 180, n_obj),
            ]
        )
        annos = [
            {"bbox": b.tolist(), "bbox_mode": BoxMode.XYWHA_ABS, "category_id": int(k % 15)}
            for k, b in enumerate(boxes)
        ]
        dicts.append(
            {"file_name": path, "height": size, "width": size, "image_id": i, "annotations": annos}
        )
    return dicts


def _augmentations(size: int, canvas: int) -> list:
    return [
        T.ResizeScale(0.1, 2.0, canvas, canvas),
        T.RandomRotation((-180, 180), expand=False, prob=0.5, rect_classes=[9, 11]),
        T.RandomCrop("absolute", (size, size)),
        T.RandomFlip(0.25, horizontal=True),
        T.RandomFlip(0.25, horizontal=False, vertical=True),
        T.RandomFlip(0.25, horizontal=False, diagonal=True),
    ]


class UncachedMosaic(CachedMosaic):
    """The mosaic with the three other images read from disk for every image (no cache)."""

    def __init__(self, dicts: list[dict], image_size: int):
        super().__init__(image_size=image_size)
        self.dicts = dicts

    def __call__(self, sample: LabeledImage) -> tuple[LabeledImage, int]:
        tiles = [sample]
        for i in np.random.randint(0, len(self.dicts), 3):
            d = self.dicts[int(i)]
            boxes, classes, diff = utils.annotations_to_arrays(d["annotations"])
            tiles.append(LabeledImage(utils.read_image(d["file_name"]), boxes, classes, diff))
        return self.combine(tiles, self._draw_center())


def _rate(mapper, dicts: list[dict], n: int, warmup: int) -> tuple[float, float]:
    """Images/s and mean objects per output image over ``n`` images after ``warmup``."""
    np.random.seed(0)
    for d in dicts[:warmup]:
        mapper(d)
    objects = 0
    start = time.perf_counter()
    for i in range(n):
        out = mapper(dicts[(warmup + i) % len(dicts)])
        objects += len(out["instances"])
    return n / (time.perf_counter() - start), objects / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", type=int, default=1024, help="S: patch and crop side (px)")
    p.add_argument("--objects", type=int, default=100, help="objects per patch")
    p.add_argument("--images", type=int, default=40, help="images timed per mapper")
    p.add_argument("--quick", action="store_true", help="S = 512, 10 images")
    args = p.parse_args()
    if args.quick:
        args.size, args.images = 512, 10
    cv2.setNumThreads(1)
    size = args.size
    with tempfile.TemporaryDirectory() as root:
        dicts = _dataset(root, 24, size, args.objects)
        warmup = 8  # fills the mosaic cache past its 4-image start
        mappers = {
            "plain (weak pipeline)": DatasetMapper(
                is_train=True, augmentations=_augmentations(size, size)
            ),
            "mosaic (cached)": DatasetMapper(
                is_train=True,
                augmentations=_augmentations(size, 2 * size),
                mosaic=CachedMosaic(image_size=size, max_cached_images=40),
            ),
            "mosaic, 4 reads (no cache)": DatasetMapper(
                is_train=True,
                augmentations=_augmentations(size, 2 * size),
                mosaic=UncachedMosaic(dicts, size),
            ),
            "mosaic+mixup (cached)": DatasetMapper(
                is_train=True,
                augmentations=_augmentations(size, 2 * size),
                mosaic=CachedMosaic(image_size=size, max_cached_images=40),
                mixup=CachedMixUp(image_size=size, ratio_range=(1.0, 1.0), max_cached_images=20),
            ),
        }
        print(
            f"{size} px patches, {args.objects} objects each, {args.images} images per mapper, "
            "1 process, 1 thread"
        )
        base = None
        for name, mapper in mappers.items():
            rate, objects = _rate(mapper, dicts, args.images, warmup)
            base = rate if base is None else base
            print(
                f"  {name:28s} {rate:7.2f} images/s  ({1000 / rate:6.1f} ms/image, "
                f"x{rate / base:.2f} of plain, {objects:.0f} objects/image)"
            )


if __name__ == "__main__":
    main()

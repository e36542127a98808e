#!/usr/bin/env python
"""What test-time augmentation adds: mAP of one checkpoint without and with TTA, in one run.

    python dev/eval_tta.py --config-file configs/quickstart/synthetic_quickstart.py \\
        --checkpoint output/quickstart/train/model_final.pth [--setups plain,hflip,d4,d4-wbf] \\
        [--max-images N] [--threads 1] [key=value overrides ...]

Each setup evaluates the config's ``dataloader.test`` with ``dataloader.evaluator`` (as
``tools/lazyconfig_train_net.py --eval-only`` does) through
:class:`rotated_det.engine.RotatedDetectorWithTTA`:

- ``plain``: the model alone;
- ``hflip``: + horizontal flip (2 views), class-wise rotated NMS;
- ``flips``: both flips (4 views: identity, h, v, rot180);
- ``d4``: both flips x rot90 0/90/180/270 (the square's 8 symmetries), NMS;
- ``d4-wbf``: the same views merged by weighted box fusion;
- ``d4-scales``: ``d4`` at scales 0.75, 1, 1.25 (24 views), NMS;
- ``config``: the config's own ``train.tta`` settings.

TTA's NMS threshold and detections per image are those of ``train.tta`` (override them like any
key, e.g. ``train.tta.max_detections=300``). Prints a table: setup, views, mAP50, mAP75,
mAP50-95 (what the evaluator reports), seconds per image. ``--max-images N`` evaluates the first N
test images only (a quick check; for DOTA-style patch datasets an image whose patches are cut off
is evaluated on the patches seen).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Mapping

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SETUPS = {
    "plain": None,
    "hflip": dict(hflip=True),
    "flips": dict(hflip=True, vflip=True),
    "d4": dict(hflip=True, vflip=True, rot90=(0, 90, 180, 270)),
    "d4-wbf": dict(hflip=True, vflip=True, rot90=(0, 90, 180, 270), merge="wbf"),
    "d4-scales": dict(hflip=True, vflip=True, rot90=(0, 90, 180, 270), scales=(0.75, 1.0, 1.25)),
    "config": {},
}
METRICS = (("mAP50", ("AP50", "mAP")), ("mAP75", ("AP75",)), ("mAP50-95", ("mAP50-95",)))


def _find(results: Mapping, names: tuple[str, ...]):
    """The first of ``names`` in ``results`` or in a nested mapping of it."""
    for name in names:
        if name in results:
            return results[name]
    for value in results.values():
        if isinstance(value, Mapping):
            found = _find(value, names)
            if found is not None:
                return found
    return None


def build_test_loader(cfg, max_images: int | None):
    """``dataloader.test``, limited to its first ``max_images`` dataset dicts when given."""
    from rotated_det.config import instantiate
    from rotated_det.config.instantiate import locate

    if max_images is None:
        return instantiate(cfg.dataloader.test)
    spec = cfg.dataloader.test
    kwargs = {k: instantiate(v) for k, v in spec.items() if k != "_target_"}
    dicts = list(kwargs["dataset"])
    if not dicts:
        raise ValueError("dataloader.test.dataset is empty")
    kwargs["dataset"] = dicts[:max_images]
    target = spec._target_
    return (locate(target) if isinstance(target, str) else target)(**kwargs)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--checkpoint", default="", help="weights (default train.init_checkpoint)")
    parser.add_argument("--setups", default="plain,hflip,d4,d4-wbf", help=", ".join(SETUPS))
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides key=value")
    args = parser.parse_args(argv)
    setups = [s.strip() for s in args.setups.split(",") if s.strip()]
    unknown = [s for s in setups if s not in SETUPS]
    if unknown:
        parser.error(f"unknown setups {unknown}; choose from {list(SETUPS)}")

    import torch

    from rotated_det.config import LazyConfig, instantiate, select
    from rotated_det.engine.model_ema import load_inference_weights
    from rotated_det.engine.test_time_augmentation import build_tta_model
    from rotated_det.evaluation import inference_on_dataset
    from rotated_det.utils.logger import setup_logger

    if args.threads:
        torch.set_num_threads(args.threads)
    setup_logger(name="rotated_det", level=logging.WARNING)
    cfg = LazyConfig.apply_overrides(LazyConfig.load(args.config_file), args.opts or [])
    device = select(cfg, "train.device", None) or ("cuda" if torch.cuda.is_available() else "cpu")
    model = instantiate(cfg.model).to(device).eval()
    weights = args.checkpoint or select(cfg, "train.init_checkpoint", "")
    if weights:
        load_inference_weights(
            model,
            weights,
            use_ema=bool(select(cfg, "train.model_ema.enabled", False)),
            allow_unsafe=bool(select(cfg, "train.allow_unsafe_checkpoint", False)),
        )
    else:
        print("no --checkpoint and no train.init_checkpoint: evaluating random weights")
    base = dict(select(cfg, "train.tta", None) or {})
    loader = build_test_loader(cfg, args.max_images)
    num_images = sum(len(batch) for batch in loader)

    rows = []
    for name in setups:
        if SETUPS[name] is None:
            wrapped = model
            views = 1
        else:
            tta = dict(base, enabled=True)
            if name != "config":
                tta.update(hflip=False, vflip=False, rot90=(0,), scales=(1.0,), merge="nms")
                tta.update(SETUPS[name])
            wrapped = build_tta_model(model, tta)
            views = len(wrapped.views)
        start = time.perf_counter()
        results = inference_on_dataset(wrapped, loader, instantiate(cfg.dataloader.evaluator))
        seconds = (time.perf_counter() - start) / max(num_images, 1)
        row = {"setup": name, "views": views, "s/img": seconds}
        for label, keys in METRICS:
            row[label] = _find(results, keys)
        rows.append(row)
        print(_format_row(row), flush=True)

    print(f"\n{args.config_file}, {weights or 'random weights'}, {num_images} test images")
    print(f"{'setup':<10} {'views':>5} {'mAP50':>7} {'mAP75':>7} {'mAP50-95':>8} {'s/img':>7}")
    for row in rows:
        print(_format_row(row))
    return rows


def _format_row(row: dict) -> str:
    def num(v, width):
        return f"{v:>{width}.2f}" if isinstance(v, (int, float)) else f"{'-':>{width}}"

    return (
        f"{row['setup']:<10} {row['views']:>5} {num(row['mAP50'], 7)} {num(row['mAP75'], 7)} "
        f"{num(row['mAP50-95'], 8)} {row['s/img']:>7.3f}"
    )


if __name__ == "__main__":
    main()

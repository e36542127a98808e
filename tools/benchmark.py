#!/usr/bin/env python
"""Benchmark training speed, inference speed or data loading of a config.

    python tools/benchmark.py --config-file C --task train|eval|data \
        [--num-iter N] [--warmup W] [key=value overrides ...]

train: iterations/s and images/s of the training step (forward, backward, optimizer step) on
    batches from ``dataloader.train`` that are loaded once and replayed, so the loader does not
    limit the measurement;
eval:  images/s of ``model(inputs)`` in inference mode on batches of ``dataloader.test``, also
    replayed from memory;
data:  batches/s and images/s of ``dataloader.train`` itself (decoding, augmentation, batching).

The first ``--warmup`` iterations are run and not timed. Prints the result and returns it as a
dict (``{"task", "iterations", "seconds", "iter_per_s", "images_per_s"}``).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import logging
import sys
import time
from collections.abc import Mapping

import torch
import tqdm
from omegaconf import DictConfig

from rotated_det.checkpoint import DetectionCheckpointer
from rotated_det.config import LazyConfig, instantiate
from rotated_det.engine.train_loop import SimpleTrainer
from rotated_det.utils.events import EventStorage

logger = logging.getLogger("rotated_det.benchmark")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--task", required=True, choices=["train", "eval", "data"])
    parser.add_argument("--num-iter", type=int, default=20, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=3, help="untimed iterations first")
    parser.add_argument(
        "--cached-batches", type=int, default=5, help="batches replayed for train/eval"
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides (key=value)")
    return parser


def _device(cfg) -> torch.device:
    dev = cfg.get("train", {}).get("device", None) if "train" in cfg else None
    return torch.device(dev or ("cuda" if torch.cuda.is_available() else "cpu"))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _optimizer(cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
    """Instantiate ``cfg.optimizer`` with the model's parameters (``params.model`` of a LazyCall
    such as get_default_optimizer_params, or all parameters when ``params`` is missing)."""
    opt_cfg = copy.deepcopy(cfg.optimizer)
    params = opt_cfg.get("params", None)
    if isinstance(params, (Mapping, DictConfig)) and "_target_" in params:
        params["model"] = model
    else:
        opt_cfg["params"] = list(model.parameters())
    return instantiate(opt_cfg)


def _cached(loader, n: int) -> list:
    it = iter(loader)
    batches = []
    for _ in tqdm.tqdm(range(n), desc="caching batches", leave=False):
        try:
            batches.append(next(it))
        except StopIteration:
            break
    if not batches:
        raise RuntimeError("the data loader yielded no batch")
    return batches


def _images(batch) -> int:
    return len(batch) if isinstance(batch, (list, tuple)) else 1


def _report(task: str, iters: int, images: int, seconds: float) -> dict:
    res = {
        "task": task,
        "iterations": iters,
        "seconds": seconds,
        "iter_per_s": iters / seconds,
        "images_per_s": images / seconds,
    }
    unit = "batches" if task == "data" else "iterations"
    print(
        f"[benchmark {task}] {iters} {unit} in {seconds:.2f}s: "
        f"{res['iter_per_s']:.3f} {unit}/s, {res['images_per_s']:.2f} images/s"
    )
    return res


def benchmark_data(cfg, num_iter: int, warmup: int) -> dict:
    loader = instantiate(cfg.dataloader.train)
    it = iter(loader)
    for _ in range(warmup):
        next(it)
    images = 0
    start = time.perf_counter()
    for _ in tqdm.tqdm(range(num_iter), desc="data"):
        images += _images(next(it))
    return _report("data", num_iter, images, time.perf_counter() - start)


def benchmark_train(cfg, num_iter: int, warmup: int, cached: int) -> dict:
    device = _device(cfg)
    model = instantiate(cfg.model).to(device)
    model.train()
    optimizer = _optimizer(cfg, model)
    batches = _cached(instantiate(cfg.dataloader.train), cached)
    trainer = SimpleTrainer(model, itertools.cycle(batches), optimizer)
    images = 0
    with EventStorage(0) as storage:
        for i in tqdm.tqdm(range(warmup + num_iter), desc="train"):
            if i == warmup:
                _sync(device)
                start = time.perf_counter()
            storage.iter = trainer.iter = i
            trainer.run_step()
            if i >= warmup:
                images += _images(batches[i % len(batches)])
        _sync(device)
    return _report("train", num_iter, images, time.perf_counter() - start)


def benchmark_eval(cfg, num_iter: int, warmup: int, cached: int) -> dict:
    device = _device(cfg)
    model = instantiate(cfg.model).to(device).eval()
    weights = cfg.get("train", {}).get("init_checkpoint", "") if "train" in cfg else ""
    if weights:
        DetectionCheckpointer(model).load(weights)
    batches = _cached(instantiate(cfg.dataloader.test), cached)
    images = 0
    with torch.no_grad():
        for i in tqdm.tqdm(range(warmup + num_iter), desc="eval"):
            if i == warmup:
                _sync(device)
                start = time.perf_counter()
            batch = batches[i % len(batches)]
            model(batch)
            if i >= warmup:
                images += _images(batch)
        _sync(device)
    return _report("eval", num_iter, images, time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(name)s] %(message)s")
    if args.num_iter < 1 or args.warmup < 0:
        raise ValueError("--num-iter must be >= 1 and --warmup >= 0")
    cfg = LazyConfig.load(args.config_file)
    cfg = LazyConfig.apply_overrides(cfg, args.opts)
    if args.task == "data":
        return benchmark_data(cfg, args.num_iter, args.warmup)
    if args.task == "train":
        return benchmark_train(cfg, args.num_iter, args.warmup, args.cached_batches)
    return benchmark_eval(cfg, args.num_iter, args.warmup, args.cached_batches)


if __name__ == "__main__":
    main(sys.argv[1:])

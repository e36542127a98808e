#!/usr/bin/env python
"""Throughput of DefaultPredictor: batch size 1 against larger batches, float32 against bfloat16
(and float16 on CUDA), all measured in one run on the same images and weights.

    python dev/bench_predictor.py [--config-file C] [--size 1024] [--images 8] [--repeat 3]
                                  [--batch-sizes 1 4] [--precisions float32 bfloat16]
                                  [--threads 2] [--device cpu] [key=value overrides ...]

The baseline is batch size 1 in float32: one model call per image, DefaultPredictor's only mode
before it took lists. Every other row is the same ``predictor(images)`` call on the same
``--images`` random ``--size`` x ``--size`` images with another ``batch_size`` /
``precision``. The combinations are interleaved within each repeat (so that a change in the
machine's load hits them alike) after one warm-up call each; the table gives the median
images/s over ``--repeat`` repeats, its range, and the ratio to the baseline.

The model is the config's (default: Rotated RTMDet-tiny, ``configs/DOTA-Rotated/
rotated_rtmdet_tiny_3x.py``, whose test loader feeds 1024 px patches as they are) with seeded
random weights, or ``train.init_checkpoint`` when set. Random weights detect almost nothing at
the default score threshold, so the figures are the network's and the fixed post-processing
cost. bfloat16 on a CPU is fast only with native bfloat16 instructions (AVX512-BF16, AMX); the
script prints which of them the CPU has. On a shared machine use ``--threads 1``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join(REPO, "configs", "DOTA-Rotated", "rotated_rtmdet_tiny_3x.py")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-file", default=DEFAULT_CONFIG)
    parser.add_argument("--size", type=int, default=1024, help="image side, pixels")
    parser.add_argument("--images", type=int, default=8, help="images per predictor call")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--precisions", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides (key=value)")
    return parser


def cpu_bf16_flags() -> str:
    """The CPU's native bfloat16 instruction sets, from /proc/cpuinfo (Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(line.split(":", 1)[1].split() for line in f if line.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    found = [f for f in ("avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
    return ", ".join(found) or "none (bfloat16 is emulated)"


def main(argv: list[str] | None = None) -> list[dict]:
    args = get_parser().parse_args(argv)
    import numpy as np
    import torch

    from rotated_det.config import LazyConfig
    from rotated_det.engine import DefaultPredictor

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = LazyConfig.apply_overrides(LazyConfig.load(args.config_file), args.opts)
    cfg.train.device = args.device
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8) for _ in range(args.images)
    ]
    predictors = {}
    for precision in args.precisions:
        torch.manual_seed(0)  # the same random weights in every precision
        predictors[precision] = DefaultPredictor(cfg, precision=precision)
    combos = [(p, b) for p in args.precisions for b in args.batch_sizes]
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    def run(precision: str, batch_size: int) -> float:
        predictor = predictors[precision]
        predictor.batch_size = batch_size
        sync()
        start = time.perf_counter()
        outs = predictor(images)
        sync()
        assert len(outs) == len(images)
        return len(images) / (time.perf_counter() - start)

    for combo in combos:  # warm-up: allocator, oneDNN kernels, autocast caches
        run(*combo)
    rates: dict[tuple[str, int], list[float]] = {c: [] for c in combos}
    for _ in range(args.repeat):
        for combo in combos:
            rates[combo].append(run(*combo))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"DefaultPredictor on {args.device}: {os.path.relpath(args.config_file, REPO)}, "
        f"{args.images} images of {args.size} x {args.size} px per call, torch "
        f"{torch.__version__}, {torch.get_num_threads()} thread(s), load average {load:.2f}, "
        f"CPU bfloat16 instructions: {cpu_bf16_flags()}"
    )
    base = statistics.median(rates.get(("float32", 1)) or rates[combos[0]])
    base_name = "float32 batch 1" if ("float32", 1) in rates else f"{combos[0]}"
    print(f"{'precision':<10} {'batch':>5} {'images/s':>9} {'s/image':>8} {'range':>15} vs base")
    rows = []
    for (precision, batch_size), values in rates.items():
        med = statistics.median(values)
        rows.append({"precision": precision, "batch_size": batch_size, "images_per_s": med})
        print(
            f"{precision:<10} {batch_size:>5} {med:>9.2f} {1 / med:>8.3f} "
            f"{min(values):>7.2f}-{max(values):<7.2f} x{med / base:.2f}"
        )
    print(f"(base: {base_name}, median of {args.repeat} repeats)")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])

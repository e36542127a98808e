#!/usr/bin/env python
"""Speed of rotated_feature_align (R3Det's feature reconstruction, one ``grid_sample`` call for
the five points) against the straightforward formulation measured in the same run: per point,
the four neighbours of every location gathered and weighted (``gather_rotated_feature_align``
of tests/layers/test_rotated_feature_align.py, which also checks that both agree).

Workload: the refinement stage of R3Det R-50-FPN at batch 2 on 1024 px images: P3-P7
(128 x 128 ... 8 x 8) with 256 channels, one refined box per location (sides 16-200 px, any
angle), forward and forward + backward (gradient of the features; R3Det detaches the boxes).
For scale, the same run times the feature refinement module's three convolutions (1 x 5, 5 x 1,
1 x 1 at 256 channels) on the same levels: a fused compiled kernel could at best remove the
alignment's share of the module's time.

    python dev/bench_rotated_feature_align.py [--threads 1] [--repeat 5] [--batch 2] [--size 1024]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from rotated_det.layers import rotated_feature_align  # noqa: E402
from rotated_det.modeling import FeatureRefineModule  # noqa: E402
from tests.layers.test_rotated_feature_align import gather_rotated_feature_align  # noqa: E402

STRIDES = [8, 16, 32, 64, 128]


def timeit(fn, repeat: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def level_inputs(batch: int, size: int, channels: int, gen: torch.Generator):
    """Per level: features ``[N, C, H, W]`` and boxes ``[N, H, W, 5]`` near each location."""
    out = []
    for stride in STRIDES:
        side = size // stride
        feats = torch.randn(batch, channels, side, side, generator=gen)
        ys, xs = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
        ctr = torch.stack([xs, ys], -1).float() * stride
        boxes = torch.cat(
            [
                ctr.expand(batch, side, side, 2) + torch.randn(batch, side, side, 2, generator=gen),
                torch.rand(batch, side, side, 2, generator=gen) * 184 + 16,
                torch.rand(batch, side, side, 1, generator=gen) * 180 - 90,
            ],
            -1,
        )
        out.append((feats, boxes, stride))
    return out


def forward_backward(fn, levels):
    def run():
        total = 0.0
        for feats, boxes, stride in levels:
            f = feats.detach().requires_grad_(True)
            out = fn(f, boxes, 1.0 / stride)
            out.sum().backward()
            total += float(f.grad[0, 0, 0, 0])
        return total

    return run


def forward(fn, levels):
    def run():
        with torch.no_grad():
            return [fn(feats, boxes, 1.0 / stride) for feats, boxes, stride in levels]

    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--channels", type=int, default=256)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    levels = level_inputs(args.batch, args.size, args.channels, gen)
    locations = sum(b.shape[0] * b.shape[1] * b.shape[2] for _, b, _ in levels)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), load average "
        f"{os.getloadavg()[0]:.2f}; batch {args.batch}, {args.size} px, P3-P7, "
        f"{args.channels} channels, {locations} locations, 5 points; median of {args.repeat}"
    )
    # agreement on the workload itself (float32)
    worst = max(
        float(
            (rotated_feature_align(f, b, 1 / s) - gather_rotated_feature_align(f, b, 1 / s))
            .abs()
            .max()
        )
        for f, b, s in levels
    )
    print(f"max |grid_sample - gather| over the levels: {worst:.2e}")

    rows = []
    for name, make in (("forward", forward), ("forward + backward", forward_backward)):
        ours = timeit(make(rotated_feature_align, levels), args.repeat)
        base = timeit(make(gather_rotated_feature_align, levels), args.repeat)
        rows.append((name, ours, base))

    frm = FeatureRefineModule(in_channels=args.channels, strides=STRIDES)

    def convs():
        with torch.no_grad():
            for feats, _, _ in levels:
                frm.conv_5x1(frm.conv_1x5(feats)) + frm.conv_1x1(feats)

    t_convs = timeit(convs, args.repeat)

    print(f"\n{'':22s} {'grid_sample (ours)':>19s} {'gather baseline':>16s} {'speed-up':>9s}")
    for name, ours, base in rows:
        print(f"{name:22s} {ours * 1e3:16.1f} ms {base * 1e3:13.1f} ms {base / ours:8.2f}x")
    fwd = rows[0][1]
    print(
        f"\nFRM convolutions (forward, same levels): {t_convs * 1e3:.1f} ms; the alignment is "
        f"{fwd / (fwd + t_convs) * 100:.0f}% of the module's forward"
    )


if __name__ == "__main__":
    main()

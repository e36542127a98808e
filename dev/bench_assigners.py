#!/usr/bin/env python
"""Benchmark of the dense detectors' target assigners, each next to a per-gt Python loop baseline
measured in the same run.

Scene: a --size px image (1024) with FPN strides 8-128 (21,824 points at 1024 px), and --gts
rotated objects (50 and 500 by default) with centres uniform over the image, sides log-uniform
in [8, 256] px and any angle (DOTA-like; crowded scenes of small vehicles have ~500).

1. RotatedCenterSamplingAssigner (Rotated FCOS: centre sampling radius 1.5, MMRotate's regress
   ranges) on the points, against the per-gt loop ``reference_center_sampling`` of
   tests/modeling/test_assigners.py (one gt at a time over all points, in float32 here).
2. RotatedATSSAssigner (topk 9) on one square anchor per location (side 4 x stride, angle 0:
   MMRotate's rotated ATSS), against the loop ``reference_atss`` (per gt: per-level topk, IoU of
   the candidates with the same compiled op, threshold, centre-inside test).

3. DynamicSoftLabelAssigner (Rotated RTMDet: topk 13, IoU weight 3, centre radius 3) on the
   points, with predictions drawn near the gts (each point predicts its nearest gt jittered,
   logits of 15 classes), against the literal ``_reference`` of
   tests/modeling/test_dynamic_soft_label_assigner.py (the class cost as a [V, G, K] tensor, a
   loop per gt for the dynamic k and per point for conflicts), in float64 as the test runs it.

All pairs of results are compared (they must agree). Times are the best of --repeat runs (the
baselines: of half as many), with --threads torch threads (1 by default). With --device cuda our
assigners run on the GPU and the baselines stay on the CPU.

    .venv/bin/python dev/bench_assigners.py [--size 1024] [--gts 50 500] [--repeat 5]
        [--threads 1] [--device cpu|cuda]
"""

import argparse
import importlib.util
import math
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from rotated_det.modeling.assigners import (  # noqa: E402
    FCOS_REGRESS_RANGES,
    DynamicSoftLabelAssigner,
    RotatedATSSAssigner,
    RotatedCenterSamplingAssigner,
    per_point_strides_and_ranges,
)

STRIDES = [8, 16, 32, 64, 128]


def load_references(test_file: str = "test_assigners.py"):
    """The loop references kept in the tests (imported as a module, not copied)."""
    path = REPO / "tests" / "modeling" / test_file
    spec = importlib.util.spec_from_file_location("_assigner_references", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def scene(size: int, num_gt: int, device: str, seed: int = 0):
    """Points [P, 2], per-level counts, per-point strides and ranges, anchors [P, 5], gts [G, 5]."""
    points, counts = [], []
    for s in STRIDES:
        n = math.ceil(size / s)
        y, x = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        points.append(torch.stack([x.flatten(), y.flatten()], dim=1) * float(s) + s / 2)
        counts.append(n * n)
    pts = torch.cat(points)
    strides, ranges = per_point_strides_and_ranges(counts, STRIDES, FCOS_REGRESS_RANGES)
    side = strides * 4
    anchors = torch.cat([pts, side[:, None], side[:, None], torch.zeros_like(side)[:, None]], 1)
    gen = torch.Generator().manual_seed(seed)
    gts = torch.cat(
        [
            torch.rand(num_gt, 2, generator=gen) * size,
            8.0 * 32.0 ** torch.rand(num_gt, 2, generator=gen),
            torch.rand(num_gt, 1, generator=gen) * 180 - 90,
        ],
        dim=1,
    )
    to = lambda t: t.to(device)  # noqa: E731
    return to(pts), counts, to(strides), to(ranges), to(anchors), to(gts)


def timed(fn, repeat: int, device: str):
    best, out = math.inf, None
    for _ in range(repeat):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench(num_gt: int, args, ref) -> None:
    """Times both assigners and their baselines on one scene and prints two rows."""
    pts, counts, strides, ranges, anchors, gts = scene(args.size, num_gt, args.device)
    fcos = RotatedCenterSamplingAssigner(center_sampling=True, center_sample_radius=1.5)
    atss = RotatedATSSAssigner(topk=9)
    rows = [
        (
            "center_sampl.",
            lambda: fcos(pts, strides, ranges, gts),
            lambda: ref.reference_center_sampling(
                pts.cpu(), strides.cpu(), ranges.cpu(), gts.cpu()
            ),
        ),
        (
            "atss",
            lambda: atss(anchors, counts, gts)[0],
            lambda: ref.reference_atss(anchors.cpu(), counts, gts.cpu())[0],
        ),
    ]
    # RTMDet's assigner: predictions near the gts, as a half-trained detector makes them
    gen = torch.Generator().manual_seed(1)
    pts64, strides64, gts64 = pts.cpu().double(), strides.cpu().double(), gts.cpu().double()
    nearest = torch.cdist(pts64, gts64[:, :2]).argmin(1)
    jitter = torch.randn(len(pts64), 5, generator=gen, dtype=torch.float64)
    preds = gts64[nearest] + jitter * torch.tensor([4.0, 4.0, 6.0, 6.0, 20.0], dtype=torch.float64)
    preds[:, 2:4] = preds[:, 2:4].abs() + 1
    logits = torch.randn(len(pts64), 15, generator=gen, dtype=torch.float64) * 2
    classes = torch.randint(0, 15, (num_gt,), generator=gen)
    dsl = DynamicSoftLabelAssigner(topk=13, iou_weight=3.0, soft_center_radius=3.0)
    dev = args.device
    rows.append(
        (
            "dyn_soft_lbl",
            lambda: dsl(
                pts64.to(dev),
                strides64.to(dev),
                logits.to(dev),
                preds.to(dev),
                gts64.to(dev),
                classes.to(dev),
            )[0],
            lambda: args.dsl_ref._reference(pts64, strides64, logits, preds, gts64, classes)[0],
        )
    )
    for name, ours_fn, loop_fn in rows:
        t_ours, ours = timed(ours_fn, args.repeat, args.device)
        t_loop, base = timed(loop_fn, max(1, args.repeat // 2), "cpu")
        agree = int((ours.cpu() == base).sum())
        print(
            f"{name:<14}{num_gt:>5}{pts.shape[0]:>8}{t_ours * 1e3:>10.1f}{t_loop * 1e3:>10.1f}"
            f"{t_loop / t_ours:>9.1f}x{int((ours >= 0).sum()):>11}  {agree}/{pts.shape[0]}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--gts", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ref = load_references()
    args.dsl_ref = load_references("test_dynamic_soft_label_assigner.py")
    load = os.getloadavg()
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), device {args.device}, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores"
    )
    print(
        f"{'assigner':<14}{'gts':>5}{'points':>8}{'ours ms':>10}{'loop ms':>10}{'speed-up':>10}"
        f"{'positives':>11}  agree"
    )
    for num_gt in args.gts:
        bench(num_gt, args, ref)


if __name__ == "__main__":
    main()

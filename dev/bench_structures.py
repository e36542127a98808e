#!/usr/bin/env python
"""Benchmark of the rotated-box conversions, each next to a baseline measured in the same run.

1. ``poly_to_rbox`` on ``--n`` 4-point polygons (float32 and float64) against a per-polygon
   ``cv2.minAreaRect`` loop over the same points (float32, what OpenCV takes); the areas of the
   two answers are compared. Also in calls of 500 polygons (a label file's worth), where the
   fixed cost per call shows.
2. ``rbox_to_poly`` on ``--n`` boxes against a per-box ``cv2.boxPoints`` loop.
3. ``normalize_rbox_angles(..., "le90")`` on ``--n`` boxes against a straightforward per-box
   Python loop (run on ``--loop-n`` boxes and extrapolated linearly).
4. ``points_to_rbox`` on sets of K = 4, 8, 16, 64 random points (float32; ``min(n / 10,
   2e6 / K^2)`` sets, at least 200) against a per-set ``cv2.minAreaRect`` loop; the areas of the
   two answers are compared.

Polygons: half DOTA-like (noisy rectangles, 10-200 px, any angle, corners in a random order),
half 4 uniformly random points (any order: convex, non-convex, self-intersecting).

    .venv/bin/python dev/bench_structures.py            # 1e6 polygons (about half a minute)
    .venv/bin/python dev/bench_structures.py --quick    # 1e5, smoke test

The baselines run on one core; our functions are timed with 1 torch thread and with torch's
default thread count. (On a machine whose cores are busy with other work, OpenMP's thread
barriers can make the multi-threaded run of many small elementwise ops much slower than one
thread: compare the two lines.)
"""

import argparse
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rotated_det.structures import (  # noqa: E402
    normalize_rbox_angles,
    points_to_rbox,
    poly_to_rbox,
    rbox_to_poly,
)


def make_polygons(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    half = n // 2
    boxes = np.c_[
        rng.uniform(0, 4000, (half, 2)),
        rng.uniform(10, 200, (half, 2)),
        rng.uniform(-180, 180, half),
    ]
    rect = rbox_to_poly(torch.from_numpy(boxes)).numpy().reshape(half, 4, 2)
    rect += rng.normal(scale=1.0, size=rect.shape)  # annotation noise
    perm = np.argsort(rng.random((half, 4)), axis=1)
    rect = np.take_along_axis(rect, perm[..., None], axis=1)
    rand = rng.uniform(0, 4000, (n - half, 4, 2))
    return np.concatenate([rect, rand]).reshape(n, 8).astype(np.float32)


def timed(fn, repeat: int = 3):
    best, out = math.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def cv2_loop(pts: np.ndarray) -> np.ndarray:
    out = np.empty((len(pts), 5), dtype=np.float64)
    for i, p in enumerate(pts):
        (cx, cy), (w, h), a = cv2.minAreaRect(p)
        out[i] = (cx, cy, w, h, a)
    return out


def boxpoints_loop(boxes: np.ndarray) -> np.ndarray:
    out = np.empty((len(boxes), 4, 2), dtype=np.float32)
    for i, (cx, cy, w, h, a) in enumerate(boxes.tolist()):
        out[i] = cv2.boxPoints(((cx, cy), (w, h), -a))  # cv2's angle is clockwise
    return out


def normalize_loop(boxes: np.ndarray) -> list:
    out = []
    for cx, cy, w, h, a in boxes.tolist():
        if w < h:
            w, h, a = h, w, a + 90.0
        while a >= 90.0:
            a -= 180.0
        while a < -90.0:
            a += 180.0
        out.append((cx, cy, w, h, a))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--loop-n", type=int, default=200_000)
    ap.add_argument("--quick", action="store_true", help="n=1e5, loop-n=2e4")
    args = ap.parse_args()
    default_threads = torch.get_num_threads()
    thread_counts = sorted({1, default_threads})
    if args.quick:
        args.n, args.loop_n = 100_000, 20_000
    n = args.n
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cv2 {cv2.__version__}")

    polys = make_polygons(n)
    pts = polys.reshape(n, 4, 2)
    poly_to_rbox(torch.from_numpy(polys[:1000]))  # warm-up

    print(f"\n[poly_to_rbox] {n:,} polygons")
    t_cv, ref = timed(lambda: cv2_loop(pts), repeat=1)
    print(f"  baseline cv2.minAreaRect loop   {t_cv:8.3f} s  ({t_cv / n * 1e6:.2f} us/polygon)")
    for threads in thread_counts:
        torch.set_num_threads(threads)
        for dtype in (torch.float32, torch.float64):
            x = torch.from_numpy(polys).to(dtype)
            t, out = timed(lambda x=x: poly_to_rbox(x))
            area = out[:, 2].double() * out[:, 3].double()
            ref_area = torch.from_numpy(ref[:, 2] * ref[:, 3])
            rel = ((area - ref_area).abs() / ref_area.clamp(min=1.0)).max().item()
            name = f"{str(dtype)[6:]}, {threads} thr"
            print(
                f"  poly_to_rbox {name:18s} {t:8.3f} s  ({t_cv / t:5.1f}x faster)  "
                f"max rel. area diff vs cv2 {rel:.1e}"
            )

    # label-file sized calls: the per-call overhead of ~200 small tensor ops
    torch.set_num_threads(1)
    per_call, calls = 500, max(1, min(n // 500, 400))
    chunks = [torch.from_numpy(polys[i * per_call : (i + 1) * per_call]) for i in range(calls)]
    t, _ = timed(lambda: [poly_to_rbox(c) for c in chunks])
    t_cv_small = t_cv * per_call * calls / n
    print(
        f"  {calls} calls of {per_call} polygons (1 thr)  {t:8.3f} s  "
        f"(cv2 loop on the same polygons ~{t_cv_small:.3f} s: {t_cv_small / t:.1f}x)"
    )
    torch.set_num_threads(default_threads)

    boxes = poly_to_rbox(torch.from_numpy(polys)).numpy()
    print(f"\n[rbox_to_poly] {n:,} boxes")
    t_cv, ref = timed(lambda: boxpoints_loop(boxes), repeat=1)
    print(f"  baseline cv2.boxPoints loop     {t_cv:8.3f} s")
    for threads in thread_counts:
        torch.set_num_threads(threads)
        t, out = timed(lambda: rbox_to_poly(torch.from_numpy(boxes)))
        print(f"  rbox_to_poly float32, {threads} thr      {t:8.3f} s  ({t_cv / t:5.1f}x faster)")
    ours = out.numpy().reshape(n, 4, 1, 2)
    d = np.linalg.norm(ours - ref.reshape(n, 1, 4, 2), axis=-1).min(axis=2).max()
    print(f"  max corner distance to cv2.boxPoints' corners {d:.1e} px")

    m = min(args.loop_n, n)
    wild = boxes.copy()
    wild[:, 4] = np.random.default_rng(1).uniform(-720, 720, n)
    swap = np.random.default_rng(2).random(n) < 0.5
    wild[swap, 2], wild[swap, 3] = boxes[swap, 3], boxes[swap, 2]
    print(f"\n[normalize_rbox_angles le90] {n:,} boxes (loop timed on {m:,}, extrapolated)")
    t_loop, _ = timed(lambda: normalize_loop(wild[:m]), repeat=1)
    t_loop *= n / m
    print(f"  baseline per-box Python loop    {t_loop:8.3f} s")
    for threads in thread_counts:
        torch.set_num_threads(threads)
        t, _ = timed(lambda: normalize_rbox_angles(torch.from_numpy(wild), "le90"))
        print(f"  normalize_rbox_angles, {threads} thr     {t:8.3f} s  ({t_loop / t:5.1f}x faster)")
    torch.set_num_threads(default_threads)

    print("\n[points_to_rbox] K random points per set, float32; times per set")
    rng = np.random.default_rng(3)
    for k in (4, 8, 16, 64):
        m = max(200, min(n // 10, 2_000_000 // (k * k)))
        sets = rng.uniform(0, 1000, (m, k, 2)).astype(np.float32)
        t_cv, ref = timed(lambda sets=sets: cv2_loop(sets), repeat=1)
        ref_area = ref[:, 2] * ref[:, 3]
        row = f"  K={k:2d} ({m:7,} sets)  cv2.minAreaRect loop {t_cv / m * 1e6:6.2f} us"
        for threads in thread_counts:
            torch.set_num_threads(threads)
            t, out = timed(lambda sets=sets: points_to_rbox(sets))
            rel = np.abs(out[:, 2].astype(np.float64) * out[:, 3] - ref_area) / ref_area
            row += f" | ours {threads} thr {t / m * 1e6:7.2f} us ({t_cv / t:5.2f}x)"
        print(f"{row}  max rel. area diff vs cv2 {rel.max():.1e}")
    torch.set_num_threads(default_threads)


if __name__ == "__main__":
    main()

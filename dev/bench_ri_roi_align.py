"""Benchmark of ri_roi_align_rotated (ReDet's rotation-invariant RoIAlign) against baselines
measured in the same run.

Workload (ReDet's RoI extractor on DOTA, MMRotate's config): 512 RoIs, 7x7 bins, sampling ratio 2,
C = 256 channels as 32 regular fields of C8 (8 orientations), on a 2 x 256 x 128 x 128 map (a
stride-8 level of two 1024 px images), RoI sides 16-256 px, any angle.

  ours        the compiled op (forward; forward + backward)
  unfused     the compiled roi_align_rotated followed by the orientation alignment in torch
              (gather of the two neighbouring orientations + lerp): what the op replaces
  pure torch  roi_align_rotated written with grid_sample (rotated_det.export's formulation)
              followed by the same torch orientation alignment: no compiled code at all

Usage: python dev/bench_ri_roi_align.py [--repeat N] [--threads N] [--rois K]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from rotated_det.export.roi_align_rotated_grid import roi_align_rotated_grid  # noqa: E402
from rotated_det.layers import ri_roi_align_rotated, roi_align_rotated  # noqa: E402

NUM_ORIENTATIONS = 8
SCALE = 1 / 8


def timeit(fn, repeat, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def align_orientations_torch(pooled, angles, n):
    """pooled [K, C, ph, pw] (C = fields * n), angles [K] degrees counter-clockwise ->
    out[:, f * n + o] = lerp(v[f * n + (o + i) % n], v[f * n + (o + i + 1) % n], frac)."""
    k, c, ph, pw = pooled.shape
    t = torch.remainder(angles * (n / 360.0), n)
    first = t.floor()
    frac = (t - first).to(pooled.dtype)[:, None, None, None, None]
    o = torch.arange(n, device=pooled.device)
    j0 = (o[None, :] + first.long()[:, None]) % n  # [K, n]
    j1 = (j0 + 1) % n
    v = pooled.reshape(k, c // n, n, ph, pw)

    def take(j):
        return torch.gather(v, 2, j[:, None, :, None, None].expand(k, c // n, n, ph, pw))

    a0 = take(j0)
    return (a0 + frac * (take(j1) - a0)).reshape(k, c, ph, pw)


def make_workload(num_rois, gen):
    feat = torch.randn(2, 32 * NUM_ORIENTATIONS, 128, 128, generator=gen)
    boxes = torch.cat(
        [
            torch.rand(num_rois, 2, generator=gen) * 1024,
            torch.rand(num_rois, 2, generator=gen) * 240 + 16,
            torch.rand(num_rois, 1, generator=gen) * 360 - 180,
        ],
        1,
    )
    bidx = torch.randint(0, 2, (num_rois, 1), generator=gen).float()
    return feat, torch.cat([bidx, boxes], 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs (min taken)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--rois", type=int, default=512, help="number of RoIs (default: 512)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"ri_roi_align_rotated benchmark: torch {torch.__version__}, {torch.get_num_threads()} "
        f"threads, best of {args.repeat} runs, load average {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} CPUs"
    )
    feat, rois = make_workload(args.rois, torch.Generator().manual_seed(0))
    n = NUM_ORIENTATIONS
    print(
        f"{args.rois} RoIs, 7x7, sampling 2, {tuple(feat.shape)} map ({feat.shape[1] // n} "
        f"fields x {n} orientations), spatial_scale 1/8"
    )

    variants = {
        "ours (compiled ri_roi_align_rotated)": lambda x: ri_roi_align_rotated(
            x, rois, 7, SCALE, 2, n
        ),
        "unfused (compiled RoIAlign + torch shift)": lambda x: align_orientations_torch(
            roi_align_rotated(x, rois, 7, SCALE, 2), rois[:, 5], n
        ),
        "pure torch (grid_sample + torch shift)": lambda x: align_orientations_torch(
            roi_align_rotated_grid(x, rois, SCALE, 7, 7, 2), rois[:, 5], n
        ),
    }
    ref = variants["ours (compiled ri_roi_align_rotated)"](feat)
    print(f"  {'variant':<44} {'forward':>10} {'fwd+bwd':>10}  max |diff| vs ours")
    variants["(plain roi_align_rotated: spatial part only)"] = lambda x: roi_align_rotated(
        x, rois, 7, SCALE, 2
    )
    for name, fn in variants.items():
        err = (fn(feat) - ref).abs().max().item() if name[0] != "(" else float("nan")
        t_fwd = timeit(lambda fn=fn: fn(feat), args.repeat)
        x = feat.clone().requires_grad_()

        def fwd_bwd(fn=fn, x=x):
            fn(x).sum().backward()
            x.grad = None

        t_fb = timeit(fwd_bwd, args.repeat)
        print(f"  {name:<44} {t_fwd * 1e3:8.1f} ms {t_fb * 1e3:8.1f} ms  {err:.1e}", flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

"""Benchmark of S2A-Net's operators against a plain convolution of the same size, measured in the
same run.

* Alignment convolution (AlignConv: offsets from one rotated anchor per location), forward and
  forward + backward, with torchvision's ``deform_conv2d`` kernel and with the grid_sample
  formulation (rotated_det.layers.deform_conv_grid: AlignConv's default off CUDA, and what ONNX
  export uses), vs ``F.conv2d`` with the same channels and kernel.
* Active rotating filters (ORConv2d, C / 8 filters x 8 orientations, the filter bank gathered on
  every call) vs ``F.conv2d`` with the same output channels; the gather alone is timed too (a
  compiled op could only save that part).

Shapes: S2A-Net's head at P3 of a 1024 px DOTA patch (256 channels, 128 x 128) and of the
synthetic quickstart's 320 px crops (64 channels, 40 x 40), batch 2.
Usage: python dev/bench_align_conv.py [--quick] [--repeat N] [--threads N]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from rotated_det.layers import AlignConv, ORConv2d, align_conv_offsets  # noqa: E402


def timeit(fn, repeat, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def anchors_for(n, h, w, stride, gen):
    """Refined-anchor-like boxes: centres near each location, sides 1-8 strides, any angle."""
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    centres = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1).float() * stride
    centres = centres + (torch.rand(n, h * w, 2, generator=gen) - 0.5) * stride
    sides = (torch.rand(n, h * w, 2, generator=gen) * 7 + 1) * stride
    angles = torch.rand(n, h * w, 1, generator=gen) * 180 - 45
    return torch.cat([centres, sides, angles], dim=2)


def run_case(name, n, c, h, w, stride, repeat, gen):
    x = torch.randn(n, c, h, w, generator=gen, requires_grad=True)
    anchors = anchors_for(n, h, w, stride, gen)
    align = AlignConv(c, c, 3, implementation="deform_conv2d")
    align_grid = AlignConv(c, c, 3, implementation="grid_sample")
    align_grid.weight = align.weight
    weight = align.weight

    def plain():
        return F.conv2d(x, weight, padding=1)

    def aligned():
        return align(x, anchors, stride)

    def grid():
        return align_grid(x, anchors, stride)

    def backward(fn):
        def run():
            fn().sum().backward()

        return run

    print(f"\n{name}: x [{n}, {c}, {h}, {w}], stride {stride}, 3x3, {c} -> {c} channels")
    print(f"{'':38s}{'forward ms':>12s}{'fwd+bwd ms':>12s}")
    rows = [
        ("plain conv2d (baseline)", plain),
        ("AlignConv, torchvision deform_conv2d", aligned),
        ("AlignConv, grid_sample (CPU default)", grid),
    ]
    base = None
    for label, fn in rows:
        with torch.no_grad():
            fwd = timeit(fn, repeat)
        both = timeit(backward(fn), repeat)
        base = base or (fwd, both)
        print(
            f"{label:38s}{fwd * 1e3:12.2f}{both * 1e3:12.2f}   "
            f"x{fwd / base[0]:.1f} / x{both / base[1]:.1f} the plain conv"
        )
    with torch.no_grad():
        off_ms = timeit(lambda: align_conv_offsets(anchors, h, w, stride, 3), repeat)
    print(f"{'  of which the offsets':38s}{off_ms * 1e3:12.2f}")

    orc = ORConv2d(c, c // 8, 3, num_orientations=8)
    x.grad = None

    def or_conv():
        return orc(x)

    print(f"{'':38s}{'forward ms':>12s}{'fwd+bwd ms':>12s}")
    plain_out = torch.randn(c, c, 3, 3, requires_grad=True)
    base = None
    for label, fn in [
        (f"plain conv2d, {c} out (baseline)", lambda: F.conv2d(x, plain_out, padding=1)),
        (f"ORConv2d, {c // 8} filters x 8", or_conv),
    ]:
        with torch.no_grad():
            fwd = timeit(fn, repeat)
        both = timeit(backward(fn), repeat)
        base = base or (fwd, both)
        print(
            f"{label:38s}{fwd * 1e3:12.2f}{both * 1e3:12.2f}   "
            f"x{fwd / base[0]:.2f} / x{both / base[1]:.2f} the plain conv"
        )
    with torch.no_grad():
        gather = timeit(orc.rotated_weight, repeat)
    print(f"{'  of which the filter gather':38s}{gather * 1e3:12.3f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="only the quickstart-sized case")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} thread(s), load {os.getloadavg()[0]:.2f}")
    run_case("quickstart P3 (320 px crop)", 2, 64, 40, 40, 8.0, args.repeat, gen)
    if not args.quick:
        run_case("DOTA P3 (1024 px patch)", 2, 256, 128, 128, 8.0, args.repeat, gen)


if __name__ == "__main__":
    main()

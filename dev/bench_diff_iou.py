"""Benchmark of the differentiable rotated IoU (rotated_det.layers.diff_iou_rotated).

For N = 1k, 10k, 100k aligned pairs (centres over 1000 x 1000 px, sides 10-100 px, any angle,
the second box a perturbed copy of the first so that ~95% of the pairs overlap), times in one run:
  * diff_iou_rotated forward, and forward + backward (``iou.sum().backward()``);
  * (a) the compiled ``box_iou_rotated(aligned=True)`` forward: the lower bound of a compiled op
    with its own backward kernel (whose forward + backward would cost more than this);
  * (b) a straightforward torch version: a Python loop over the pairs, each clipped with
    Sutherland-Hodgman on torch scalars (autograd gives its backward), timed once on
    ``--loop-pairs`` pairs and scaled to N (its cost per pair does not depend on N);
  * diff_enclosing_area_rotated forward (the GIoU's extra cost), for reference.
It prints the ratio of diff_iou_rotated's forward + backward to the compiled forward (the issue's
"compiled op with its own backward, or vectorised torch if it is as fast") and checks that the
three agree (max |IoU difference|).

Usage: python dev/bench_diff_iou.py [--quick] [--repeat N] [--threads N] [--device cpu|cuda]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from rotated_det.layers import (  # noqa: E402
    box_iou_rotated,
    diff_enclosing_area_rotated,
    diff_iou_rotated,
)


def random_pairs(n, gen, device):
    b1 = torch.cat(
        [
            torch.rand(n, 2, generator=gen) * 1000,
            torch.rand(n, 2, generator=gen) * 90 + 10,
            torch.rand(n, 1, generator=gen) * 360 - 180,
        ],
        1,
    )
    b2 = b1.clone()
    b2[:, :2] += (torch.rand(n, 2, generator=gen) - 0.5) * b1[:, 2:4]
    b2[:, 2:4] *= torch.rand(n, 2, generator=gen) + 0.5
    b2[:, 4] += (torch.rand(n, generator=gen) - 0.5) * 90
    return b1.to(device), b2.to(device)


def timeit(fn, repeat, sync):
    fn()
    sync()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


# --- (b) the straightforward version: one pair at a time, Sutherland-Hodgman on torch scalars --


def _corners(box):
    """4 corners (list of [2] tensors) of one (cx, cy, w, h, angle_deg) box, in order."""
    t = torch.deg2rad(box[4])
    c, s = torch.cos(t), torch.sin(t)
    u = torch.stack([box[2] / 2 * c, -box[2] / 2 * s])
    v = torch.stack([box[3] / 2 * s, box[3] / 2 * c])
    ctr = box[:2]
    return [ctr + u + v, ctr - u + v, ctr - u - v, ctr + u - v]


def _cross(o, a, b):
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _shoelace(poly):
    twice = sum(p[0] * q[1] - p[1] * q[0] for p, q in zip(poly, poly[1:] + poly[:1]))
    return 0.5 * torch.abs(twice)


def loop_iou(boxes1, boxes2):
    """``[N]`` IoU, one pair at a time: box 1 clipped by the 4 half-planes of box 2."""
    out = []
    for b1, b2 in zip(boxes1, boxes2):
        poly = _corners(b1)
        clip = _corners(b2)
        orient = 1.0 if float(_cross(clip[0], clip[1], clip[2]).detach()) > 0 else -1.0
        for a, b in zip(clip, clip[1:] + clip[:1]):
            if not poly:
                break
            new = []
            for p, q in zip(poly, poly[1:] + poly[:1]):
                dp, dq = orient * _cross(a, b, p), orient * _cross(a, b, q)
                if dp >= 0:
                    new.append(p)
                if (dp >= 0) != (dq >= 0):
                    new.append(p + (q - p) * (dp / (dp - dq)))
            poly = new
        inter = _shoelace(poly) if len(poly) >= 3 else b1.sum() * 0
        union = b1[2] * b1[3] + b2[2] * b2[3] - inter
        out.append(inter / union)
    return torch.stack(out)


def loop_per_pair(b1, b2, repeat):
    """Seconds per pair of the loop version, forward and forward + backward (on the CPU)."""
    l1, l2 = b1.cpu().clone().requires_grad_(), b2.cpu().clone().requires_grad_()
    t_fwd = timeit(lambda: loop_iou(l1.detach(), l2.detach()), repeat, lambda: None)
    t_fb = timeit(lambda: loop_iou(l1, l2).sum().backward(), repeat, lambda: None)
    return t_fwd / len(b1), t_fb / len(b1)


def bench_size(n, b1, b2, args, sync, loop):
    """Times the variants on the pairs ``b1``, ``b2`` ([n, 5]); ``loop``: the loop version's
    (forward, forward + backward) seconds per pair. Returns a table row and a note."""
    x1, x2 = b1.clone().requires_grad_(), b2.clone().requires_grad_()

    def fwd_bwd():
        diff_iou_rotated(x1, x2).sum().backward()

    t_comp = timeit(lambda: box_iou_rotated(b1, b2, aligned=True), args.repeat, sync)
    t_fwd = timeit(lambda: diff_iou_rotated(b1, b2), args.repeat, sync)
    t_fb = timeit(fwd_bwd, args.repeat, sync)
    t_enc = timeit(lambda: diff_enclosing_area_rotated(b1, b2), args.repeat, sync)
    t_loop, t_loop_fb = loop[0] * n, loop[1] * n
    ref = box_iou_rotated(b1, b2, aligned=True)
    err = (diff_iou_rotated(b1, b2) - ref).abs().max().item()
    m = min(args.loop_pairs, n)
    err_loop = (loop_iou(b1[:m].cpu(), b2[:m].cpu()) - ref[:m].cpu()).abs().max().item()
    note = (
        f"N={n}: max |diff - compiled| = {err:.1e}, max |loop - compiled| = {err_loop:.1e} "
        f"(float32 in image coordinates), {(ref > 0).float().mean().item():.0%} of pairs overlap"
    )
    row = (
        f"{n:>7} | {t_comp * 1e3:>9.2f} ms | {t_fwd * 1e3:>6.1f} ms | {t_fb * 1e3:>6.1f} ms | "
        f"{t_fb / t_comp:>11.1f}x | {t_loop:>7.2f} s | {t_loop_fb:>7.2f} s | "
        f"{t_loop_fb / t_fb:>12.0f}x | {t_enc * 1e3:>6.1f} ms"
    )
    return row, note


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 1k and 10k only")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--loop-pairs", type=int, default=100)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"load average {load:.2f}, best of {args.repeat}, float32"
    )
    gen = torch.Generator().manual_seed(0)
    header = (
        f"{'N':>7} | {'compiled fwd':>12} | {'diff fwd':>9} | {'diff f+b':>9} | "
        f"{'f+b/compiled':>12} | {'loop fwd*':>9} | {'loop f+b*':>9} | {'loop/diff f+b':>13} | "
        f"{'enclosing':>9}"
    )
    print(header)
    print("-" * len(header))
    loop = loop_per_pair(*random_pairs(args.loop_pairs, gen, "cpu"), args.repeat)
    notes = []
    for n in sizes:
        row, note = bench_size(n, *random_pairs(n, gen, device), args, sync, loop)
        print(row)
        notes.append(note)
    print(f"* loop timed on {args.loop_pairs} pairs (CPU), best of {args.repeat}, scaled to N")
    for line in notes:
        print(line)


if __name__ == "__main__":
    main()

"""Box coders of the two-stage heads: encode (get_deltas) and decode (apply_deltas) of N boxes.

Rows (each also printed as a multiple of the baseline, measured in the same run):
  * baseline: Box2BoxTransformRotated (le90, edge swap), the rotated RoI heads' coder;
  * MidpointOffsetCoder (Oriented R-CNN's RPN);
  * GlidingVertexCoder (Gliding Vertex's head): its decode builds the glided quadrilateral and
    takes the minimum-area rectangle (structures.poly_to_rbox) of each.
RoI Transformer's RRoI learner uses Box2BoxTransformRotated on angle-0 boxes: the baseline row.
Each figure is the median of --repeat timed runs after one warm-up, in milliseconds.

Usage: python dev/bench_box_coders.py [--n 2000 20000] [--threads 1] [--repeat 7]
"""

import argparse
import os
import statistics
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from rotated_det.modeling import (  # noqa: E402
    Box2BoxTransformRotated,
    GlidingVertexCoder,
    MidpointOffsetCoder,
)
from rotated_det.structures import hbox_to_rbox, rbox_to_hbox  # noqa: E402


def _time(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def _boxes(n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    centre = torch.rand(n, 2, generator=g) * 1000
    w = 10 + torch.rand(n, generator=g) * 200
    h = w * (0.2 + 0.8 * torch.rand(n, generator=g))
    a = torch.rand(n, generator=g) * 180 - 90
    return torch.cat([centre, w[:, None], h[:, None], a[:, None]], dim=1)


def bench(n: int, repeat: int) -> list[tuple[str, float, float]]:
    targets = _boxes(n)
    hboxes = rbox_to_hbox(targets) * 1.1
    coders = [
        (
            "baseline Box2BoxTransformRotated",
            Box2BoxTransformRotated(
                (10.0, 10.0, 5.0, 5.0, 10.0), angle_version="le90", edge_swap=True
            ),
            hbox_to_rbox(hboxes),
        ),
        ("MidpointOffsetCoder", MidpointOffsetCoder(), hboxes),
        ("GlidingVertexCoder", GlidingVertexCoder(), hboxes),
    ]
    rows = []
    for name, coder, src in coders:
        deltas = coder.get_deltas(src, targets)
        encode = _time(lambda c=coder, s=src: c.get_deltas(s, targets), repeat)
        decode = _time(lambda c=coder, s=src, d=deltas: c.apply_deltas(d, s), repeat)
        rows.append((name, encode, decode))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads {args.threads}, load average {os.getloadavg()[0]:.2f}")
    for n in args.n:
        rows = bench(n, args.repeat)
        base_enc, base_dec = rows[0][1], rows[0][2]
        print(f"\nN = {n}: milliseconds (x baseline)")
        print(f"{'coder':36s} {'encode':>16s} {'decode':>16s}")
        for name, enc, dec in rows:
            enc_x, dec_x = enc / base_enc, dec / base_dec
            print(f"{name:36s} {enc:8.2f} ({enc_x:4.1f}x) {dec:8.2f} ({dec_x:4.1f}x)")


if __name__ == "__main__":
    main()

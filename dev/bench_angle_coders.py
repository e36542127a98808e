"""Angle coders: encode, decode, loss (forward and forward + backward) at N angles.

Rows:
  * baseline: plain regression written inline in torch (radians in and out, no wrapping, L1),
    what a head without a coder does; every other row is also printed as a multiple of it.
  * RegressionAngleCoder, CSLCoder (MMRotate's default omega 1 / radius 6 and its DOTA setting
    omega 4 / radius 3, gaussian; a rect window), PSCCoder (dual and single frequency).
Each figure is the median of --repeat timed runs after one warm-up, in milliseconds.

Usage: python dev/bench_angle_coders.py [--n 100000] [--threads 1] [--repeat 7] [--device cpu]
"""

import argparse
import math
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


class InlineRegression:
    """The baseline: no coder object, no range wrapping."""

    encode_size = 1

    def encode(self, angles):
        return (angles * (math.pi / 180.0)).unsqueeze(1)

    def decode(self, pred):
        return pred[:, 0] * (180.0 / math.pi)

    def loss(self, pred, angles):
        return (pred[:, 0] - angles * (math.pi / 180.0)).abs()


def _time(fn, repeat: int, sync) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="angles per call")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import torch

    from rotated_det.modeling.angle_coders import CSLCoder, PSCCoder, RegressionAngleCoder

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    g = torch.Generator().manual_seed(0)
    angles = (torch.rand(args.n, generator=g) * 180.0 - 90.0).to(device)

    coders = {
        "baseline (inline regression)": InlineRegression(),
        "RegressionAngleCoder": RegressionAngleCoder(),
        "CSL gaussian omega 1 r 6 (180 ch)": CSLCoder(),
        "CSL gaussian omega 4 r 3 (45 ch)": CSLCoder(omega=4, radius=3),
        "CSL rect omega 1 r 6 (180 ch)": CSLCoder(window="rect"),
        "PSC dual 3-step (6 ch)": PSCCoder(),
        "PSC single 3-step (3 ch)": PSCCoder(dual_freq=False),
    }
    print(
        f"N={args.n} device={device} threads={args.threads} torch={torch.__version__} "
        f"load={os.getloadavg()[0]:.2f}"
    )
    header = f"{'coder':36s} {'encode':>14s} {'decode':>14s} {'loss':>14s} {'loss+backward':>16s}"
    print(header)
    print("-" * len(header))
    base = None
    for name, coder in coders.items():
        pred = torch.randn(args.n, coder.encode_size, generator=g).to(device)
        leaf = pred.clone().requires_grad_(True)

        def loss_backward(coder=coder, leaf=leaf):
            leaf.grad = None
            coder.loss(leaf, angles).sum().backward()

        with torch.no_grad():
            row = [
                _time(lambda c=coder: c.encode(angles), args.repeat, sync),
                _time(lambda c=coder, p=pred: c.decode(p), args.repeat, sync),
                _time(lambda c=coder, p=pred: c.loss(p, angles), args.repeat, sync),
            ]
        row.append(_time(loss_backward, args.repeat, sync))
        if base is None:
            base = row
        cells = [f"{t:7.2f} ({t / b:4.1f}x)" for t, b in zip(row, base)]
        print(f"{name:36s} {cells[0]:>14s} {cells[1]:>14s} {cells[2]:>14s} {cells[3]:>16s}")
    print("ms, median of", args.repeat, "runs; (Nx) = multiple of the baseline row")


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Does the angle coder matter? A small CNN learns the angle of one near-square rectangle whose
angle is near the +-90 degree boundary of le90, with each angle coder's head and loss, for the
same number of iterations; the mean angle error on held-out images is printed per coder and seed.

    python dev/angle_coder_experiment.py [--seeds 0 1 2] [--iters 300]

The images (32 x 32 grey, one filled rectangle, long side 14-20 px, aspect 1.1-1.4, angle in
[60, 120) degrees so that half the targets sit just inside +90 and half just inside -90 in le90)
are exactly the cases where plain regression is torn between two targets for nearly the same
picture. The error is the orientation error modulo 180 degrees, in degrees.
tests/modeling/test_angle_coders_matter.py runs a short version and asserts the ordering.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch
from torch import nn

from rotated_det.modeling import AngleCoder, CSLCoder, PSCCoder, RegressionAngleCoder
from rotated_det.structures import rbox_to_poly

SIZE = 32


def make_coders() -> dict[str, AngleCoder]:
    """The coders compared, in the settings of MMRotate's configs."""
    return {
        "regression": RegressionAngleCoder("le90"),
        "csl": CSLCoder("le90", omega=4, window="gaussian", radius=3),
        "psc": PSCCoder("le90", num_step=3, dual_freq=True),
    }


def make_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images ``[n, 1, 32, 32]`` (values in [0, 1]) and their angles ``[n]`` (degrees,
    le90)."""
    rng = np.random.default_rng(seed)
    long_side = rng.uniform(14, 20, n)
    aspect = rng.uniform(1.1, 1.4, n)
    angle = rng.uniform(60, 120, n)
    centre = SIZE / 2 + rng.uniform(-2, 2, (n, 2))
    boxes = np.stack([centre[:, 0], centre[:, 1], long_side, long_side / aspect, angle], axis=1)
    polys = rbox_to_poly(boxes).reshape(n, 4, 2)
    images = np.empty((n, 1, SIZE, SIZE), dtype=np.float32)
    for i in range(n):
        img = rng.normal(0.3, 0.05, (SIZE, SIZE)).astype(np.float32)
        pts = np.round(polys[i] * 16).astype(np.int32)
        cv2.fillPoly(img, [pts], 0.9, lineType=cv2.LINE_AA, shift=4)
        images[i, 0] = img
    le90 = (angle + 90) % 180 - 90
    return torch.from_numpy(images), torch.from_numpy(le90).float()


def make_net(out_channels: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, 2, 1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, 2, 1),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, 2, 1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(64 * 4 * 4, 128),
        nn.ReLU(),
        nn.Linear(128, out_channels),
    )


def orientation_error(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Absolute difference of two orientations modulo 180 degrees, in [0, 90]."""
    d = torch.remainder(pred - true, 180.0)
    return torch.minimum(d, 180.0 - d)


def train_and_evaluate(coder: AngleCoder, seed: int, iters: int, batch: int = 64) -> float:
    """Mean orientation error (degrees) on 512 held-out images after ``iters`` Adam steps."""
    torch.manual_seed(seed)
    train_x, train_a = make_images(iters * batch, seed)
    test_x, test_a = make_images(512, 10_000 + seed)
    net = make_net(coder.encode_size)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    for it in range(iters):
        x = train_x[it * batch : (it + 1) * batch]
        a = train_a[it * batch : (it + 1) * batch]
        loss = coder.loss(net(x), a).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = coder.decode(net(test_x))
    return orientation_error(pred, test_a).mean().item()


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--iters", type=int, default=300)
    args = p.parse_args(argv)
    results: dict[str, list[float]] = {}
    for name, coder in make_coders().items():
        t0 = time.perf_counter()
        results[name] = [train_and_evaluate(coder, s, args.iters) for s in args.seeds]
        errs = ", ".join(f"{e:.1f}" for e in results[name])
        print(
            f"{name:>10}: mean orientation error {np.mean(results[name]):5.1f} deg "
            f"(seeds {args.seeds}: {errs}), {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
    return results


if __name__ == "__main__":
    main()

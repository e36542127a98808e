#!/usr/bin/env python
"""Benchmark test-time augmentation's own cost (not the model's), next to baselines in one run.

    python dev/bench_tta.py [--threads 1] [--repeat 5]

1. Merging: ``weighted_box_fusion_rotated`` against ``batched_nms_rotated`` (the baseline: what
   NMS merging costs) on the detections of 8 views x D detections, 15 classes, jittered copies of
   D objects in a 1024 px image, for D = 100 and 2000.
2. The wrapper: ``RotatedDetectorWithTTA`` with the 8 views of the square (both flips x four
   rotations) around a stand-in model that returns D fixed detections at no cost, against the
   baseline of 8 calls of that model on the same image (what TTA costs at least); the
   difference is TTA's overhead: cutting views (numpy), mapping boxes back, merging. 1024 x 1024
   uint8 image.

Median of ``--repeat`` runs after one warm-up, in milliseconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from rotated_det.engine import RotatedDetectorWithTTA  # noqa: E402
from rotated_det.layers import batched_nms_rotated, weighted_box_fusion_rotated  # noqa: E402
from rotated_det.structures import Instances, RotatedBoxes  # noqa: E402

VIEWS = 8
SIZE = 1024


def _median_ms(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def _objects(n: int, gen: torch.Generator) -> torch.Tensor:
    lo = torch.tensor([0.0, 0.0, 10.0, 6.0, -90.0])
    span = torch.tensor([SIZE, SIZE, 50.0, 24.0, 180.0])
    return lo + span * torch.rand(n, 5, generator=gen)


def _view_detections(d: int, gen: torch.Generator):
    objects = _objects(d, gen)
    boxes = objects.repeat(VIEWS, 1) + torch.randn(VIEWS * d, 5, generator=gen) * torch.tensor(
        [1.0, 1.0, 1.0, 1.0, 3.0]
    )
    boxes[:, 2:4] = boxes[:, 2:4].clamp(min=2.0)
    scores = torch.rand(VIEWS * d, generator=gen)
    classes = torch.randint(0, 15, (d,), generator=gen).repeat(VIEWS)
    return boxes, scores, classes


class FixedDetector(nn.Module):
    """Returns the same ``[D, 5]`` detections for every image, at no cost."""

    def __init__(self, boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor):
        super().__init__()
        self.boxes, self.scores, self.classes = boxes, scores, classes

    def forward(self, batched_inputs):
        out = []
        for x in batched_inputs:
            h, w = x["image"].shape[1:]
            inst = Instances((h, w))
            inst.pred_boxes = RotatedBoxes(self.boxes.clone())
            inst.scores = self.scores
            inst.pred_classes = self.classes
            out.append({"instances": inst})
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    print(f"torch threads: {torch.get_num_threads()}, load average: {os.getloadavg()[0]:.2f}")

    print(f"\n1. merging {VIEWS} views x D detections (ms)")
    print(f"{'D':>6} {'boxes':>7} {'NMS (baseline)':>15} {'WBF':>8}")
    for d in (100, 2000):
        b, s, c = _view_detections(d, gen)
        nms = _median_ms(lambda b=b, s=s, c=c: batched_nms_rotated(b, s, c, 0.5), args.repeat)
        wbf = _median_ms(
            lambda b=b, s=s, c=c: weighted_box_fusion_rotated(b, s, c, 0.5, VIEWS), args.repeat
        )
        print(f"{d:>6} {len(b):>7} {nms:>15.2f} {wbf:>8.2f}")

    print(f"\n2. TTA wrapper, {VIEWS} views of a {SIZE} x {SIZE} image, stand-in model (ms)")
    print(f"{'D':>6} {'8 model calls (baseline)':>25} {'TTA nms':>8} {'TTA wbf':>8}")
    image = torch.randint(0, 256, (3, SIZE, SIZE), dtype=torch.uint8)
    for d in (100, 2000):
        b = _objects(d, gen)
        model = FixedDetector(b, torch.rand(d, generator=gen), torch.randint(0, 15, (d,)))
        plain = _median_ms(
            lambda m=model: [m([{"image": image}]) for _ in range(VIEWS)], args.repeat
        )
        row = [f"{d:>6} {plain:>25.2f}"]
        for merge in ("nms", "wbf"):
            tta = RotatedDetectorWithTTA(
                model, hflip=True, vflip=True, rot90=(0, 90, 180, 270), merge=merge
            ).eval()
            assert len(tta.views) == VIEWS
            ms = _median_ms(lambda t=tta: t([{"image": image}]), args.repeat)
            row.append(f"{ms:>8.2f}")
        print(" ".join(row))


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""mAP of a trained two-stage detector with each proposal NMS that the ONNX export can use.

ONNX has no rotated-IoU NMS, so ``export_onnx`` replaces the RPN's rotated NMS by NMS of the
proposals' horizontal bounding boxes (ONNX NonMaxSuppression, ``proposal_nms="horizontal"``) or
by no NMS (``"topk"``). This script evaluates a trained checkpoint on its config's test set with
each choice (in PyTorch, through ``StandardOpsMode``; the final NMS and RoIAlign stay the compiled
ops, so only the proposal NMS differs), and once more with the RoIAlign of the ONNX graph too.

    python dev/onnx_proposal_nms_map.py --config-file output/quickstart/train/config.yaml \
        --weights output/quickstart/train/model_final.pth [--threads 1]

Prints one row per variant: mAP50, mAP75, detections per image, seconds.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rotated_det.config import LazyConfig, instantiate  # noqa: E402
from rotated_det.engine import DefaultTrainer  # noqa: E402
from rotated_det.engine.model_ema import load_inference_weights  # noqa: E402
from rotated_det.evaluation import inference_on_dataset  # noqa: E402
from rotated_det.export.standard_ops import StandardOpsMode  # noqa: E402

VARIANTS = [
    ("rotated (the model's own)", "rotated", False),
    ("horizontal (ONNX NonMaxSuppression)", "horizontal", False),
    ("topk (no proposal NMS)", "topk", False),
    ("horizontal + grid_sample RoIAlign", "horizontal", True),
]


class _WithMode(torch.nn.Module):
    """Runs the model inside a StandardOpsMode (the evaluator outside it)."""

    def __init__(self, model: torch.nn.Module, mode: StandardOpsMode):
        super().__init__()
        self.model = model
        self.mode = mode

    def forward(self, batched_inputs):
        with self.mode:
            return self.model(batched_inputs)


class _CountingEvaluator:
    """Wraps an evaluator and counts the detections it receives."""

    def __init__(self, inner):
        self.inner = inner
        self.detections = 0
        self.images = 0

    def reset(self):
        self.detections = self.images = 0
        self.inner.reset()

    def process(self, inputs, outputs):
        for out in outputs:
            self.detections += len(out["instances"])
            self.images += 1
        self.inner.process(inputs, outputs)

    def evaluate(self):
        return self.inner.evaluate()


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config-file", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    cfg = LazyConfig.apply_overrides(LazyConfig.load(args.config_file), args.opts)
    cfg.train.device = "cpu"
    model = DefaultTrainer.build_model(cfg).eval()
    load_inference_weights(model, args.weights, use_ema=False)
    stage = getattr(model, "proposal_generator", None)
    if stage is None:
        raise SystemExit(f"{type(model).__name__} has no proposal_generator: not a two-stage model")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg.dataloader.evaluator.output_dir = tmp
        for label, choice, grid in VARIANTS:
            loader = instantiate(cfg.dataloader.test)
            evaluator = _CountingEvaluator(instantiate(cfg.dataloader.evaluator))
            mode = StandardOpsMode(stage, choice, defer_final_nms=False, standard_roi_align=grid)
            t0 = time.perf_counter()
            with torch.no_grad():
                results = inference_on_dataset(_WithMode(model, mode).eval(), loader, evaluator)
            seconds = time.perf_counter() - t0
            rbox = results.get("rbox", results)
            rows.append(
                {
                    "variant": label,
                    "mAP50": float(rbox.get("AP50", float("nan"))),
                    "mAP75": float(rbox.get("AP75", float("nan"))),
                    "detections_per_image": evaluator.detections / max(evaluator.images, 1),
                    "seconds": seconds,
                }
            )
    load = os.getloadavg()[0]
    print(f"\n{args.config_file} ({type(model).__name__}), load average {load:.2f}")
    print(f"| {'proposal NMS':38s} | mAP50 | mAP75 | detections / image | seconds |")
    print(f"| {'-' * 38} | ----- | ----- | ------------------ | ------- |")
    for r in rows:
        print(
            f"| {r['variant']:38s} | {r['mAP50']:5.2f} | {r['mAP75']:5.2f} | "
            f"{r['detections_per_image']:18.1f} | {r['seconds']:7.1f} |"
        )
    return rows


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Analyze a model: FLOPs, parameters, structure.

    python tools/analyze_model.py --config-file C --tasks flop parameter structure \
        [--sample-image IMG | --input-size H W] [--num-inputs N] [key=value overrides ...]

flop: fvcore's FlopCountAnalysis (one fused multiply-add = one flop, fvcore's convention) on the
    model in inference mode, per module. The compiled rotated ops are handled explicitly:
    ``roi_align_rotated_forward`` is counted (4 multiply-adds per bilinear sample, sampling_ratio^2
    samples per output element; adaptive sampling counted as 2 x 2), the data-dependent ones
    (NMS, rotated IoU) are listed as uncounted with their number of calls.
parameter: fvcore's parameter count table.
structure: the module tree (``print(model)``).

Inputs: ``--sample-image`` (resized like DefaultPredictor does) or a random image of
``--input-size`` (default 1024 x 1024). FLOPs of detectors depend on the image size and, after
the proposal stage, on the number of boxes.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections import Counter

import cv2
import numpy as np
import torch
from fvcore.nn import FlopCountAnalysis, flop_count_table, parameter_count_table

from rotated_det.config import LazyConfig
from rotated_det.engine.predictor import DefaultPredictor
from rotated_det.export.tracing_adapter import _inference_copy

logger = logging.getLogger("rotated_det.analyze_model")

# Compiled ops whose cost depends on the data (number of boxes kept, overlaps): not counted.
UNCOUNTED_ROTATED_OPS = (
    "rotated_det::nms_rotated",
    "rotated_det::batched_nms_rotated",
    "rotated_det::box_iou_rotated",
)


def _shape(value) -> list[int]:
    return list(value.type().sizes())


def roi_align_rotated_flop(inputs, outputs) -> int:
    """fvcore handle for ``rotated_det::roi_align_rotated_forward``: outputs [K, C, oh, ow];
    each output element averages sampling_ratio^2 bilinear samples of 4 multiply-adds."""
    out = _shape(outputs[0])
    sampling_ratio = inputs[5].toIValue() if len(inputs) > 5 else 2
    if sampling_ratio is None or sampling_ratio <= 0:
        sampling_ratio = 2  # adaptive: ceil(roi_size / output_size), typically 2 for FPN levels
    return int(np.prod(out)) * sampling_ratio * sampling_ratio * 4


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument(
        "--tasks",
        nargs="+",
        required=True,
        choices=["flop", "parameter", "structure"],
        help="what to analyze",
    )
    parser.add_argument("--sample-image", default="", help="image for the flop count")
    parser.add_argument("--input-size", type=int, nargs=2, default=[1024, 1024], metavar="H W")
    parser.add_argument("--num-inputs", type=int, default=1, help="images to average flops over")
    parser.add_argument("--max-depth", type=int, default=4, help="depth of the printed tables")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides (key=value)")
    return parser


def count_flops(model, images: list[torch.Tensor], max_depth: int = 4) -> dict:
    """FLOPs of ``model`` averaged over ``images`` (float32 [C, H, W]).

    Returns ``{"total": float, "per_module": Counter, "uncounted": Counter, "table": str}``.
    """
    adapter = _inference_copy(model)  # no parameter requires grad: tracing stays valid
    totals, per_module, uncounted = [], Counter(), Counter()
    table = ""
    for img in images:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            flops = FlopCountAnalysis(adapter, (img,))
            flops.set_op_handle("rotated_det::roi_align_rotated_forward", roi_align_rotated_flop)
            flops.set_op_handle(**{op: None for op in UNCOUNTED_ROTATED_OPS})
            flops.unsupported_ops_warnings(False)
            flops.uncalled_modules_warnings(False)
            totals.append(flops.total())
            per_module.update(flops.by_module())
            uncounted.update(flops.unsupported_ops())
            if not table:
                table = flop_count_table(flops, max_depth=max_depth)
        # fvcore silently skips ops given a None handle: find them in the trace to list them.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = torch.jit.trace(adapter, (img,), check_trace=False).inlined_graph
        for node in graph.nodes():
            if node.kind() in UNCOUNTED_ROTATED_OPS:
                uncounted[node.kind()] += 1
    n = len(images)
    return {
        "total": sum(totals) / n,
        "per_module": Counter({k: v / n for k, v in per_module.items()}),
        "uncounted": Counter({k: v / n for k, v in uncounted.items()}),
        "table": table,
    }


def main(argv: list[str] | None = None) -> dict:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(name)s] %(message)s")
    cfg = LazyConfig.load(args.config_file)
    cfg = LazyConfig.apply_overrides(cfg, args.opts)
    if "train" not in cfg:
        cfg.train = {}
    cfg.train.device = "cpu"
    predictor = DefaultPredictor(cfg, fuse_conv_bn=False)  # the model as trained and saved
    model = predictor.model.eval()
    results: dict = {}
    for task in args.tasks:
        if task == "flop":
            if args.sample_image:
                image = cv2.imread(args.sample_image, cv2.IMREAD_COLOR)
                if image is None:
                    raise FileNotFoundError(f"--sample-image {args.sample_image}: unreadable")
                images = [predictor.preprocess(image)["image"]] * args.num_inputs
            else:
                g = torch.Generator().manual_seed(0)
                h, w = args.input_size
                images = [torch.rand(3, h, w, generator=g) * 255 for _ in range(args.num_inputs)]
            res = count_flops(model, images, args.max_depth)
            results["flop"] = res
            size = tuple(images[0].shape[1:])
            print(f"Flops table (input {size[0]} x {size[1]}, fused multiply-adds):")
            print(res["table"])
            print(f"Total GFlops: {res['total'] / 1e9:.3f} (average over {len(images)} input(s))")
            rotated = {k: v for k, v in res["uncounted"].items() if k.startswith("rotated_det::")}
            other = {k: v for k, v in res["uncounted"].items() if k not in rotated}
            if rotated:
                print("Rotated ops not counted (data-dependent cost), calls per image:")
                for op, k in sorted(rotated.items()):
                    print(f"  {op}: {k:g}")
            if other:
                print(
                    "Other ops fvcore does not count (element-wise, indexing), calls per image: "
                    + ", ".join(f"{op.split('::')[-1]} {k:g}" for op, k in sorted(other.items()))
                )
        elif task == "parameter":
            table = parameter_count_table(model, max_depth=args.max_depth)
            total = sum(p.numel() for p in model.parameters())
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
            results["parameter"] = {"total": total, "trainable": trainable, "table": table}
            print(table)
            print(f"Parameters: {total:,} ({trainable:,} trainable)")
        elif task == "structure":
            results["structure"] = str(model)
            print(model)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])

#!/usr/bin/env python
"""Export a rotated_det detector for deployment without Python or without rotated_det.

    python tools/deploy/export_model.py --config-file C --format torchscript|torch_export \
        --export-method tracing --sample-image IMG --output DIR [key=value overrides ...]

Writes to DIR:
  model.ts (TorchScript, traced) or model.pt2 (torch.export ExportedProgram);
  sample_input.pt (the preprocessed sample image, float32 [C, H, W]) and sample_outputs.pt
  (dict of boxes/scores/classes the eager model gives on it), for checking a deployment;
  sample_input.ppm (the resized sample as an image, for the C++ runner);
  export_info.json and README.md describing inputs, outputs, preprocessing and how to load.

The weights come from train.init_checkpoint, loaded as DefaultPredictor does: the checkpoint's
EMA weights ("model_ema") when the config has train.model_ema.enabled=True (export_info.json:
"ema_weights").

The exported model is reloaded from disk and checked against the eager model on the sample; the
tool fails if they differ (boxes within 1e-3 relative, same classes and order, scores within
1e-4).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings

import cv2
import numpy as np
import torch

from rotated_det.config import LazyConfig
from rotated_det.engine.predictor import DefaultPredictor
from rotated_det.export import (
    TracingAdapter,
    compare_detections,
    export_torch_export,
    export_torchscript_tracing,
)
from rotated_det.layers.ops_library import library_path

logger = logging.getLogger("rotated_det.export_model")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Export a rotated_det model to TorchScript (tracing) or torch.export.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument("--config-file", required=True, metavar="FILE", help="LazyConfig .py")
    parser.add_argument("--format", choices=["torchscript", "torch_export"], default="torchscript")
    parser.add_argument(
        "--export-method",
        choices=["tracing"],
        default="tracing",
        help="only tracing: detectors return Instances, which scripting cannot compile",
    )
    parser.add_argument("--sample-image", required=True, help="image file the export runs on")
    parser.add_argument("--output", required=True, help="output directory")
    parser.add_argument("--device", default="cpu", help="device to export on (default cpu)")
    parser.add_argument(
        "opts",
        nargs=argparse.REMAINDER,
        help="config overrides, e.g. train.init_checkpoint=model.pth model.num_classes=16",
    )
    return parser


def _class_names(cfg) -> list[str] | None:
    """thing_classes of the test dataset's metadata, when the config names a registered one."""
    try:
        names = cfg.dataloader.test.dataset.names
        from rotated_det.data import MetadataCatalog

        name = names if isinstance(names, str) else names[0]
        return list(MetadataCatalog.get(name).thing_classes)
    except Exception:  # a config without a test dataset, or an unregistered name
        return None


def _resize_rule(predictor: DefaultPredictor) -> dict | None:
    from rotated_det.data.transforms import ResizeShortestEdge

    for aug in predictor.augmentations:
        if isinstance(aug, ResizeShortestEdge):
            lengths = sorted(set(int(v) for v in aug.short_edge_length))
            max_size = int(aug.max_size) if aug.max_size < 10**9 else 0
            return {"short_edge_length": lengths[-1], "max_size": max_size}
    return None


def _write_readme(out_dir: str, info: dict) -> None:
    h, w = info["traced_size"]
    fname = info["model_file"]
    resize = info["test_resize"]
    if resize:
        resize_text = (
            f"resize so that the short side is {resize['short_edge_length']} pixels"
            + (f" and the long side at most {resize['max_size']}" if resize["max_size"] else "")
            + " (ResizeShortestEdge, bilinear), "
        )
        cpp_resize = f" --min-size {resize['short_edge_length']}" + (
            f" --max-size {resize['max_size']}" if resize["max_size"] else ""
        )
    else:
        resize_text = "no resize (the config has no test-time resize), "
        cpp_resize = ""
    if info["dynamic_resolution"]:
        size_text = (
            f"Traced at {h} x {w}; verified to give the eager model's detections at "
            + ", ".join(f"{a} x {b}" for a, b in info["checked_sizes"])
            + " too, so other input sizes work"
            + (
                f" (from {info['size_range'][0]} to {info['size_range'][1]} pixels a side)."
                if info.get("size_range")
                else "."
            )
        )
    else:
        size_text = (
            f"**Fixed input size {h} x {w}** (H x W). This model's graph holds the traced size "
            "as constants; "
            + (
                "running it at another size raises an error that names the expected size. "
                if info["format"] == "torchscript"
                else "the program's guards reject other sizes "
                '("Guard failed: image.size()[1] == ..."). '
            )
            + "Resize (or pad) inputs to this size and scale the boxes back, or export again "
            "with a sample image of the size you need."
        )
    names = info["class_names"]
    classes_text = (
        "\n".join(f"| {i} | {n} |" for i, n in enumerate(names))
        if names
        else "| - | (the config names no registered test dataset: class ids only) |"
    )
    if info["format"] == "torchscript":
        load_py = f"""```python
import torch
torch.ops.load_library("{info["ops_library"]}")  # the rotated_det ops
model = torch.jit.load("{fname}")
boxes, scores, classes = model(image)  # image: float32 [3, H, W]
```"""
        cpp = f"""```bash
cmake -S tools/deploy -B build/deploy \\
  -DCMAKE_PREFIX_PATH=$(python -c 'import torch;print(torch.utils.cmake_prefix_path)') \\
  -DCUDA_TOOLKIT_ROOT_DIR=/usr/local/cuda \\
  -DCUDA_nvrtc_LIBRARY=<site-packages>/nvidia/cu13/lib/libnvrtc.so.13 \\
  -DROTATED_DET_OPS_LIBRARY={info["ops_library"]}
cmake --build build/deploy -j2
build/deploy/torchscript_rotated_det {fname} image.ppm \\
  --input-format {info["input_format"]}{cpp_resize}
```
The runner reads binary PPM images (`cv2.imwrite("image.ppm", img)`) or tensors saved with
`torch.save`, and prints `detections N` then `index class score cx cy w h angle` per line.
`sample_input.ppm` is the sample already resized: run it without `--min-size`."""
    else:
        load_py = f"""```python
import torch
torch.ops.load_library("{info["ops_library"]}")  # the rotated_det ops
model = torch.export.load("{fname}").module()
boxes, scores, classes = model(image)  # image: float32 [3, H, W]
```"""
        cpp = (
            "Use the TorchScript export (`--format torchscript`) for the C++ runner in "
            "tools/deploy; an ExportedProgram can be compiled for C++ with AOTInductor "
            "(`torch._inductor.aoti_compile_and_package`)."
        )
    ops = ", ".join(f"`{o}`" for o in info["rotated_det_ops"])
    ema_text = " (its EMA weights, `model_ema`)" if info.get("ema_weights") else ""
    text = f"""# Exported rotated_det model

| | |
| --- | --- |
| file | `{fname}` ({info["format"]}, {info["export_method"]}) |
| config | `{info["config_file"]}` |
| overrides | `{" ".join(info["overrides"]) or "-"}` |
| weights | `{info["weights"] or "(none: random initialisation)"}`{ema_text} |
| model | `{info["model_class"]}` |
| torch | {info["torch_version"]} |
| rotated_det ops in the graph | {ops} |

## Input

One tensor `image`: **float32 `[3, H, W]`**, channels in **{info["input_format"]}** order,
values 0-255 (the model normalises internally; do not subtract means or divide).

Preprocessing from an image file: decode to H x W x 3 uint8 ({info["input_format"]}), {resize_text}
then `image = torch.from_numpy(img).permute(2, 0, 1).float()`.

{size_text}

## Outputs

A tuple of three tensors, one row per detection, by decreasing score:

| output | dtype / shape | meaning |
| --- | --- | --- |
| `boxes` | float32 `[N, 5]` | rotated boxes `(cx, cy, w, h, angle)`, see below |
| `scores` | float32 `[N]` | confidence in [0, 1] |
| `classes` | int64 `[N]` | 0-based class index |

Boxes are in pixels of the **input tensor**: multiply cx, cy, w, h by (original size / input
size) to get original-image pixels. The angle is in degrees, counter-clockwise as seen on screen
(image y axis down); corners are centre +- w/2 (cos a, -sin a) +- h/2 (sin a, cos a).

Classes:

| id | name |
| --- | --- |
{classes_text}

## Loading

Python, in a process that needs neither rotated_det nor its Python code:

{load_py}

C++ (tools/deploy/torchscript_rotated_det.cpp):

{cpp}

## Verification

On the sample image ({h} x {w} after preprocessing), the exported model reloaded from disk gave
{info["sample_detections"]} detections equal to the eager model's (boxes within 1e-3 relative, same
classes and order, scores within 1e-4). `sample_input.pt` and `sample_outputs.pt` hold that input
and the eager outputs.
"""
    with open(os.path.join(out_dir, "README.md"), "w", encoding="utf-8") as f:
        f.write(text)


def main(argv: list[str] | None = None) -> dict:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(name)s] %(message)s")
    cfg = LazyConfig.load(args.config_file)
    cfg = LazyConfig.apply_overrides(cfg, args.opts)
    if "train" not in cfg:
        cfg.train = {}
    cfg.train.device = args.device
    image = cv2.imread(args.sample_image, cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"--sample-image {args.sample_image}: cannot read it as an image")

    predictor = DefaultPredictor(cfg)
    model = predictor.model.eval()
    # cv2.imread gives BGR; DefaultPredictor converts to the model's order and resizes.
    sample = predictor.preprocess(image)["image"]
    os.makedirs(args.output, exist_ok=True)
    t0 = time.perf_counter()
    with torch.no_grad():
        expected = TracingAdapter(model)(sample)
    eager_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    if args.format == "torchscript":
        result = export_torchscript_tracing(model, sample)
        model_file = "model.ts"
        path = os.path.join(args.output, model_file)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            result.module.save(path)
            loaded = torch.jit.load(path)
        dynamic = result.dynamic_resolution
        checked = [list(c.size) for c in result.resolution_checks if c.ok]
        ops = result.ops
    else:
        result = export_torch_export(model, sample)
        model_file = "model.pt2"
        path = os.path.join(args.output, model_file)
        torch.export.save(result.program, path)
        loaded = torch.export.load(path).module()
        dynamic = result.dynamic_resolution
        checked = [list(c.size) for c in result.resolution_checks if c.ok]
        ops = result.ops
    export_s = time.perf_counter() - t0
    with torch.no_grad():
        actual = loaded(sample)
    diff = compare_detections(tuple(actual), expected)
    if diff is not None:
        raise SystemExit(f"export verification failed: the reloaded {model_file} differs: {diff}")

    torch.save(sample.cpu().contiguous(), os.path.join(args.output, "sample_input.pt"))
    torch.save(
        {"boxes": expected[0], "scores": expected[1], "classes": expected[2]},
        os.path.join(args.output, "sample_outputs.pt"),
    )
    hwc = sample.permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    bgr = hwc if predictor.input_format == "BGR" else hwc[:, :, ::-1]
    cv2.imwrite(os.path.join(args.output, "sample_input.ppm"), np.ascontiguousarray(bgr))
    info = {
        "format": args.format,
        "export_method": args.export_method,
        "model_file": model_file,
        "config_file": args.config_file,
        "overrides": list(args.opts),
        "weights": str(cfg.train.get("init_checkpoint", "") or ""),
        # True: the file's EMA weights (train.model_ema.enabled=True and a "model_ema" entry)
        "ema_weights": bool(predictor.uses_ema_weights),
        "model_class": type(model).__name__,
        "torch_version": torch.__version__,
        "input_format": predictor.input_format,
        "traced_size": [int(sample.shape[1]), int(sample.shape[2])],
        "dynamic_resolution": bool(dynamic),
        "checked_sizes": checked,
        "size_range": list(result.size_range) if getattr(result, "size_range", None) else None,
        "test_resize": _resize_rule(predictor),
        "class_names": _class_names(cfg),
        "rotated_det_ops": ops,
        "ops_library": library_path(),
        "sample_detections": int(expected[0].shape[0]),
        "eager_seconds": eager_s,
        "export_seconds": export_s,
    }
    with open(os.path.join(args.output, "export_info.json"), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2)
    _write_readme(args.output, info)
    logger.info(
        "Exported %s to %s (%s, %d detections on the sample, ops: %s, %s resolution)",
        type(model).__name__,
        path,
        args.format,
        info["sample_detections"],
        ", ".join(ops),
        "dynamic" if dynamic else "fixed",
    )
    return info


if __name__ == "__main__":
    main(sys.argv[1:])

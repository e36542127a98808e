#!/usr/bin/env python
"""Export a rotated_det detector for deployment without Python or without rotated_det.

    python tools/deploy/export_model.py --config-file C \
        --format torchscript|torch_export|aoti|onnx --export-method tracing \
        --sample-image IMG --output DIR [key=value overrides ...]

Writes to DIR:
  model.ts (TorchScript, traced), model.pt2 (torch.export ExportedProgram; with --format aoti an
  AOTInductor package compiled from it, for the C++ runner's AOTIModelPackageLoader) or model.onnx
  (standard ONNX operators only, outputs before the final NMS; onnx_postprocess.py, copied next
  to it, finishes the NMS with numpy: see tools/deploy/README.md);
  sample_input.pt (the preprocessed sample image, float32 [C, H, W]) and sample_outputs.pt
  (dict of boxes/scores/classes the eager model gives on it), for checking a deployment;
  sample_input.ppm (the resized sample as an image, for the C++ runner);
  export_info.json and README.md describing inputs, outputs, preprocessing and how to load.

The weights come from train.init_checkpoint, loaded as DefaultPredictor does: the checkpoint's
EMA weights ("model_ema") when the config has train.model_ema.enabled=True (export_info.json:
"ema_weights"), then, as DefaultPredictor prepares a model for inference, every batch norm folded
into the convolution before it (its detections equal up to float32 rounding) and, on a CPU, the
convolution weights stored channels-last (kept by TorchScript; torch.export, AOTInductor and ONNX
export a copy with contiguous weights, see rotated_det.export.torch_export).

The exported model is reloaded from disk and checked against the eager model on the sample; the
tool fails if they differ (boxes within 1e-3 relative, same classes and order, scores within
1e-4); an AOTInductor package also at the second size its dynamic program was checked at. An
ONNX file is checked in each installed runtime (ONNX Runtime, OpenVINO) against the
PyTorch model on the same operators (rotated_det.export.PreNMSDetector), before and after the
NMS, in any order (rotated_det.export.detection_matching, same tolerances).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import shutil
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
    onnx_postprocess,
    other_resolution,
)
from rotated_det.export.aoti import (
    AOTI_BOX_RTOL,
    AOTI_SCORE_ATOL,
    compare_aoti_detections,
    export_aoti,
    load_aoti_package,
)
from rotated_det.export.detection_matching import match_detections
from rotated_det.export.onnx_export import DEFAULT_OPSET, export_onnx
from rotated_det.export.onnx_postprocess import postprocess
from rotated_det.export.onnx_runtime import RUNTIMES, OnnxDetector
from rotated_det.export.standard_ops import PreNMSDetector
from rotated_det.layers import box_iou_rotated
from rotated_det.layers.ops_library import library_path

logger = logging.getLogger("rotated_det.export_model")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Export a rotated_det model to TorchScript (tracing), torch.export, an "
        "AOTInductor package or ONNX.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument("--config-file", required=True, metavar="FILE", help="LazyConfig .py")
    parser.add_argument(
        "--format",
        choices=["torchscript", "torch_export", "aoti", "onnx"],
        default="torchscript",
        help="aoti: torch.export compiled by AOTInductor into model.pt2 (minutes of C++ "
        "compilation)",
    )
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
        "--proposal-nms",
        choices=["horizontal", "topk"],
        default="horizontal",
        help="onnx, two-stage detectors: NMS of the proposals' bounding boxes (ONNX "
        "NonMaxSuppression; default) or none (the best post_nms_topk proposals)",
    )
    parser.add_argument(
        "--opset", type=int, default=DEFAULT_OPSET, help=f"onnx opset (default {DEFAULT_OPSET})"
    )
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
                else "the loaders (rotated_det.export.aoti.load_aoti_package, the C++ runner) "
                "refuse other sizes, naming the compiled size. "
                if info["format"] == "aoti"
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
    elif info["format"] == "aoti":
        load_py = f"""```python
import torch
torch.ops.load_library("{info["ops_library"]}")  # the rotated_det ops, before loading
model = torch._inductor.aoti_load_package("{fname}")
boxes, scores, classes = model(image)  # image: float32 [3, H, W], contiguous
```
The compiled program does not check the input's size: `rotated_det.export.aoti.load_aoti_package`
(and the C++ runner) check it against the package metadata (`rotated_det.*` entries of
`model.get_metadata()`)."""
        cpp = f"""Build the runner as for TorchScript (tools/deploy/README.md), then
```bash
build/deploy/torchscript_rotated_det {fname} image.ppm \\
  --input-format {info["input_format"]}{cpp_resize}
```
A `.pt2` file is loaded with `torch::inductor::AOTIModelPackageLoader` (or pass
`--model-format aoti`); the runner links the rotated_det ops library, which the package calls
through the dispatcher. The package is compiled for this machine's CPU
({info.get("aoti_cpu_isa", "see model.get_metadata()")}): compile it again on the target."""
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
    if info["format"] == "aoti":
        tolerance = (
            f"at {', '.join(f'{a} x {b}' for a, b in info['checked_sizes'])}: one to one in any "
            f"order, same classes, box corners within {AOTI_BOX_RTOL:g} relative, scores within "
            f"{AOTI_SCORE_ATOL:g}; AOTInductor compiles its own kernels, whose float sums differ "
            "from PyTorch's"
        )
    else:
        tolerance = "boxes within 1e-3 relative, same classes and order, scores within 1e-4"
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
{info["sample_detections"]} detections equal to the eager model's ({tolerance}).
`sample_input.pt` and `sample_outputs.pt` hold that input and the eager outputs.
"""
    with open(os.path.join(out_dir, "README.md"), "w", encoding="utf-8") as f:
        f.write(text)


def _ill_conditioned(reference: PreNMSDetector, image: torch.Tensor) -> bool:
    """PyTorch's candidates on ``image`` change (a candidate comes or goes, or moves by more than
    1e-2) when the image is scaled by 1 + 1e-5."""
    with torch.no_grad():
        a, b = (tuple(x.cpu().numpy() for x in reference(im)) for im in (image, image * 1.00001))
    return match_detections(b, a, box_rtol=1e-2, score_atol=1e-2) is not None


def _verify_onnx(result, model, sample: torch.Tensor, expected) -> dict:
    """Runs the ONNX file in each installed runtime on the sample (and at a second size when
    the file has dynamic sides) against the PyTorch model on the same operators, before and
    after the NMS; raises SystemExit on a difference. Returns the export_info.json fields."""
    nms = result.final_nms
    reference = PreNMSDetector(model, result.proposal_nms or "horizontal")
    images = [sample]
    if result.dynamic_resolution:
        lo, hi = result.size_range
        size = [min(max(lo, v), hi) for v in other_resolution(*sample.shape[1:])]
        images.append(
            torch.nn.functional.interpolate(
                sample[None], size=size, mode="bilinear", align_corners=False
            )[0]
        )
    references = []
    for img in images:
        with torch.no_grad():
            pre = tuple(x.cpu().numpy() for x in reference(img))
        references.append((pre, postprocess(*pre, nms.iou_threshold, nms.max_detections)))
    runtimes = {}
    ill_conditioned: list[str] = []
    for runtime in RUNTIMES:
        if importlib.util.find_spec(runtime) is None:
            runtimes[runtime] = "not installed"
            logger.warning("%s is not installed: the ONNX file is not checked with it", runtime)
            continue
        detector = OnnxDetector(result.path, runtime)
        for img, (pre, post) in zip(images, references):
            x = img.cpu().numpy()
            for what, actual, want in (
                ("before the NMS", detector.pre_nms(x), pre),
                ("after the NMS", detector(x), post),
            ):
                diff = match_detections(actual, want)
                if diff is None:
                    continue
                where = f"{x.shape[1]} x {x.shape[2]}"
                if _ill_conditioned(reference, img):
                    # PyTorch itself changes its candidates under a perturbation ten times the
                    # runtimes' differences: a score sits on a threshold or top-k cut.
                    logger.warning(
                        "%s differs from PyTorch %s at %s (%s), but PyTorch's own candidates "
                        "change when the image is scaled by 1 + 1e-5: a score on a cut, not "
                        "an export error",
                        runtime, what, where, diff,
                    )  # fmt: skip
                    ill_conditioned.append(where)
                    break
                raise SystemExit(
                    f"ONNX verification failed: {runtime} differs from PyTorch {what} at "
                    f"{where}: {diff}"
                )
        runtimes[runtime] = "matches PyTorch (before and after the NMS)"
    ours = references[0][1]
    model_diff = match_detections(ours, tuple(t.cpu().numpy() for t in expected))
    # share of the PyTorch model's detections that the file finds too (same class, IoU >= 0.9)
    iou = box_iou_rotated(expected[0].cpu().double(), torch.from_numpy(ours[0]).double())
    same_class = expected[2].cpu()[:, None] == torch.from_numpy(ours[2])[None, :]
    found = ((iou >= 0.9) & same_class).any(dim=1)
    return {
        "export_method": "torch.export (non-strict) + torch.onnx dynamo exporter",
        "opset": result.opset,
        "onnx_operators": result.operators,
        "proposal_nms": result.proposal_nms,
        "final_nms_iou_threshold": nms.iou_threshold,
        "max_detections": nms.max_detections,
        "metadata": result.metadata,
        "runtimes": runtimes,
        "checked_sizes": [list(img.shape[1:]) for img in images],
        "onnx_detections": int(len(ours[0])),
        "same_detections_as_pytorch_model": model_diff is None,
        "difference_from_pytorch_model": model_diff or "",
        "pytorch_model_detections_found": int(found.sum()),
        "ill_conditioned_sizes": ill_conditioned,
    }


def _write_onnx_readme(out_dir: str, info: dict) -> None:
    h, w = info["traced_size"]
    resize = info["test_resize"]
    resize_text = (
        f"resize so that the short side is {resize['short_edge_length']} pixels"
        + (f" and the long side at most {resize['max_size']}" if resize["max_size"] else "")
        + " (ResizeShortestEdge, bilinear), "
        if resize
        else "no resize (the config has no test-time resize), "
    )
    if info["dynamic_resolution"]:
        lo, hi = info["size_range"]
        size_text = f"Height and width are dynamic, from {lo} to {hi} pixels."
    else:
        size_text = (
            f"**Fixed input size {h} x {w}** (H x W): the dynamic export failed. Resize (or "
            "pad) inputs to this size and scale the boxes back."
        )
    names = info["class_names"]
    classes_text = (
        "\n".join(f"| {i} | {n} |" for i, n in enumerate(names))
        if names
        else "| - | (the config names no registered test dataset: class ids only) |"
    )
    thr, limit = info["final_nms_iou_threshold"], info["max_detections"]
    proposal = {
        None: "one-stage detector: no proposal stage.",
        "horizontal": "ONNX `NonMaxSuppression` of the proposals' axis-aligned bounding boxes "
        "(the PyTorch model suppresses on rotated IoU: see below).",
        "topk": "none: the best `post_nms_topk` proposals by objectness.",
    }[info["proposal_nms"]]
    agreement = (
        "the same detections as the PyTorch model"
        if info["same_detections_as_pytorch_model"]
        else "detections that differ from the PyTorch model's through the proposal NMS above: "
        f"{info['pytorch_model_detections_found']} of the model's {info['sample_detections']} "
        "detections have one of the same class with rotated IoU >= 0.9 among them"
    )
    runtimes = "\n".join(f"- {k}: {v}" for k, v in info["runtimes"].items())
    text = f"""# Exported rotated_det model (ONNX)

| | |
| --- | --- |
| file | `model.onnx`: ONNX opset {info["opset"]}, default domain only (no custom operators) |
| export method | {info["export_method"]} |
| config | `{info["config_file"]}` |
| overrides | `{" ".join(info["overrides"]) or "-"}` |
| weights | `{info["weights"] or "(none: random initialisation)"}` |
| model | `{info["model_class"]}` |
| torch | {info["torch_version"]} |
| proposal NMS in the graph | {proposal} |
| final NMS (outside the graph) | class-wise rotated NMS at IoU {thr}, {limit} detections kept |

## Input

`image`: **float32 `[3, H, W]`**, channels in **{info["input_format"]}** order, values 0-255
(the model normalises internally). From an image file: decode to H x W x 3 uint8
({info["input_format"]}), {resize_text}then `image = img.transpose(2, 0, 1).astype(np.float32)`.

{size_text}

## Outputs: candidates before the final NMS

| output | dtype / shape | meaning |
| --- | --- | --- |
| `boxes` | float32 `[M, 5]` | `(cx, cy, w, h, angle)`: input pixels, degrees CCW on screen |
| `scores` | float32 `[M]` | confidence in [0, 1] |
| `classes` | int64 `[M]` | 0-based class index |

Rotated-IoU NMS has no ONNX operator, so the file stops before the detector's final NMS.
`onnx_postprocess.py` (numpy only, copied here) finishes it: per class, by decreasing score, a
box suppresses the later boxes whose rotated IoU with it exceeds {thr}; the best {limit} are
kept. The threshold and limit are also in the file's metadata
(`rotated_det.final_nms_iou_threshold`, `rotated_det.max_detections`).

Classes:

| id | name |
| --- | --- |
{classes_text}

## Running it

ONNX Runtime (no torch, no rotated_det):

```python
import numpy as np
import onnxruntime as ort
from onnx_postprocess import postprocess

session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
image = np.load("sample_input.npy")  # float32 [3, H, W]
boxes, scores, classes = session.run(None, {{"image": image}})
boxes, scores, classes = postprocess(boxes, scores, classes, {thr}, {limit})
```

OpenVINO (CPU; ask for float32: processors with AMX or AVX512-BF16 run bfloat16 by default):

```python
import openvino as ov

compiled = ov.Core().compile_model("model.onnx", "CPU", {{"INFERENCE_PRECISION_HINT": "f32"}})
result = compiled({{"image": image}})
boxes, scores, classes = (result[compiled.output(n)] for n in ("boxes", "scores", "classes"))
```

C++: run the file with ONNX Runtime's C++ API and finish with the compiled op
`rotated_det::batched_nms_rotated` (see rotated_det/export/onnx_postprocess.py) or a port of
`onnx_postprocess.py`. TensorRT: see tools/deploy/README.md.

## Verification

On the sample ({h} x {w}) and at {
        ", ".join(f"{a} x {b}" for a, b in info["checked_sizes"][1:]) or "no other size"
    }, the file's outputs matched the PyTorch model on the same operators before and
after the NMS, in any order (boxes within 1e-3 relative, same classes, scores within 1e-4):

{runtimes}

After the NMS the file gives {info["onnx_detections"]} detections on the sample: {agreement}.
"""
    with open(os.path.join(out_dir, "README.md"), "w", encoding="utf-8") as f:
        f.write(text)


def main(argv: list[str] | None = None) -> dict:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(name)s] %(message)s")
    for name in ("onnx_ir", "onnxscript"):  # their INFO lines list every graph pass
        logging.getLogger(name).setLevel(logging.WARNING)
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
    onnx_info: dict = {}
    aoti_info: dict = {}
    if args.format == "onnx":
        model_file = "model.onnx"
        path = os.path.join(args.output, model_file)
        result = export_onnx(model, sample, path, proposal_nms=args.proposal_nms, opset=args.opset)
        export_s = time.perf_counter() - t0
        onnx_info = _verify_onnx(result, model, sample, expected)
        shutil.copy(onnx_postprocess.__file__, os.path.join(args.output, "onnx_postprocess.py"))
        np.save(os.path.join(args.output, "sample_input.npy"), sample.cpu().numpy())
        dynamic = result.dynamic_resolution
        checked = onnx_info.pop("checked_sizes")
        ops = []
    elif args.format == "torchscript":
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
    elif args.format == "aoti":
        model_file = "model.pt2"
        path = os.path.join(args.output, model_file)
        aoti = export_aoti(model, sample, path)
        loaded = load_aoti_package(path)
        result = aoti.exported
        dynamic = result.dynamic_resolution
        checked = [list(sample.shape[1:])]
        # The compiled package itself at each other size its program was checked at (Inductor
        # compiles data-dependent shapes; a miscompilation shows here).
        for check in result.resolution_checks:
            other = torch.nn.functional.interpolate(
                sample[None], size=check.size, mode="bilinear", align_corners=False
            )[0]
            with torch.no_grad():
                diff = compare_aoti_detections(loaded(other), TracingAdapter(model)(other))
            if diff is not None:
                raise SystemExit(
                    f"export verification failed: the AOTInductor package differs from the "
                    f"eager model at {check.size[0]} x {check.size[1]}: {diff}"
                )
            checked.append(list(check.size))
        ops = result.ops
        aoti_info = {
            "aoti_compile_seconds": aoti.compile_seconds,
            "aoti_cpu_isa": loaded.metadata.get("AOTI_CPU_ISA", ""),
        }
    else:
        result = export_torch_export(model, sample)
        model_file = "model.pt2"
        path = os.path.join(args.output, model_file)
        torch.export.save(result.program, path)
        loaded = torch.export.load(path).module()
        dynamic = result.dynamic_resolution
        checked = [list(c.size) for c in result.resolution_checks if c.ok]
        ops = result.ops
    if args.format != "onnx":
        export_s = time.perf_counter() - t0
        with torch.no_grad():
            actual = loaded(sample)
        if args.format == "aoti":  # Inductor's own kernels: see rotated_det.export.aoti
            diff = compare_aoti_detections(tuple(actual), expected)
        else:
            diff = compare_detections(tuple(actual), expected)
        if diff is not None:
            raise SystemExit(
                f"export verification failed: the reloaded {model_file} differs: {diff}"
            )

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
        **onnx_info,
        **aoti_info,
    }
    with open(os.path.join(args.output, "export_info.json"), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2)
    if args.format == "onnx":
        _write_onnx_readme(args.output, info)
    else:
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

#!/usr/bin/env python
"""Detector x export format on this CPU: agreement with the eager model and latency.

    python dev/bench_formats.py [ROW ...] [--aoti] [--threads 2] [--repeat 5] [--json OUT]
        [--precision float32|bfloat16|float16] [--device cpu|cuda] [--image PATH]

For each row of ``dev/zoo.py`` (default: one detector of each structure), the model is built as
``DefaultPredictor`` prepares it (the row's trained quickstart weights (the checkpoint of
``output/zoo/<row>/summary.json``) when the row was trained, else seeded random weights, flagged
in the table; batch norms folded, channels-last weights) and run on the first validation patch
of the synthetic set (512 x 512, the predictor's preprocessing) as:

- eager: the detector through ``TracingAdapter`` (the reference), as the predictor runs it;
- TorchScript: ``export_torchscript_tracing``;
- torch.export: ``export_torch_export(...).program.module()`` (this and the formats below export
  a copy with contiguous weights: rotated_det.export.torch_export);
- AOTI (``--aoti``): ``export_aoti`` + ``load_aoti_package`` (minutes of C++ compilation per row);
- ONNX Runtime and OpenVINO: ``export_onnx`` + ``OnnxDetector`` (numpy NMS included), against
  the eager model with the graph's horizontal proposal NMS for two-stage detectors (what the
  file computes; see tools/deploy/README.md).

A cell reads ``= 42 / 31 ms``: the same 42 detections as the reference one to one (classes equal,
scores within 1e-4, corners within 1e-3 relative: rotated_det.export.detection_matching), median
latency of ``--repeat`` runs after one warm-up, with ``--threads`` threads; ``!=`` with the
difference printed below the table when they do not agree. Trained weights are not conditioned
like the ONNX tests' random ones, so a detection whose score sits within float rounding of the
score threshold can come or go between runtimes: that is reported, not hidden.

A ROW is a row of ``dev/zoo.py`` or ``CONFIG=CHECKPOINT`` (a config file and its weights, e.g. a
model ``dev/gpu_check.sh`` trained).

``--precision bfloat16`` (CPU or CUDA) / ``float16`` (CUDA): each format runs the model in that
precision as ``DefaultPredictor(precision=...)`` does (eager under ``torch.autocast``; TorchScript
traced and torch.export / AOTI exported under it, which records the casts), against the float32
eager model (its detections and latency follow the row's name): a cell reads
``~ 71 of 73 (+2) / 12 ms``: 71 of the 73 float32 detections have a detection of the same class
at rotated IoU >= 0.9 (one to one, by decreasing score), and the format returned 2 detections more
in all; the largest score difference of the matched pairs is
listed below the table. Half-precision scores tie and round, so detections near the score
threshold or the detection limit come and go: the agreement, not equality, is the figure. ONNX
files are float32 only (not run in these modes).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import importlib.util
import io
import json
import os
import statistics
import sys
import tempfile
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from dev.zoo import ZOO  # noqa: E402
from rotated_det.config import LazyConfig  # noqa: E402
from rotated_det.engine.predictor import DefaultPredictor  # noqa: E402
from rotated_det.export import (  # noqa: E402
    StandardOpsMode,
    TracingAdapter,
    export_onnx,
    export_torch_export,
    export_torchscript_tracing,
    match_detections,
)
from rotated_det.layers import box_iou_rotated  # noqa: E402

DEFAULT_ROWS = ["faster_rcnn", "fcos", "r3det", "s2anet", "rtmdet_tiny", "sasm"]
FORMATS = ("eager", "torchscript", "torch_export", "aoti", "onnxruntime", "openvino")
# Formats that run in reduced precision (under torch.autocast); the ONNX files are float32.
REDUCED_PRECISION_FORMATS = ("eager", "torchscript", "torch_export", "aoti")
# A float32 detection is found in reduced precision by a same-class detection at this rotated IoU.
AGREEMENT_IOU = 0.9
VAL_PATCHES = os.path.join(ROOT, "datasets", "synthetic", "split_512", "val", "images")
ZOO_DIR = os.path.join(ROOT, "output", "zoo")

Detections = tuple[np.ndarray, np.ndarray, np.ndarray]


def numpy_detections(outputs) -> Detections:
    return tuple(np.asarray(x.detach().float().cpu().numpy()) for x in outputs)  # type: ignore


def build_predictor(
    row: str, device: str = "cpu", precision: str = "float32"
) -> tuple[DefaultPredictor, bool]:
    """The row's predictor (a zoo row, or ``CONFIG=CHECKPOINT``) and whether it holds trained
    weights."""
    if "=" in row:
        config, checkpoint = row.split("=", 1)
    else:
        config = os.path.join(ROOT, ZOO[row][0])
        summary = os.path.join(ZOO_DIR, row, "summary.json")
        # older summaries have no "paths": the quickstart's default place
        checkpoint = os.path.join(ZOO_DIR, row, "train", "model_final.pth")
        if os.path.isfile(summary):
            with open(summary, encoding="utf-8") as f:
                checkpoint = json.load(f).get("paths", {}).get("checkpoint", checkpoint)
    cfg = LazyConfig.load(config)
    cfg.train.device = device
    trained = os.path.isfile(checkpoint)
    if trained:
        cfg.train.init_checkpoint = checkpoint
    if not trained:
        cfg.train.init_checkpoint = ""
        torch.manual_seed(0)
    return DefaultPredictor(cfg, precision=precision), trained


def row_label(row: str) -> str:
    return ZOO[row][1] if row in ZOO else os.path.basename(row.split("=", 1)[0])


def agreement(got: Detections, reference: Detections) -> dict:
    """How many ``reference`` detections ``got`` finds (same class, rotated IoU >=
    AGREEMENT_IOU, one to one by decreasing reference score), how many it returns in all, and the
    largest score difference of the matched pairs."""
    gb, gs, gc = (torch.from_numpy(np.asarray(x)) for x in got)
    rb, rs, rc = (torch.from_numpy(np.asarray(x)) for x in reference)
    iou = box_iou_rotated(rb.float().reshape(-1, 5), gb.float().reshape(-1, 5))  # [R, G]
    iou = torch.where(rc[:, None] == gc[None, :], iou, 0.0)
    used = torch.zeros(len(gb), dtype=torch.bool)
    found, score_diff = 0, 0.0
    for r in torch.argsort(rs, descending=True).tolist():
        candidates = torch.where(used, 0.0, iou[r])
        if len(candidates) == 0 or candidates.max() < AGREEMENT_IOU:
            continue
        g = int(candidates.argmax())
        used[g] = True
        found += 1
        score_diff = max(score_diff, abs(float(gs[g]) - float(rs[r])))
    return {"found": found, "expected": len(rb), "detections": len(gb), "score_diff": score_diff}


def median_seconds(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_row(
    row: str,
    image: np.ndarray,
    formats: list[str],
    repeat: int,
    device: str = "cpu",
    precision: str = "float32",
) -> dict:
    """``{"trained": bool, format: {"detections", "agrees", "diff", "ms"} or {"error"}}``; in
    reduced precision ``{"found", "expected", "detections", "score_diff", "ms"}``."""
    predictor, trained = build_predictor(row, device, precision)
    model = predictor.model.eval()
    sample = predictor.preprocess(image)["image"].float().to(device)
    adapter = TracingAdapter(model)
    with torch.no_grad():
        reference = numpy_detections(adapter(sample))
    proposal_generator = getattr(model, "proposal_generator", None)
    mode = StandardOpsMode(
        proposal_generator, "horizontal", defer_final_nms=False, standard_roi_align=False
    )
    result: dict = {"trained": trained, "size": list(sample.shape[1:]), "precision": precision}
    if precision == "float32":
        with mode, torch.no_grad():
            onnx_reference = numpy_detections(adapter(sample))
    else:  # the baseline of the reduced-precision cells: the float32 reference's latency
        with torch.no_grad():
            seconds = median_seconds(lambda: adapter(sample), repeat)
        result["float32"] = {"detections": len(reference[1]), "ms": 1000 * seconds}
    with tempfile.TemporaryDirectory() as tmp:
        runners = {}
        for fmt in formats:
            if precision != "float32" and fmt not in REDUCED_PRECISION_FORMATS:
                result[fmt] = {"error": "ONNX files are float32 only"}
                continue
            try:
                with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                    warnings.simplefilter("ignore")
                    with predictor.autocast():
                        runners[fmt] = make_runner(fmt, model, sample, tmp, precision)
            except Exception as e:  # a format that fails to export is a cell of the table
                result[fmt] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
        for fmt, run in runners.items():
            with torch.no_grad(), predictor.autocast():
                got = run()
                seconds = median_seconds(run, repeat)
            if precision != "float32":
                result[fmt] = {**agreement(got, reference), "ms": 1000 * seconds}
            else:
                expected = onnx_reference if fmt in ("onnxruntime", "openvino") else reference
                diff = match_detections(got, expected)
                result[fmt] = {
                    "detections": len(got[1]),
                    "expected": len(expected[1]),
                    "agrees": diff is None,
                    "diff": diff,
                    "ms": 1000 * seconds,
                }
            print(f"  {row} {fmt}: {result[fmt]}", flush=True)
    return result


def make_runner(
    fmt: str, model: torch.nn.Module, sample: torch.Tensor, tmp: str, precision: str = "float32"
):
    """A function that runs ``sample`` through ``model`` exported to ``fmt`` and returns numpy
    detections (exported in the caller's autocast context, if any)."""
    if fmt == "eager":
        adapter = TracingAdapter(model)
        return lambda: numpy_detections(adapter(sample))
    if fmt == "torchscript":
        if precision != "float32":
            # (export_torchscript_tracing checks the trace against eager one to one, which
            # half-precision score ties do not satisfy)
            module = torch.jit.trace(TracingAdapter(model), (sample,), check_trace=False)
        else:
            module = export_torchscript_tracing(model, sample).module
        return lambda: numpy_detections(module(sample))
    if fmt == "torch_export":
        module = export_torch_export(model, sample, check_images=[]).program.module()
        return lambda: numpy_detections(module(sample))
    if fmt == "aoti":
        from rotated_det.export.aoti import export_aoti, load_aoti_package

        package = export_aoti(model, sample, os.path.join(tmp, "model.pt2"))
        compiled = load_aoti_package(package.package_path)
        return lambda: numpy_detections(compiled(sample))
    from rotated_det.export.onnx_runtime import OnnxDetector

    if importlib.util.find_spec(fmt) is None:
        raise ModuleNotFoundError(f"{fmt} is not installed (pip install -r dev/requirements.txt)")
    path = os.path.join(tmp, "model.onnx")
    if not os.path.isfile(path):
        export_onnx(model, sample, path)
    detector = OnnxDetector(path, fmt, threads=torch.get_num_threads())
    image = sample.numpy()
    return lambda: tuple(np.asarray(x) for x in detector(image))


def table(results: dict, formats: list[str]) -> str:
    lines = [
        "| detector | " + " | ".join(formats) + " |",
        "| --- |" + " --- |" * len(formats),
    ]
    notes = []
    for row, r in results.items():
        label = row_label(row) + ("" if r["trained"] else " (random weights)")
        if "float32" in r:
            label += f" (float32 eager: {r['float32']['detections']} / {r['float32']['ms']:.0f} ms)"
        cells = []
        for fmt in formats:
            c = r.get(fmt, {"error": "not run"})
            if "error" in c:
                cells.append("fails" if "float32 only" not in c["error"] else "-")
                if "float32 only" not in c["error"]:
                    notes.append(f"- {label}, {fmt}: {c['error']}")
            elif "found" in c:
                extra = c["detections"] - c["found"]
                cells.append(f"~ {c['found']} of {c['expected']} (+{extra}) / {c['ms']:.0f} ms")
                notes.append(f"- {label}, {fmt}: largest score difference {c['score_diff']:.4f}")
            else:
                sign = "=" if c["agrees"] else "!="
                cells.append(f"{sign} {c['detections']} / {c['ms']:.0f} ms")
                if not c["agrees"]:
                    notes.append(f"- {label}, {fmt}: {c['diff']}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines + ([""] + notes if notes else []))


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("rows", nargs="*", default=DEFAULT_ROWS, help=f"rows of dev/zoo.py: {list(ZOO)}")
    p.add_argument("--aoti", action="store_true", help="also compile AOTInductor packages")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--precision", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--image", default=None, help="the image (default: the first validation patch)")
    args = p.parse_args(argv)
    unknown = [r for r in args.rows if r not in ZOO and "=" not in r]
    if unknown:
        p.error(f"unknown rows {unknown}; known: {list(ZOO)}")
    torch.set_num_threads(args.threads)
    patches = [args.image] if args.image else sorted(glob.glob(os.path.join(VAL_PATCHES, "*.png")))
    if not patches:
        raise FileNotFoundError(
            f"no validation patches in {VAL_PATCHES}: run `python dev/quickstart.py` once"
        )
    image = cv2.imread(patches[0], cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read the image {patches[0]}")
    formats = [f for f in FORMATS if f != "aoti" or args.aoti]
    load_start = os.getloadavg()[0]
    results = {
        row: bench_row(row, image, formats, args.repeat, args.device, args.precision)
        for row in args.rows
    }
    print(
        f"\n{os.path.basename(patches[0])}, {args.device}, {args.precision}, "
        f"{torch.get_num_threads()} threads, torch "
        f"{torch.__version__}, median of {args.repeat}; load average {load_start:.1f} -> "
        f"{os.getloadavg()[0]:.1f}\n"
    )
    print(table(results, formats))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()

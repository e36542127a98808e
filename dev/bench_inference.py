#!/usr/bin/env python
"""Benchmark inference paths: sliding-window inference on a full DOTA scene against a naive
baseline in the same run, and exported models (TorchScript, AOTInductor, ONNX in ONNX Runtime and
OpenVINO) against eager PyTorch.

    python dev/bench_inference.py [--config-file C] [--patch-size 512] [--overlap 128]
                                  [--batch-size 4] [--repeat 2] [--exported-only] [--no-aoti]
                                  [--no-onnx] [key=value overrides ...]

1. Sliding window on tests/data/dota_samples/unlabeled/dota_scene_1616x1565.jpg:
   - ours: rotated_det.engine.sliding_window.SlidingWindowInference (windows streamed, cut one
     batch at a time into a reused buffer, batched through the model, merged by class-wise NMS);
   - naive: every window cut and converted to a tensor first (all held), run one at a time,
     all detections concatenated and merged by one class-wise NMS at the end.
   Each runs in its own process so that its peak resident memory (ru_maxrss beyond the process's
   resident memory just before inference) is its own. Reports s/image and peak MB.
2. The same two pipelines on an 8000 x 8000 tiling of the scene with a model that detects
   nothing: the memory and time of the pipeline itself, which the model's share hides in 1.
3. Exported vs eager: latency of one patch through ``model([...])``, through the TorchScript
   module exported by rotated_det.export, through its AOTInductor package
   (rotated_det.export.aoti: torch.export compiled to C++ kernels, loaded with
   ``aoti_load_package``; ``--no-aoti`` skips it: the compilation takes minutes) and, when
   installed, through the ONNX file of
   ``export_onnx`` in ONNX Runtime and in OpenVINO (CPU, float32), each followed by the numpy
   NMS of rotated_det.export.onnx_postprocess (its share printed apart); median of --repeat
   runs after one warm-up, all with --threads threads. ``--no-onnx`` skips the ONNX rows (the
   export takes about a minute).

The model is the config's (default: the quickstart Rotated RetinaNet R-18) with the weights of
``train.init_checkpoint`` if set, else seeded random weights: timing does not depend on weights
beyond the number of detections (random weights detect nothing at the default score threshold;
``model.test_score_thresh=0.005`` makes them return many boxes, to include the merging cost).
On a shared machine use ``--threads 1``: OpenMP threads spin-waiting for busy cores make timings
several times slower and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENE = os.path.join(REPO, "tests", "data", "dota_samples", "unlabeled", "dota_scene_1616x1565.jpg")
DEFAULT_CONFIG = os.path.join(REPO, "configs", "quickstart", "rotated_retinanet_R_18_FPN.py")


def build_model(config_file: str, opts: list[str]):
    import torch

    from rotated_det.checkpoint import DetectionCheckpointer
    from rotated_det.config import LazyConfig, instantiate

    cfg = LazyConfig.apply_overrides(LazyConfig.load(config_file), opts)
    torch.manual_seed(0)
    model = instantiate(cfg.model).eval()
    weights = cfg.get("train", {}).get("init_checkpoint", "") if "train" in cfg else ""
    if weights:
        DetectionCheckpointer(model).load(weights)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class _NoOpDetector:
    """A model that returns no detection: measures the sliding-window pipeline alone."""

    input_format = "BGR"

    def parameters(self):
        return iter(())

    def __call__(self, batched_inputs):
        import torch

        from rotated_det.structures import Instances, RotatedBoxes

        outs = []
        for d in batched_inputs:
            inst = Instances((d["image"].shape[1], d["image"].shape[2]))
            inst.pred_boxes = RotatedBoxes(torch.zeros(0, 5))
            inst.scores = torch.zeros(0)
            inst.pred_classes = torch.zeros(0, dtype=torch.int64)
            outs.append({"instances": inst})
        return outs


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_variant(args) -> dict:
    """One sliding-window variant in this process; prints a JSON line."""
    import cv2
    import numpy as np
    import torch

    torch.set_num_threads(args.threads or torch.get_num_threads())
    if args.huge:
        # The scene tiled to huge x huge pixels, run through a model that detects nothing.
        model = _NoOpDetector()
        scene = cv2.imread(SCENE, cv2.IMREAD_COLOR)
        # Filled in place (no temporary copy, whose peak would count as the pipeline's).
        image = np.empty((args.huge, args.huge, 3), np.uint8)
        sh, sw = scene.shape[:2]
        for y in range(0, args.huge, sh):
            for x in range(0, args.huge, sw):
                image[y : y + sh, x : x + sw] = scene[: args.huge - y, : args.huge - x]
        del scene
    else:
        model = build_model(args.config_file, args.opts)
        image = cv2.imread(SCENE, cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"benchmark scene missing: {os.path.abspath(SCENE)}")
    from rotated_det.engine.sliding_window import SlidingWindowInference, generate_windows
    from rotated_det.layers import batched_nms_rotated

    # Warm-up on one patch (allocator, lazy init), then the baseline memory.
    with torch.no_grad():
        patch = torch.from_numpy(image[: args.patch_size, : args.patch_size].transpose(2, 0, 1))
        model([{"image": patch.float()}])
    base = rss_mb()
    start = time.perf_counter()
    if args.variant == "ours":
        infer = SlidingWindowInference(
            model,
            patch_size=args.patch_size,
            overlap=args.overlap,
            batch_size=args.batch_size,
            nms_threshold=0.1,
        )
        out = infer(image)
        n = len(out)
        windows = infer.stats["windows"]
    else:
        windows_list = generate_windows(*image.shape[:2], args.patch_size, args.overlap, (1.0,))
        patches = [
            torch.from_numpy(
                np.ascontiguousarray(image[w.y0 : w.y1, w.x0 : w.x1].transpose(2, 0, 1))
            ).float()
            for w in windows_list
        ]
        boxes, scores, classes = [], [], []
        with torch.no_grad():
            for w, p in zip(windows_list, patches):
                inst = model([{"image": p}])[0]["instances"]
                b = inst.pred_boxes.tensor.clone()
                b[:, 0] += w.x0
                b[:, 1] += w.y0
                boxes.append(b)
                scores.append(inst.scores)
                classes.append(inst.pred_classes)
        b, s, c = torch.cat(boxes), torch.cat(scores), torch.cat(classes)
        keep = batched_nms_rotated(b, s, c, 0.1)
        n = len(keep)
        windows = len(windows_list)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "variant": args.variant,
        "seconds": seconds,
        "peak_mb_over_base": peak - base,
        "detections": n,
        "windows": windows,
    }
    print(json.dumps(result))
    return result


def traced_vs_eager(args) -> dict:
    import warnings

    import cv2
    import torch

    from rotated_det.export import TracingAdapter, export_torchscript_tracing

    if args.threads:
        torch.set_num_threads(args.threads)
    model = build_model(args.config_file, args.opts)
    image = cv2.imread(SCENE, cv2.IMREAD_COLOR)
    x = torch.from_numpy(image[: args.patch_size, : args.patch_size].transpose(2, 0, 1).copy())
    x = x.float()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = export_torchscript_tracing(model, x).module
    adapter = TracingAdapter(model)

    def median_time(fn) -> float:
        with torch.no_grad():
            fn(x)
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                fn(x)
                times.append(time.perf_counter() - t)
        return statistics.median(times)

    eager_s = median_time(adapter)
    traced_s = median_time(traced)
    result = {"eager_s": eager_s, "traced_s": traced_s, "onnx": {}, "aoti": None}
    if not args.no_aoti:
        import tempfile

        from rotated_det.export.aoti import export_aoti, load_aoti_package

        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            package = export_aoti(model, x, os.path.join(tmp, "model.pt2"))
            compiled = load_aoti_package(package.package_path)
            result["aoti"] = {
                "total_s": median_time(compiled),
                "compile_s": package.compile_seconds,
            }
    if args.no_onnx:
        return result
    import contextlib
    import importlib.util
    import io
    import tempfile

    from rotated_det.export.onnx_export import export_onnx
    from rotated_det.export.onnx_postprocess import postprocess
    from rotated_det.export.onnx_runtime import RUNTIMES, OnnxDetector

    runtimes = [r for r in RUNTIMES if importlib.util.find_spec(r) is not None]
    if not runtimes:
        return result
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = os.path.join(tmp, "model.onnx")
        with contextlib.redirect_stdout(io.StringIO()):  # torch.onnx's progress lines
            export_onnx(model, x, path)
        xn = x.numpy()
        for runtime in runtimes:
            det = OnnxDetector(path, runtime, threads=args.threads or None)
            total = median_time(lambda _, d=det: d(xn))
            pre = det.pre_nms(xn)
            t = time.perf_counter()
            for _ in range(args.repeat):
                postprocess(*pre, det.iou_threshold, det.max_detections)
            nms = (time.perf_counter() - t) / args.repeat
            result["onnx"][runtime] = {"total_s": total, "nms_s": nms, "candidates": len(pre[1])}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config-file", default=DEFAULT_CONFIG)
    parser.add_argument("--patch-size", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX rows of part 3")
    parser.add_argument("--no-aoti", action="store_true", help="skip the AOTInductor row of part 3")
    parser.add_argument(
        "--exported-only", action="store_true", help="run part 3 only (exported vs eager)"
    )
    parser.add_argument(
        "--variant", choices=["ours", "naive"], default=None, help=argparse.SUPPRESS
    )
    parser.add_argument("--huge", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--huge-size", type=int, default=8000, help="side of the tiled scene of part 2"
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.variant:
        run_variant(args)
        return
    if not os.path.exists(SCENE):
        raise SystemExit(f"benchmark scene missing: {os.path.abspath(SCENE)}")
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))

    def variant(name: str, batch_size: int, huge: int = 0) -> dict:
        cmd = [sys.executable, os.path.abspath(__file__), "--variant", name]
        cmd += ["--config-file", args.config_file, "--patch-size", str(args.patch_size)]
        cmd += ["--overlap", str(args.overlap), "--batch-size", str(batch_size)]
        cmd += ["--threads", str(args.threads), "--huge", str(huge), *args.opts]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    if not args.exported_only:
        sliding_window_parts(args, variant)
    exported_part(args)


def sliding_window_parts(args, variant) -> None:
    rows = [
        ("naive (all cut first, 1 by 1)", variant("naive", 1)),
        ("ours, batch 1", variant("ours", 1)),
        (f"ours, batch {args.batch_size}", variant("ours", args.batch_size)),
    ]
    print(
        f"1. Sliding window on {os.path.basename(SCENE)} ({rows[1][1]['windows']} windows of "
        f"{args.patch_size} px, overlap {args.overlap}), {os.path.basename(args.config_file)}:"
    )
    print(f"{'':32s}{'s/image':>10s}{'peak MB':>10s}{'detections':>12s}")
    for name, r in rows:
        print(f"{name:32s}{r['seconds']:10.2f}{r['peak_mb_over_base']:10.0f}{r['detections']:12d}")
    huge_rows = [
        ("naive (all cut first)", variant("naive", 1, args.huge_size)),
        (f"ours, batch {args.batch_size}", variant("ours", args.batch_size, args.huge_size)),
    ]
    print(
        f"2. Pipeline alone on a {args.huge_size} x {args.huge_size} tiling of the scene "
        f"({huge_rows[1][1]['windows']} windows, a model that detects nothing):"
    )
    for name, r in huge_rows:
        print(f"{name:32s}{r['seconds']:10.2f}{r['peak_mb_over_base']:10.0f}")


def exported_part(args) -> None:
    tv = traced_vs_eager(args)
    print(
        f"3. One {args.patch_size} px patch: eager {tv['eager_s'] * 1000:.0f} ms, traced "
        f"{tv['traced_s'] * 1000:.0f} ms (median of {args.repeat}), "
        f"speed-up x{tv['eager_s'] / tv['traced_s']:.2f}"
    )
    if tv["aoti"]:
        r = tv["aoti"]
        print(
            f"   AOTInductor package: {r['total_s'] * 1000:.0f} ms, x"
            f"{tv['eager_s'] / r['total_s']:.2f} against eager, x"
            f"{tv['traced_s'] / r['total_s']:.2f} against traced "
            f"(compiled in {r['compile_s']:.0f} s)"
        )
    for runtime, r in tv["onnx"].items():
        print(
            f"   ONNX in {runtime}: {r['total_s'] * 1000:.0f} ms (of which numpy NMS of "
            f"{r['candidates']} candidates {r['nms_s'] * 1000:.0f} ms), x"
            f"{tv['eager_s'] / r['total_s']:.2f} against eager"
        )


if __name__ == "__main__":
    main()

"""The Ultralytics side of ``dev/bench_realtime.py``: run only by the Python of the separate
Ultralytics environment that bench_realtime.py creates (never by rotated_det's own environment,
and it never imports rotated_det). Each command writes its results as JSON to ``--out``.

    latency  forward latency of a YOLO-OBB model built from its model YAML (random weights), eager
             and traced (``torch.jit.trace``), without and with Ultralytics' post-processing
             (``non_max_suppression(rotated=True)`` at its predictor's defaults), Conv+BN unfused,
             fused (``model.fuse()``, as Ultralytics' predictor runs a model), fused with
             channels-last weights, and that under bfloat16 autocast (eager only); and the
             model's floating-point operations (torch's FlopCounterMode, 2 per multiply-add)
    nms      Ultralytics' rotated NMS (``TorchNMS.fast_nms`` with ``batch_probiou`` and the class
             offset, as ``non_max_suppression`` calls it) on the candidates of an ``.npz`` file
    train    train a model from its YAML (no pretrained weights) for a wall-clock budget
             (Ultralytics' ``time=`` argument, in hours)
    predict  predict with trained weights on a list of images; per image the detections as
             4-corner polygons (pixels), scores, classes and the model + NMS milliseconds

Shapes and units: images are uint8 ``[3, H, W]`` in RGB order (Ultralytics' input); boxes in the
``.npz`` candidates are ``(cx, cy, w, h, angle)`` in pixels and degrees counter-clockwise on screen
(rotated_det's convention), turned here into Ultralytics' ``xywhr`` (radians, clockwise on screen).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time

import numpy as np
import torch

# What each timed variant runs; the keys are the columns of bench_realtime.py's table.
VARIANTS = ("forward", "forward_traced", "with_nms", "with_nms_traced")


def _timed(fn, iters: int, warmup: int) -> tuple[float, list[float]]:
    """Median seconds of ``fn()`` over ``iters`` calls after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def _build(model_yaml: str, nc: int) -> torch.nn.Module:
    from ultralytics.nn.tasks import OBBModel

    torch.manual_seed(0)
    return OBBModel(model_yaml, nc=nc, verbose=False).eval()


def _head(model: torch.nn.Module):
    from ultralytics.nn.modules.head import Detect

    return next(m for m in model.modules() if isinstance(m, Detect))


def cmd_latency(args) -> dict:
    from ultralytics.utils.nms import non_max_suppression

    image = torch.from_numpy(np.load(args.image))  # uint8 [3, H, W], RGB
    if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"--image {args.image}: expected uint8 [3, H, W], got {image.dtype}")

    def prepare(img: torch.Tensor) -> torch.Tensor:
        # Ultralytics' predictor: float, 0-1 scale, batch of one
        return (img.float() / 255.0).unsqueeze(0)

    def nms(pred: torch.Tensor):
        # the OBB predictor's defaults (conf 0.25, IoU 0.7, 300 detections)
        return non_max_suppression(pred, 0.25, 0.7, max_det=300, nc=args.nc, rotated=True)

    results: dict = {"model": args.model, "nc": args.nc, "size": list(image.shape[1:])}
    # bench_realtime.VARIANTS
    for variant in ("unfused", "fused", "fused_channels_last", "bfloat16"):
        model = _build(args.model, args.nc)
        if variant == "unfused":  # the model as defined (fusing folds the BatchNorms into convs)
            from torch.utils.flop_counter import FlopCounterMode

            results["params"] = sum(p.numel() for p in model.parameters())
            with torch.no_grad(), FlopCounterMode(display=False) as flops:
                model(prepare(image))
            results["gflops"] = flops.get_total_flops() / 1e9
        else:
            model = model.fuse(verbose=False)
        if variant in ("fused_channels_last", "bfloat16"):
            model = model.to(memory_format=torch.channels_last)
        row: dict = {}
        timing = dict(iters=args.iters, warmup=args.warmup)
        if variant == "bfloat16":  # eager only; NMS on float32 predictions
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                row["forward"], _ = _timed(lambda m=model: m(prepare(image)), **timing)
                row["with_nms"], _ = _timed(
                    lambda m=model: nms(m(prepare(image))[0].float()), **timing
                )
            results[variant] = row
            print(f"{args.model} {variant}: {row}", flush=True)
            continue
        with torch.inference_mode():
            row["forward"], _ = _timed(lambda m=model: m(prepare(image)), **timing)
            row["with_nms"], _ = _timed(lambda m=model: nms(m(prepare(image))[0]), **timing)
        # Ultralytics' TorchScript exporter traces the model with the head in export mode (the
        # decoded predictions only)
        head = _head(model)
        head.export = True
        with torch.no_grad():
            traced = torch.jit.trace(model, prepare(image), check_trace=False)
            traced = torch.jit.freeze(traced) if args.freeze else traced
            row["forward_traced"], _ = _timed(lambda t=traced: t(prepare(image)), **timing)
            row["with_nms_traced"], _ = _timed(lambda t=traced: nms(t(prepare(image))), **timing)
        head.export = False
        results[variant] = row
        print(f"{args.model} {variant}: {row}", flush=True)
    return results


def xywhr_from_rotated_det(boxes: np.ndarray) -> torch.Tensor:
    """``[N, 5]`` (cx, cy, w, h, degrees CCW on screen) -> Ultralytics xywhr (radians, CW)."""
    out = torch.from_numpy(np.asarray(boxes, dtype=np.float32)).clone()
    out[:, 4] = -out[:, 4] * (math.pi / 180.0)
    return out


def cmd_nms(args) -> dict:
    from ultralytics.utils.metrics import batch_probiou
    from ultralytics.utils.nms import TorchNMS

    data = np.load(args.candidates)
    max_wh = 7680  # non_max_suppression's per-class offset
    rows = []
    for n in sorted({int(k.split("_")[1]) for k in data.files}):
        boxes = xywhr_from_rotated_det(data[f"boxes_{n}"])
        scores = torch.from_numpy(data[f"scores_{n}"])
        classes = torch.from_numpy(data[f"classes_{n}"]).float()
        offset = torch.cat([boxes[:, :2] + classes[:, None] * max_wh, boxes[:, 2:]], dim=1)
        for iou in args.iou:

            def run(offset=offset, scores=scores, iou=iou):
                return TorchNMS.fast_nms(offset, scores, iou, iou_func=batch_probiou)

            with torch.inference_mode():
                seconds, _ = _timed(run, args.iters, args.warmup)
                kept = int(run().numel())
            rows.append({"candidates": n, "iou": iou, "seconds": seconds, "kept": kept})
            print(f"ultralytics fast_nms n={n} iou={iou}: {seconds * 1e3:.2f} ms, {kept} kept")
    return {"rows": rows}


def cmd_train(args) -> dict:
    from ultralytics import YOLO

    model = YOLO(args.model, task="obb")
    # the training loop's own clock: from its start to the end of its last batch
    clock = {"batches": 0, "start": None, "last": None}

    def on_train_start(trainer) -> None:
        clock["start"] = time.perf_counter()

    def on_train_batch_end(trainer) -> None:
        clock["batches"] += 1
        clock["last"] = time.perf_counter()

    model.add_callback("on_train_start", on_train_start)
    model.add_callback("on_train_batch_end", on_train_batch_end)
    overrides = dict(
        data=args.data,
        imgsz=args.imgsz,
        time=args.minutes / 60.0,
        device="cpu",
        workers=args.workers,
        pretrained=False,
        project=args.project,
        name="train",
        exist_ok=True,
        plots=False,
        seed=0,
        verbose=True,
    )
    for kv in args.set:
        key, sep, value = kv.partition("=")
        if not sep:
            raise ValueError(f"--set {kv!r}: expected key=value")
        overrides[key] = _parse_value(value)
    t = time.perf_counter()
    model.train(**overrides)
    seconds = time.perf_counter() - t
    trainer = model.trainer
    save_dir = str(trainer.save_dir)
    return {
        "model": args.model,
        "weights": os.path.join(save_dir, "weights", "last.pt"),
        "seconds": seconds,
        "train_seconds": (clock["last"] or 0.0) - (clock["start"] or 0.0),
        "epochs_done": clock["batches"] / max(len(trainer.train_loader), 1),
        "batches": clock["batches"],
        "batch_size": int(trainer.batch_size),
        "accumulate": int(trainer.accumulate),
        "settings": {k: v for k, v in overrides.items() if k not in ("project", "data")},
    }


def _parse_value(value: str):
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(value.lower(), value)


def cmd_predict(args) -> dict:
    from ultralytics import YOLO

    with open(args.images, encoding="utf-8") as f:
        paths = [line.strip() for line in f if line.strip()]
    model = YOLO(args.weights, task="obb")
    images = []
    for r in model.predict(
        paths,
        imgsz=args.imgsz,
        conf=args.conf,
        iou=args.iou,
        max_det=args.max_det,
        device="cpu",
        verbose=False,
        stream=True,
    ):
        obb = r.obb
        images.append(
            {
                "file_name": r.path,
                "polygons": obb.xyxyxyxy.reshape(-1, 8).tolist(),
                "scores": obb.conf.tolist(),
                "classes": [int(c) for c in obb.cls.tolist()],
                "ms": float(r.speed["inference"] + r.speed["postprocess"]),
                "ms_preprocess": float(r.speed["preprocess"]),
            }
        )
    params = sum(p.numel() for p in model.model.parameters())
    return {"weights": args.weights, "params": params, "images": images}


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--threads", type=int, required=True, help="torch CPU threads")
    p.add_argument("--out", required=True, help="JSON file written with the results")
    sub = p.add_subparsers(dest="command", required=True)
    lat = sub.add_parser("latency")
    lat.add_argument("--model", required=True, help="model YAML, e.g. yolo11n-obb.yaml")
    lat.add_argument("--nc", type=int, required=True, help="number of classes")
    lat.add_argument("--image", required=True, help=".npy uint8 [3, H, W] RGB image")
    lat.add_argument("--iters", type=int, default=10)
    lat.add_argument("--warmup", type=int, default=3)
    lat.add_argument("--freeze", action="store_true", help="torch.jit.freeze the trace")
    nms = sub.add_parser("nms")
    nms.add_argument("--candidates", required=True, help=".npz of boxes_N, scores_N, classes_N")
    nms.add_argument("--iou", type=float, nargs="+", required=True)
    nms.add_argument("--iters", type=int, default=10)
    nms.add_argument("--warmup", type=int, default=3)
    tr = sub.add_parser("train")
    tr.add_argument("--model", required=True)
    tr.add_argument("--data", required=True, help="dataset YAML")
    tr.add_argument("--minutes", type=float, required=True, help="wall-clock training budget")
    tr.add_argument("--imgsz", type=int, required=True)
    tr.add_argument("--workers", type=int, default=1)
    tr.add_argument("--project", required=True, help="output folder")
    tr.add_argument("--set", nargs="*", default=[], help="more train arguments key=value")
    pr = sub.add_parser("predict")
    pr.add_argument("--weights", required=True)
    pr.add_argument("--images", required=True, help="text file, one image path a line")
    pr.add_argument("--imgsz", type=int, required=True)
    pr.add_argument("--conf", type=float, required=True)
    pr.add_argument("--iou", type=float, required=True)
    pr.add_argument("--max-det", type=int, required=True)
    return p


def main() -> None:
    args = get_parser().parse_args()
    torch.set_num_threads(args.threads)
    commands = {
        "latency": cmd_latency,
        "nms": cmd_nms,
        "train": cmd_train,
        "predict": cmd_predict,
    }
    result = commands[args.command](args)
    import ultralytics

    result["ultralytics"] = ultralytics.__version__
    result["torch"] = torch.__version__
    result["threads"] = torch.get_num_threads()
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Rotated RTMDet side by side with Ultralytics YOLO-OBB on this CPU (issue 17).

    python dev/bench_realtime.py                       # latency part (minutes)
    python dev/bench_realtime.py --accuracy --minutes 15 --threads 1 --no-latency

Ultralytics is never a dependency of rotated_det: on first use the script creates a separate
virtual environment (``--venv``, default ``output/bench_realtime/venv-ultralytics``) whose
``.pth`` file puts rotated_det's torch / torchvision / numpy / opencv on its path (nothing is
downloaded again), installs ``ultralytics==8.4.190`` there with ``--no-deps``, then the few
packages it still imports (found by trying the imports this benchmark uses; see
:data:`EXTRA_PACKAGES`). The YOLO side runs in that environment's Python
(``dev/bench_realtime_yolo.py``), each measurement in a fresh process with the same thread count
(``--threads``, OMP/MKL and ``torch.set_num_threads``) as rotated_det's, which also runs each
measurement in a fresh process (this script with ``--worker``).

Latency part (random weights, eval mode, batch 1, one ``--size`` x ``--size`` image, median of
``--iters`` after ``--warmup``):

- RTMDet-R tiny and s (``configs/DOTA-Rotated/rotated_rtmdet_{tiny,s}_3x.py``, 15 classes);
  YOLO11n-obb and YOLO11s-obb from their model YAMLs (15 classes); each Conv+BN unfused (the
  same network as trained), fused (rotated_det's ``fuse_conv_bn``; Ultralytics' ``model.fuse()``,
  as its predictor runs it) and fused with channels-last weights
  (``rotated_det.layers.to_channels_last``, as DefaultPredictor runs a model on a CPU;
  Ultralytics' predictor does not);
- ``forward``: the network alone: pixel normalisation, backbone, neck, head (YOLO's head also
  decodes every box; RTMDet decodes only the candidates it keeps, in post-processing);
- ``+ post``: the whole detector: forward + candidate selection + rotated NMS at each library's
  defaults (RTMDet: score 0.05, 2000 candidates a level, NMS IoU 0.1; YOLO: conf 0.25, IoU 0.7).
  With random weights hardly any candidate passes the score threshold, so this column measures
  the fixed cost of post-processing; the NMS table measures NMS on many candidates;
- eager and traced (``torch.jit.trace``; RTMDet through rotated_det's TracingAdapter, YOLO with
  its head in export mode as Ultralytics' TorchScript exporter traces it; YOLO's NMS stays in
  Python after the trace, as in Ultralytics' TorchScript deployment);
- rotated NMS on the same candidates (``--nms-candidates``; clusters of 20 jittered boxes around
  objects, 15 classes, like a detector's output): rotated_det's compiled ``batched_nms_rotated``
  (exact rotated IoU, greedy) against Ultralytics' ``TorchNMS.fast_nms`` with ``batch_probiou``
  (a Gaussian approximation of IoU, Fast-NMS), at IoU 0.1 (RTMDet's) and 0.7 (YOLO's). The
  kept counts differ by design: Fast-NMS also lets suppressed boxes suppress, and probiou is
  not IoU (on 5000 candidates at 0.7: 1400 kept by greedy NMS on exact IoU, 431 by fast_nms).

Accuracy part (``--accuracy``): the synthetic dataset's 512 px training patches (the quickstart's
``synthetic_train_512``) exported to YOLO-OBB with ``tools/convert_dataset.py``; YOLO11n-obb
trained from its YAML (no pretrained weights) with ``time=`` the budget, at ``imgsz=512`` (the
patch size: objects at the scale RTMDet sees them), the settings of :data:`YOLO_TRAIN_SETTINGS`;
RTMDet-R tiny trained with ``dev/quickstart.py`` and ``configs/quickstart/synthetic_rtmdet_tiny.py``
for ``max_iter = budget / (seconds per iteration)``, measured first with a short calibration run
under the same conditions. Both are then scored by the same code: the quickstart config's
DOTAEvaluator (validation patches merged back into the 12 validation scenes, DOTA mAP), fed with
each model's predictions on the validation patches (YOLO at conf 0.001, IoU 0.7, 300
detections, its validation settings; RTMDet at its config's). The table also gives each trained
model's latency per 512 px patch (model + post-processing, median over the patches, trained
weights so NMS sees real candidates). With ``--threads 1`` the two trainings run at the same
time, one thread each, so that both see the same machine; otherwise one after the other.

Results go to ``--output-dir`` (``latency.json``, ``accuracy.json``, logs of every process).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import sysconfig
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

ULTRALYTICS_VERSION = "8.4.190"
DEFAULT_OUTPUT = os.path.join("output", "bench_realtime")
YOLO_SIDE = os.path.join(ROOT, "dev", "bench_realtime_yolo.py")
# The latency variants of every model (bench_realtime_yolo.py times the same four), in the
# table's order, and their labels there. The bfloat16 one runs the fused channels-last model under
# torch.autocast (eager only: traced modules are float32); CPUs with AMX or AVX512-BF16 run it
# natively, others emulate it slowly.
VARIANTS = ("unfused", "fused", "fused_channels_last", "bfloat16")
VARIANT_LABELS = {
    "unfused": "",
    "fused": ", Conv+BN fused",
    "fused_channels_last": ", fused, channels-last weights",
    "bfloat16": ", fused, channels-last, bfloat16 autocast",
}
NUM_CLASSES = 15  # DOTA v1.0, for the latency part
RTMDET_LATENCY = {
    "RTMDet-R tiny": "configs/DOTA-Rotated/rotated_rtmdet_tiny_3x.py",
    "RTMDet-R s": "configs/DOTA-Rotated/rotated_rtmdet_s_3x.py",
}
YOLO_LATENCY = {"YOLO11n-obb": "yolo11n-obb.yaml", "YOLO11s-obb": "yolo11s-obb.yaml"}
RTMDET_QUICKSTART = "configs/quickstart/synthetic_rtmdet_tiny.py"
YOLO_ACCURACY_MODEL = "yolo11n-obb.yaml"
PATCH_SIZE = 512  # the synthetic patches (rotated_det.data.datasets.builtin.SYNTHETIC_SPLIT)
# Ultralytics' train defaults except:
# - batch 8 and nbs 8 (nominal batch): the default nbs 64 accumulates gradients over 64 images,
#   i.e. 4 optimizer steps per epoch of the 252 patches, a few dozen in 15 minutes;
# - close_mosaic 2: the default 10 counts from the end of the epochs that time= re-estimates
#   after each epoch (about 10 in 15 minutes), which would switch mosaic off after the first;
# - flipud 0.5: vertical flips, as the rotated_det recipe (aerial views have no up);
# - val False: no validation after each epoch (the budget is for training; Ultralytics still
#   validates after the last one).
YOLO_TRAIN_SETTINGS = {"batch": 8, "nbs": 8, "close_mosaic": 2, "flipud": 0.5, "val": False}
# Validation settings of Ultralytics' OBB validator, used to predict for the mAP
YOLO_EVAL = {"conf": 0.001, "iou": 0.7, "max_det": 300}
# module a probe found missing -> pinned packages to install (--no-deps) into the YOLO venv
EXTRA_PACKAGES = {
    "polars": ["polars==2.1.0", "polars-runtime-32==2.1.0"],
    "psutil": ["psutil==7.2.2"],
    "requests": [
        "requests==2.34.2",
        "urllib3==2.8.0",
        "charset-normalizer==3.5.3",
        "certifi==2026.10.19.post1",
    ],
    "thop": ["ultralytics-thop==2.2.3"],
}
# imported by Ultralytics along the paths this benchmark runs (some only lazily, e.g. polars
# when a checkpoint is saved)
PROBE_MODULES = [
    "ultralytics",
    "ultralytics.nn.tasks",
    "ultralytics.utils.nms",
    "ultralytics.models.yolo.obb",
    "ultralytics.engine.trainer",
    "polars",
]


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Rotated RTMDet vs Ultralytics YOLO-OBB: latency and accuracy on this CPU",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    p.add_argument("--output-dir", default=DEFAULT_OUTPUT)
    p.add_argument("--venv", default=None, help="Ultralytics venv (default <output-dir>/venv-...)")
    p.add_argument("--ultralytics-version", default=ULTRALYTICS_VERSION)
    p.add_argument("--threads", type=int, default=2, help="torch threads of every process")
    p.add_argument("--size", type=int, default=1024, help="latency image side (pixels)")
    p.add_argument("--iters", type=int, default=10, help="timed runs (median reported)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first")
    p.add_argument(
        "--nms-candidates",
        type=int,
        nargs="+",
        default=[300, 1000, 3000],
        help="NMS sizes (Ultralytics' fast_nms builds an N x N probiou matrix: 5000 takes seconds)",
    )
    p.add_argument("--no-latency", action="store_true", help="skip the latency part")
    p.add_argument("--accuracy", action="store_true", help="train both and compare mAP")
    p.add_argument("--minutes", type=float, default=15.0, help="training budget of each model")
    p.add_argument(
        "--skip-train",
        action="store_true",
        help="--accuracy: score the models of the last run in --output-dir again",
    )
    p.add_argument(
        "--calibration-iters", type=int, default=20, help="timed RTMDet iterations for s/iter"
    )
    p.add_argument(
        "--yolo-set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="YOLO train arguments over YOLO_TRAIN_SETTINGS",
    )
    p.add_argument(
        "--datasets-root",
        default=os.environ.get("ROTATED_DET_DATASETS", "datasets"),
        help="$ROTATED_DET_DATASETS: the synthetic dataset is in <root>/synthetic",
    )
    # internal: one measurement of the rotated_det side in a fresh process
    p.add_argument("--worker", choices=["latency", "nms", "calibrate", "evaluate"], default=None)
    p.add_argument("--worker-args", default="{}", help=argparse.SUPPRESS)
    return p


# ---------------------------------------------------------------------------------------------
# processes


def thread_env(threads: int, extra: dict | None = None) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(extra or {}))
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def start(cmd: list[str], env: dict, log_path: str) -> tuple[subprocess.Popen, object]:
    """Start ``cmd`` from the repository root, its output going to ``log_path``."""
    print("$ " + " ".join(shlex.quote(c) for c in cmd) + f"   (log: {log_path})", flush=True)
    log = open(log_path, "w", encoding="utf-8")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc, log


def finish(proc: subprocess.Popen, log, log_path: str, what: str) -> None:
    rc = proc.wait()
    log.close()
    if rc != 0:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            tail = f.readlines()[-30:]
        raise SystemExit(
            f"bench_realtime: {what} failed with exit code {rc} (log: {log_path}):\n"
            + "".join(tail)
        )


def run_json(cmd: list[str], env: dict, json_path: str, what: str) -> dict:
    """Run ``cmd`` to completion (log next to ``json_path``) and read the JSON it wrote."""
    log_path = json_path[: -len(".json")] + ".log"
    proc, log = start(cmd, env, log_path)
    finish(proc, log, log_path, what)
    with open(json_path, encoding="utf-8") as f:
        return json.load(f)


def worker_cmd(name: str, json_path: str, threads: int, **kwargs) -> list[str]:
    args = dict(kwargs, json_out=json_path, threads=threads)
    return [sys.executable, os.path.abspath(__file__), "--worker", name, "--worker-args",
            json.dumps(args)]  # fmt: skip


def yolo_cmd(py: str, command: str, json_path: str, threads: int, *args: str) -> list[str]:
    return [py, YOLO_SIDE, "--threads", str(threads), "--out", json_path, command, *args]


# ---------------------------------------------------------------------------------------------
# the Ultralytics environment


def ensure_ultralytics_venv(venv: str, version: str) -> str:
    """Create (once) the Ultralytics virtual environment; return its Python.

    Reuses this environment's site-packages (torch, torchvision, numpy, opencv, ...) through a
    ``.pth`` file; installs ``ultralytics==version`` with ``--no-deps`` and then the packages of
    :data:`EXTRA_PACKAGES` that the probe of :data:`PROBE_MODULES` finds missing.
    """
    venv = os.path.abspath(venv)
    py = os.path.join(venv, "bin", "python")
    ours = sysconfig.get_paths()["purelib"]
    stamp = os.path.join(venv, "rotated_det_bench.json")
    want = {"ultralytics": version, "site_packages": ours}
    if os.path.isfile(stamp) and os.path.isfile(py):
        with open(stamp, encoding="utf-8") as f:
            if json.load(f) == want:
                return py
    print(f"Creating the Ultralytics environment {venv} (ultralytics=={version})", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", venv], check=True)
    theirs = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # appended after the venv's own site-packages: what is installed there wins
    with open(os.path.join(theirs, "_rotated_det_site_packages.pth"), "w") as f:
        f.write(ours + "\n")
    pip = [py, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, f"ultralytics=={version}"], check=True)
    installed: set[str] = set()
    probe = "import importlib, sys\nfor m in sys.argv[1:]:\n" + (
        "    try:\n        importlib.import_module(m)\n"
        "    except ModuleNotFoundError as e:\n        print('MISSING:' + e.name); break\n"
    )
    for _ in range(len(EXTRA_PACKAGES) + 1):
        stdout = subprocess.run(
            [py, "-c", probe, *PROBE_MODULES],
            capture_output=True,
            text=True,
            env=dict(os.environ, YOLO_CONFIG_DIR=os.path.join(venv, "ultralytics-config")),
        ).stdout  # Ultralytics may print its own lines too
        missing = next((ln[8:] for ln in stdout.splitlines() if ln.startswith("MISSING:")), "")
        if not missing:
            break
        top = missing.split(".")[0]
        if top not in EXTRA_PACKAGES or top in installed:
            raise SystemExit(
                f"bench_realtime: ultralytics=={version} imports {missing!r}, which the "
                f"environment {venv} lacks and EXTRA_PACKAGES does not list (or installing it "
                "did not help): add its pinned package there"
            )
        print(f"  ultralytics imports {top}: installing {EXTRA_PACKAGES[top]}", flush=True)
        subprocess.run([*pip, *EXTRA_PACKAGES[top]], check=True)
        installed.add(top)
    with open(stamp, "w", encoding="utf-8") as f:
        json.dump(want, f)
    return py


def yolo_env(args, threads: int) -> dict:
    config = os.path.join(os.path.abspath(args.output_dir), "ultralytics-config")
    # settings and runs under the output folder; never install or download anything
    return thread_env(
        threads,
        {"YOLO_CONFIG_DIR": config, "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false"},
    )


# ---------------------------------------------------------------------------------------------
# rotated_det workers (each run in a fresh process by --worker)


def _median_seconds(fn, iters: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def worker_latency(w: dict) -> dict:
    """Forward latency of a rotated_det detector (random weights): the network alone and the
    whole detector, eager and traced; and the network's floating-point operations."""
    import numpy as np
    import torch
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

    from rotated_det.config import LazyConfig, instantiate
    from rotated_det.export import TracingAdapter
    from rotated_det.layers import fuse_conv_bn, to_channels_last

    cfg = LazyConfig.load(os.path.join(ROOT, w["config"])).model
    cfg.num_classes = NUM_CLASSES
    torch.manual_seed(0)
    model = instantiate(cfg).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    rgb = np.load(w["image"])  # uint8 [3, H, W]
    image = torch.from_numpy(np.ascontiguousarray(rgb[::-1])).float()  # BGR, 0-255

    class Network(nn.Module):
        """Normalisation, backbone, neck and head: flattened head outputs of all levels."""

        def __init__(self, detector: nn.Module):
            super().__init__()
            self.detector = detector

        def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, ...]:
            images = self.detector.preprocess_image([{"image": img}])
            _, logits, distances, angles = self.detector.head_outputs(images.tensor)
            return torch.cat(logits, 1), torch.cat(distances, 1), torch.cat(angles, 1)

    result: dict = {"params": sum(p.numel() for p in model.parameters())}
    with torch.no_grad(), FlopCounterMode(display=False) as flops:
        Network(model)(image)
    result["gflops"] = flops.get_total_flops() / 1e9  # 2 per multiply-add
    for variant in VARIANTS:
        if variant == "fused":
            fuse_conv_bn(model)
        elif variant == "fused_channels_last":  # as DefaultPredictor runs it on a CPU
            to_channels_last(model)
        result[variant] = _latency_row(
            Network(model).eval(), TracingAdapter(model).eval(), image, w, variant == "bfloat16"
        )
    return result


def _latency_row(network, detector, image, w: dict, bfloat16: bool) -> dict:
    """Median seconds of the network alone and of the whole detector, eager and traced (eager
    only, under bfloat16 autocast, if ``bfloat16``)."""
    import torch

    def timed(fn) -> float:
        return _median_seconds(fn, w["iters"], w["warmup"])

    if bfloat16:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            return {
                "forward": timed(lambda: network(image)),
                "with_nms": timed(lambda: detector(image)),
            }
    with torch.no_grad():
        traced_net = torch.jit.trace(network, (image,), check_trace=False)
        traced_det = torch.jit.trace(detector, (image,), check_trace=False)
        return {
            "forward": timed(lambda: network(image)),
            "with_nms": timed(lambda: detector(image)),
            "forward_traced": timed(lambda: traced_net(image)),
            "with_nms_traced": timed(lambda: traced_det(image)),
        }


def worker_nms(w: dict) -> dict:
    """rotated_det's batched_nms_rotated on the candidates of an .npz file."""
    import numpy as np
    import torch

    from rotated_det.layers import batched_nms_rotated

    data = np.load(w["candidates"])
    rows = []
    for n in sorted({int(k.split("_")[1]) for k in data.files}):
        boxes = torch.from_numpy(data[f"boxes_{n}"])
        scores = torch.from_numpy(data[f"scores_{n}"])
        classes = torch.from_numpy(data[f"classes_{n}"])
        for iou in w["iou"]:

            def run(boxes=boxes, scores=scores, classes=classes, iou=iou):
                return batched_nms_rotated(boxes, scores, classes, iou)

            seconds = _median_seconds(run, w["iters"], w["warmup"])
            rows.append({"candidates": n, "iou": iou, "seconds": seconds, "kept": len(run())})
    return {"rows": rows}


def worker_calibrate(w: dict) -> dict:
    """Median seconds per training iteration of a config (its model, data and optimizer), over
    ``iters`` iterations after ``warmup``, without hooks (no evaluation, no checkpoint)."""
    from rotated_det.config import LazyConfig
    from rotated_det.engine import DefaultTrainer
    from rotated_det.utils.events import EventStorage

    cfg = LazyConfig.load(os.path.join(ROOT, w["config"]))
    cfg = LazyConfig.apply_overrides(cfg, [f"train.output_dir={w['output_dir']}"])
    os.makedirs(w["output_dir"], exist_ok=True)
    trainer = DefaultTrainer(cfg)
    times = []
    with EventStorage(0) as storage:
        for it in range(w["warmup"] + w["iters"]):
            trainer.iter = storage.iter = it
            t = time.perf_counter()
            trainer.run_step()
            if it >= w["warmup"]:
                times.append(time.perf_counter() - t)
    return {"sec_per_iter": statistics.median(times), "times": times}


def _instances_from_polygons(polygons, scores, classes, image_size):
    import numpy as np
    import torch

    from rotated_det.structures import Instances, RotatedBoxes, poly_to_rbox

    polys = np.asarray(polygons, dtype=np.float64).reshape(-1, 8)
    inst = Instances(image_size)
    inst.pred_boxes = RotatedBoxes(torch.from_numpy(poly_to_rbox(polys)).float())
    inst.scores = torch.tensor(scores, dtype=torch.float32).reshape(-1)
    inst.pred_classes = torch.tensor(classes, dtype=torch.int64).reshape(-1)
    return inst


def worker_evaluate(w: dict) -> dict:
    """DOTA mAP of one model on the config's test set with the config's evaluator: a rotated_det
    checkpoint (``weights``) run here, or YOLO predictions (``predictions``: the JSON of
    bench_realtime_yolo.py predict, polygons in pixels) fed to the same evaluator."""
    import torch

    from rotated_det.config import LazyConfig, instantiate
    from rotated_det.data import DatasetCatalog

    cfg = LazyConfig.load(os.path.join(ROOT, w["config"]))
    cfg.dataloader.evaluator.output_dir = w["output_dir"]
    evaluator = instantiate(cfg.dataloader.evaluator)
    evaluator.reset()
    times_ms: list[float] = []
    if w.get("weights"):
        from rotated_det.engine import DefaultTrainer
        from rotated_det.engine.model_ema import load_inference_weights

        cfg.train.device = "cpu"
        model = DefaultTrainer.build_model(cfg).eval()
        load_inference_weights(model, w["weights"], use_ema=False)
        params = sum(p.numel() for p in model.parameters())
        with torch.no_grad():
            for inputs in instantiate(cfg.dataloader.test):
                t = time.perf_counter()
                outputs = model(inputs)
                times_ms.append((time.perf_counter() - t) * 1e3)
                evaluator.process(inputs, outputs)
    else:
        with open(w["predictions"], encoding="utf-8") as f:
            pred = json.load(f)
        params = pred["params"]
        by_file = {os.path.realpath(p["file_name"]): p for p in pred["images"]}
        for d in DatasetCatalog.get(cfg.dataloader.test.dataset.names):
            p = by_file.get(os.path.realpath(d["file_name"]))
            if p is None:
                raise KeyError(f"{w['predictions']}: no predictions for {d['file_name']}")
            inst = _instances_from_polygons(
                p["polygons"], p["scores"], p["classes"], (d["height"], d["width"])
            )
            evaluator.process([d], [{"instances": inst}])
            times_ms.append(p["ms"])
    results = evaluator.evaluate()["rbox"]
    return {
        "mAP50": float(results["AP50"]),
        "mAP75": float(results["AP75"]),
        "params": params,
        "ms_per_patch": statistics.median(times_ms),
        "images": len(times_ms),
    }


WORKERS = {
    "latency": worker_latency,
    "nms": worker_nms,
    "calibrate": worker_calibrate,
    "evaluate": worker_evaluate,
}


def run_worker(name: str, worker_args: str) -> None:
    import torch

    w = json.loads(worker_args)
    torch.set_num_threads(int(w["threads"]))
    result = WORKERS[name](w)
    result["threads"] = torch.get_num_threads()
    result["torch"] = torch.__version__
    with open(w["json_out"], "w", encoding="utf-8") as f:
        json.dump(result, f)


# ---------------------------------------------------------------------------------------------
# latency part


def nms_candidates(sizes: list[int], image_size: int, path: str, seed: int = 0) -> None:
    """Write ``boxes_N`` [N, 5] (cx, cy, w, h, degrees CCW), ``scores_N`` [N] and
    ``classes_N`` [N] for each N: clusters of 20 jittered boxes around N / 20 objects, as a
    detector's candidates before NMS."""
    import numpy as np

    rng = np.random.default_rng(seed)
    arrays = {}
    for n in sizes:
        objects = max(n // 20, 1)
        centres = rng.uniform(0, image_size, (objects, 2))
        sizes_wh = rng.uniform(12, 96, (objects, 2))
        angles = rng.uniform(-90, 90, objects)
        which = rng.integers(0, objects, n)
        jitter = rng.normal(0, 1, (n, 5)) * np.array([3, 3, 4, 4, 5])
        boxes = np.concatenate([centres[which], sizes_wh[which], angles[which, None]], 1) + jitter
        boxes[:, 2:4] = np.maximum(boxes[:, 2:4], 2.0)
        arrays[f"boxes_{n}"] = boxes.astype(np.float32)
        arrays[f"scores_{n}"] = rng.uniform(0.05, 1.0, n).astype(np.float32)
        arrays[f"classes_{n}"] = rng.integers(0, NUM_CLASSES, objects)[which].astype(np.int64)
    np.savez(path, **arrays)


def latency_part(args, py: str) -> dict:
    import numpy as np

    out = os.path.join(os.path.abspath(args.output_dir), "latency")
    os.makedirs(out, exist_ok=True)
    image = os.path.join(out, f"image_{args.size}.npy")
    rng = np.random.default_rng(0)
    np.save(image, rng.integers(0, 256, (3, args.size, args.size), dtype=np.uint8))
    candidates = os.path.join(out, "nms_candidates.npz")
    nms_candidates(args.nms_candidates, args.size, candidates)
    timing = dict(iters=args.iters, warmup=args.warmup)
    env = thread_env(args.threads)
    yenv = yolo_env(args, args.threads)
    load = {"start": os.getloadavg()[0]}
    models = {}
    for name, config in RTMDET_LATENCY.items():
        path = os.path.join(out, f"{name.replace(' ', '_')}.json")
        cmd = worker_cmd("latency", path, args.threads, config=config, image=image, **timing)
        models[name] = {**run_json(cmd, env, path, f"latency of {name}"), "side": "rotated_det"}
    for name, yaml in YOLO_LATENCY.items():
        path = os.path.join(out, f"{name}.json")
        cmd = yolo_cmd(py, "latency", path, args.threads, "--model", yaml, "--nc",
                       str(NUM_CLASSES), "--image", image, "--iters", str(args.iters),
                       "--warmup", str(args.warmup))  # fmt: skip
        models[name] = {**run_json(cmd, yenv, path, f"latency of {name}"), "side": "ultralytics"}
    ious = ["0.1", "0.7"]
    path = os.path.join(out, "nms_rotated_det.json")
    ours = run_json(
        worker_cmd("nms", path, args.threads, candidates=candidates, iou=[0.1, 0.7], **timing),
        env,
        path,
        "rotated_det NMS",
    )
    path = os.path.join(out, "nms_ultralytics.json")
    theirs = run_json(
        yolo_cmd(
            py,
            "nms",
            path,
            args.threads,
            "--candidates",
            candidates,
            "--iou",
            *ious,
            "--iters",
            str(args.iters),
            "--warmup",
            str(args.warmup),
        ),  # fmt: skip
        yenv,
        path,
        "Ultralytics NMS",
    )
    load["end"] = os.getloadavg()[0]
    result = {
        "size": args.size,
        "threads": args.threads,
        "iters": args.iters,
        "warmup": args.warmup,
        "load_average": load,
        "ultralytics": theirs.get("ultralytics"),
        "models": models,
        "nms": {"rotated_det": ours["rows"], "ultralytics": theirs["rows"]},
    }
    with open(os.path.join(os.path.abspath(args.output_dir), "latency.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(latency_table(result), flush=True)
    return result


def latency_table(r: dict) -> str:
    """The latency and NMS tables of a latency result (milliseconds)."""
    lines = [
        "",
        f"Forward latency, one {r['size']} x {r['size']} image, batch 1, {r['threads']} "
        f"thread(s), random weights, median of {r['iters']} after {r['warmup']} warm-up "
        f"(load average {r['load_average']['start']:.1f} -> {r['load_average']['end']:.1f}); "
        f"Ultralytics {r['ultralytics']}",
        "| model | params (M) | GFLOPs | forward eager (ms) | forward traced | + post eager | "
        "+ post traced |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]

    def ms(t: dict, key: str) -> str:
        return f"{t[key] * 1e3:.0f}" if key in t else "-"

    for name, m in r["models"].items():
        gflops = f"{m['gflops']:.1f}" if "gflops" in m else "?"
        for variant in VARIANTS:
            if variant not in m:
                continue
            t = m[variant]
            label = name + VARIANT_LABELS[variant]
            lines.append(
                f"| {label} | {m['params'] / 1e6:.2f} | {gflops} | {ms(t, 'forward')} | "
                f"{ms(t, 'forward_traced')} | {ms(t, 'with_nms')} | {ms(t, 'with_nms_traced')} |"
            )
    lines += [
        "",
        "Rotated NMS on the same candidates (15 classes; ms, boxes kept): rotated_det "
        "batched_nms_rotated (exact IoU) | Ultralytics fast_nms + batch_probiou",
        "| candidates | IoU | rotated_det ms | kept | Ultralytics ms | kept |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    theirs = {(x["candidates"], x["iou"]): x for x in r["nms"]["ultralytics"]}
    for x in r["nms"]["rotated_det"]:
        y = theirs.get((x["candidates"], x["iou"]), {"seconds": math.nan, "kept": -1})
        lines.append(
            f"| {x['candidates']} | {x['iou']} | {x['seconds'] * 1e3:.2f} | {x['kept']} | "
            f"{y['seconds'] * 1e3:.2f} | {y['kept']} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# accuracy part


def export_yolo_dataset(split_root: str, out: str) -> str:
    """The synthetic train / val patches in YOLO-OBB format under ``out`` (images linked), and
    a dataset YAML; returns the YAML's path. Reused when already there."""
    import importlib.util

    from rotated_det.data.datasets.synthetic import SYNTHETIC_CLASSES

    yaml_path = os.path.join(out, "data.yaml")
    if os.path.isfile(yaml_path):
        print(f"YOLO-OBB export: reusing {out}", flush=True)
        return yaml_path
    spec = importlib.util.spec_from_file_location(
        "convert_dataset", os.path.join(ROOT, "tools", "convert_dataset.py")
    )
    assert spec is not None and spec.loader is not None
    convert = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(convert)
    classes = list(SYNTHETIC_CLASSES)  # the class indices rotated_det trains with
    for split in ("train", "val"):
        dicts, names = convert.read_dataset("dota", os.path.join(split_root, split), None, classes)
        counts = convert.write_dataset(
            dicts, names, "yolo-obb", os.path.join(out, split), images="link", progress=False
        )
        print(f"YOLO-OBB export of {split}: {counts}", flush=True)
    lines = [f"path: {json.dumps(os.path.abspath(out))}", "train: train/images",
             "val: val/images", "names:",
             *(f"  {i}: {json.dumps(n)}" for i, n in enumerate(classes))]  # fmt: skip
    with open(yaml_path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return yaml_path


def read_quickstart_summary(summary_path: str) -> tuple[int, float | None, float]:
    """Iterations, median seconds per iteration and mAP50 of a dev/quickstart.py run."""
    with open(summary_path, encoding="utf-8") as f:
        s = json.load(f)
    return int(s["iterations"]), s.get("sec_per_iter"), float(s["mAP50"])


def labels_as_predictions(label_dir: str, dicts: list[dict], path: str) -> None:
    """Write the YOLO-OBB labels of the images of ``dicts`` as a predictions JSON (the format of
    bench_realtime_yolo.py predict): polygons in pixels, each scored by its area so that an
    object cut by a patch border ranks below its whole copy in the overlapping patch. Scored
    like YOLO's predictions, they must reach mAP50 ~100: this checks the export (class order,
    coordinates) and the conversion of polygons, without a model."""
    import numpy as np

    images = []
    for d in dicts:
        stem = os.path.splitext(os.path.basename(d["file_name"]))[0]
        with open(os.path.join(label_dir, stem + ".txt"), encoding="utf-8") as f:
            rows = [line.split() for line in f if line.strip()]
        values = np.array([[float(v) for v in r[1:]] for r in rows]).reshape(-1, 8)
        polys = values * np.array([d["width"], d["height"]] * 4)
        x, y = polys[:, 0::2], polys[:, 1::2]
        area = 0.5 * np.abs((x * np.roll(y, -1, 1) - np.roll(x, -1, 1) * y).sum(1))
        images.append(
            {
                "file_name": d["file_name"],
                "polygons": polys.tolist(),
                "scores": (area / (area.max() + 1.0) if len(area) else area).tolist(),
                "classes": [int(r[0]) for r in rows],
                "ms": 0.0,
            }
        )
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"params": 0, "images": images}, f)


def wait_for_yolo_epochs(yolo_log: str, timeout_s: float = 600.0) -> None:
    """Block until YOLO's training log shows its epoch loop, so that RTMDet's calibration runs
    beside YOLO's training rather than its dataset scan and model set-up (a precaution: on an
    otherwise idle machine the calibration, 0.458 s/iter, matched the training, 0.453; a run whose
    training was 2x slower than its calibration had another job loading the machine)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with open(yolo_log, encoding="utf-8", errors="replace") as f:
            if "Epoch" in f.read():
                return
        time.sleep(5)
    print(f"bench_realtime: no YOLO epoch in {yolo_log} after {timeout_s:.0f} s", flush=True)


def train_rtmdet(
    args, env: dict, out: str, datasets: str, yolo_log: str | None
) -> tuple[dict, int, float]:
    """RTMDet-R tiny for the budget: its seconds per iteration first (a short run under the
    same conditions: beside YOLO's epochs when ``yolo_log`` is given), then the quickstart for
    ``budget / s_per_iter`` iterations. Returns the calibration, the iterations and the
    quickstart's wall-clock seconds."""
    threads = args.threads
    if yolo_log is not None:
        wait_for_yolo_epochs(yolo_log)
    calib_json = os.path.join(out, "rtmdet_calibration.json")
    calib = run_json(
        worker_cmd(
            "calibrate",
            calib_json,
            threads,
            config=RTMDET_QUICKSTART,
            output_dir=os.path.join(out, "rtmdet_calibration"),
            iters=args.calibration_iters,
            warmup=2,
        ),  # fmt: skip
        env,
        calib_json,
        "RTMDet calibration",
    )
    max_iter = max(int(args.minutes * 60 / calib["sec_per_iter"]), 1)
    print(f"RTMDet-R tiny: {calib['sec_per_iter']:.2f} s/iter -> {max_iter} iterations", flush=True)
    rtm_train = [
        sys.executable, os.path.join(ROOT, "dev", "quickstart.py"), "--config-file",
        RTMDET_QUICKSTART, "--output-dir", os.path.join(out, "rtmdet_tiny"),
        "--datasets-root", datasets, "--max-iter", str(max_iter), "--num-threads", str(threads),
        "--num-draw", "0",
    ]  # fmt: skip
    rtm_log = os.path.join(out, "rtmdet_train.log")
    t = time.perf_counter()
    finish(*start(rtm_train, env, rtm_log), rtm_log, "RTMDet training")
    return calib, max_iter, time.perf_counter() - t


def train_both(args, yolo_train, yenv, yolo_log, env, out, datasets) -> dict:
    """Train YOLO (``yolo_train``) and RTMDet-R tiny, at the same time with ``--threads 1``;
    returns the load averages and each training process's seconds."""
    load_start = os.getloadavg()[0]
    t_yolo = time.perf_counter()
    yolo_proc = start(yolo_train, yenv, yolo_log)
    try:
        if args.threads != 1:
            finish(*yolo_proc, yolo_log, "YOLO training")
            t_yolo = time.perf_counter() - t_yolo
        beside = yolo_log if args.threads == 1 else None
        calib, max_iter, t_rtm = train_rtmdet(args, env, out, datasets, beside)
        if args.threads == 1:
            finish(*yolo_proc, yolo_log, "YOLO training")
            t_yolo = time.perf_counter() - t_yolo
    finally:
        if yolo_proc[0].poll() is None:  # RTMDet's side failed: do not leave YOLO running
            yolo_proc[0].terminate()
            yolo_proc[0].wait()
    return {
        "load_start": load_start,
        "load_end": os.getloadavg()[0],
        "yolo_seconds": t_yolo,
        "rtmdet_seconds": t_rtm,
        "rtmdet_sec_per_iter_calibrated": calib["sec_per_iter"],
        "rtmdet_max_iter": max_iter,
    }


def accuracy_part(args, py: str, latency: dict | None) -> dict:
    from rotated_det.config import LazyConfig
    from rotated_det.data import DatasetCatalog
    from rotated_det.data.datasets.builtin import prepare_synthetic

    out = os.path.join(os.path.abspath(args.output_dir), "accuracy")
    os.makedirs(out, exist_ok=True)
    datasets = os.path.abspath(args.datasets_root)
    os.environ["ROTATED_DET_DATASETS"] = datasets
    syn = prepare_synthetic(os.path.join(datasets, "synthetic"))
    data_yaml = export_yolo_dataset(
        os.path.join(syn, "split_512"), os.path.join(os.path.abspath(args.output_dir), "yolo")
    )
    threads = args.threads
    env = thread_env(threads, {"ROTATED_DET_DATASETS": datasets})
    yenv = yolo_env(args, threads)
    side_by_side = threads == 1
    print(
        f"\nAccuracy: {args.minutes:g} min of training each, {threads} thread(s) each, "
        + ("both at the same time" if side_by_side else "one after the other")
        + f" (load average {os.getloadavg()[0]:.1f})",
        flush=True,
    )

    # YOLO11n-obb (Ultralytics stops itself at the budget)
    yolo_json = os.path.join(out, "yolo_train.json")
    settings = dict(YOLO_TRAIN_SETTINGS)
    for kv in args.yolo_set:
        key, sep, value = kv.partition("=")
        if not sep:
            raise SystemExit(f"--yolo-set {kv!r}: expected KEY=VALUE")
        settings[key] = value
    yolo_train = yolo_cmd(
        py, "train", yolo_json, threads, "--model", YOLO_ACCURACY_MODEL, "--data", data_yaml,
        "--minutes", str(args.minutes), "--imgsz", str(PATCH_SIZE),
        "--project", os.path.join(out, "yolo11n_obb"),
        "--set", *(f"{k}={v}" for k, v in settings.items()),
    )  # fmt: skip
    yolo_log = os.path.join(out, "yolo_train.log")
    times_json = os.path.join(out, "train_times.json")
    if args.skip_train:
        with open(times_json, encoding="utf-8") as f:
            times = json.load(f)
    else:
        times = train_both(args, yolo_train, yenv, yolo_log, env, out, datasets)
        with open(times_json, "w", encoding="utf-8") as f:
            json.dump(times, f)
    with open(yolo_json, encoding="utf-8") as f:
        yolo = json.load(f)
    rtm_dir = os.path.join(out, "rtmdet_tiny")
    iterations, sec_per_iter, trainer_map50 = read_quickstart_summary(
        os.path.join(rtm_dir, "summary.json")
    )

    # scoring: the same evaluator for both
    val_list = os.path.join(out, "val_images.txt")
    test_name = LazyConfig.load(os.path.join(ROOT, RTMDET_QUICKSTART)).dataloader.test.dataset.names
    val_dicts = DatasetCatalog.get(test_name)
    with open(val_list, "w", encoding="utf-8") as f:
        f.writelines(d["file_name"] + "\n" for d in val_dicts)
    labels_json = os.path.join(out, "yolo_val_labels.json")
    yolo_root = os.path.dirname(data_yaml)
    labels_as_predictions(os.path.join(yolo_root, "val", "labels"), val_dicts, labels_json)
    pred_json = os.path.join(out, "yolo_predictions.json")
    run_json(
        yolo_cmd(py, "predict", pred_json, threads, "--weights", yolo["weights"], "--images",
                 val_list, "--imgsz", str(PATCH_SIZE), "--conf", str(YOLO_EVAL["conf"]),
                 "--iou", str(YOLO_EVAL["iou"]), "--max-det", str(YOLO_EVAL["max_det"])),
        yenv,
        pred_json,
        "YOLO prediction",
    )  # fmt: skip
    scores = {}
    for name, source in (
        ("RTMDet-R tiny", {"weights": os.path.join(rtm_dir, "train", "model_final.pth")}),
        ("YOLO11n-obb", {"predictions": pred_json}),
        ("YOLO-OBB val labels", {"predictions": labels_json}),
    ):
        stem = os.path.join(out, "eval_" + name.replace(" ", "_"))
        path = stem + ".json"
        cmd = worker_cmd(
            "evaluate", path, threads, config=RTMDET_QUICKSTART, output_dir=stem, **source
        )
        scores[name] = run_json(cmd, env, path, f"evaluation of {name}")
    check = scores.pop("YOLO-OBB val labels")["mAP50"]
    print(
        f"Check: the exported YOLO-OBB validation labels, scored as predictions by the same path "
        f"as YOLO's: mAP50 {check:.2f} (expected ~100)",
        flush=True,
    )
    if check < 99.0:
        print("WARNING: the YOLO-OBB export or the polygon conversion loses objects", flush=True)
    # the trainer's own evaluation at the end of the quickstart ran the same evaluator
    if abs(scores["RTMDet-R tiny"]["mAP50"] - trainer_map50) > 0.01:
        print(
            f"WARNING: RTMDet-R tiny mAP50 {scores['RTMDet-R tiny']['mAP50']:.2f} here, "
            f"{trainer_map50:.2f} in the trainer's evaluation (the same evaluator and weights)",
            flush=True,
        )
    rows = [
        {
            "model": "RTMDet-R tiny",
            **scores["RTMDet-R tiny"],
            "trained": f"{iterations} iter x batch 2 (320 px crops)",
            "train_minutes": iterations * sec_per_iter / 60 if sec_per_iter else None,
            "process_minutes": times["rtmdet_seconds"] / 60,
        },
        {
            "model": "YOLO11n-obb",
            **scores["YOLO11n-obb"],
            "trained": f"{yolo['epochs_done']:.1f} epochs, {yolo['batches']} iter x batch "
            f"{yolo['batch_size']} ({PATCH_SIZE} px)",
            "train_minutes": yolo["train_seconds"] / 60,
            "process_minutes": times["yolo_seconds"] / 60,
        },
    ]
    latency_json = os.path.join(os.path.abspath(args.output_dir), "latency.json")
    if latency is None and os.path.isfile(latency_json):  # a latency run before (--no-latency)
        with open(latency_json, encoding="utf-8") as f:
            latency = json.load(f)
    if latency:
        lat = {
            "RTMDet-R tiny": latency["models"]["RTMDet-R tiny"]["fused_channels_last"]["with_nms"],
            "YOLO11n-obb": latency["models"]["YOLO11n-obb"]["fused"]["with_nms"],
        }
        for row in rows:
            row["latency_1024_ms"] = lat[row["model"]] * 1e3
            row["latency_1024_threads"] = latency["threads"]
    result = {
        "minutes": args.minutes,
        "threads": threads,
        "side_by_side": side_by_side,
        "load_average": {"start": times["load_start"], "end": times["load_end"]},
        "rtmdet_calibration_sec_per_iter": times["rtmdet_sec_per_iter_calibrated"],
        "yolo_settings": yolo["settings"],
        "ultralytics": yolo.get("ultralytics"),
        "rows": rows,
    }
    with open(os.path.join(os.path.abspath(args.output_dir), "accuracy.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(accuracy_table(result), flush=True)
    return result


def accuracy_table(r: dict) -> str:
    lines = [
        "",
        f"Accuracy: synthetic val (12 scenes merged from 512 px patches), DOTA mAP by "
        f"rotated_det's DOTAEvaluator; {r['minutes']:g} min of training each from scratch, "
        f"{r['threads']} thread(s)"
        + (", side by side" if r["side_by_side"] else "")
        + f" (load average {r['load_average']['start']:.1f} -> "
        f"{r['load_average']['end']:.1f}); Ultralytics {r['ultralytics']}",
        "| model | params (M) | mAP50 | mAP75 | trained | train min | process min | "
        "ms / 512 px patch | ms / 1024 px (random weights) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for x in r["rows"]:
        tm = f"{x['train_minutes']:.1f}" if x.get("train_minutes") else "?"
        lat = "-"
        if "latency_1024_ms" in x:
            lat = f"{x['latency_1024_ms']:.0f} ({x['latency_1024_threads']} thr.)"
        lines.append(
            f"| {x['model']} | {x['params'] / 1e6:.2f} | {x['mAP50']:.1f} | {x['mAP75']:.1f} | "
            f"{x['trained']} | {tm} | {x['process_minutes']:.1f} | {x['ms_per_patch']:.0f} | "
            f"{lat} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    if args.worker:
        run_worker(args.worker, args.worker_args)
        return
    if args.threads < 1:
        raise SystemExit(f"--threads must be >= 1, got {args.threads}")
    if args.minutes <= 0:
        raise SystemExit(f"--minutes must be > 0, got {args.minutes}")
    out = os.path.abspath(args.output_dir)
    os.makedirs(out, exist_ok=True)
    print(
        f"bench_realtime: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
        f"{args.threads} thread(s) per process; results in {out}",
        flush=True,
    )
    py = ensure_ultralytics_venv(
        args.venv or os.path.join(out, "venv-ultralytics"), args.ultralytics_version
    )
    latency = None if args.no_latency else latency_part(args, py)
    if args.accuracy:
        accuracy_part(args, py, latency)


if __name__ == "__main__":
    main()

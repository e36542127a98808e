"""Python steps of dev/gpu_check.sh (see there for the whole check).

Subcommands:
  env          versions, the GPU, and the imports rotated_det needs (lists what is missing)
  cuda-kernels the compiled ops run on CUDA tensors (the build has CUDA kernels)
  timings      op and model timings on --device next to the CPU, with torchvision's
               axis-aligned roi_align / nms / box_iou on the same work as a baseline
  compare      mAP50 of the AMP-trained quickstart models against the CPU-trained ones
  summary      one table of the stages and figures; writes summary.json and summary.txt

Each prints what it found and exits non-zero on a failure.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "dev"))

# import name -> distribution name (what --fetch-wheels brings for the device image)
REQUIRED_MODULES = {
    "torch": "torch",
    "torchvision": "torchvision",
    "numpy": "numpy",
    "cv2": "opencv-python-headless",
    "fvcore": "fvcore",
    "iopath": "iopath",
    "omegaconf": "omegaconf",
    "hydra": "hydra-core",
    "pycocotools": "pycocotools",
    "shapely": "shapely",
    "tensorboard": "tensorboard",
    "matplotlib": "matplotlib",
    "tqdm": "tqdm",
    "yaml": "PyYAML",
    "pytest": "pytest",
}
CONFIGS = ("rotated_faster_rcnn", "rotated_retinanet", "oriented_rcnn")


# --------------------------------------------------------------------------------------------
def cmd_env(args) -> int:
    print(f"python {sys.version.split()[0]} ({sys.executable})")
    missing = []
    for module, dist in REQUIRED_MODULES.items():
        try:
            m = importlib.import_module(module)
            print(f"  {module:<12} {getattr(m, '__version__', '')}")
        except Exception as e:  # noqa: BLE001 - any import failure means the package is unusable
            print(f"  {module:<12} MISSING ({type(e).__name__}: {e})")
            missing.append(dist)
    if missing:
        print(
            "missing packages: " + " ".join(missing) + "\n"
            "  on a machine with pip access run `bash dev/gpu_check.sh --fetch-wheels` (writes "
            ".whl/), then carry .whl to the GPU machine: gpu_check.sh installs it first"
        )
        return 1
    import torch

    print(f"torch CUDA build: {torch.version.cuda}; cuda available: {torch.cuda.is_available()}")
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        cap = torch.cuda.get_device_capability(0)
        print(f"GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB, compute capability {cap}")
    elif not args.cpu_dry_run:
        print("no CUDA device visible (use --cpu-dry-run on a machine without a GPU)")
        return 1
    return 0


def cmd_cuda_kernels(args) -> int:
    import torch

    from rotated_det.layers import (
        nms_rotated,
        pairwise_iou_rotated,
        ri_roi_align_rotated,
        roi_align_rotated,
    )

    b = torch.tensor([[10.0, 10, 8, 4, 30], [11, 10, 8, 4, 30]], device="cuda")
    try:
        iou = pairwise_iou_rotated(b, b)
        keep = nms_rotated(b, torch.tensor([0.9, 0.8], device="cuda"), 0.5)
        x = torch.randn(1, 2, 8, 8, device="cuda")
        rois = torch.tensor([[0.0, 4, 4, 4, 2, 30]], device="cuda")
        out = roi_align_rotated(x, rois, 2, 1.0, 2)
        ri_roi_align_rotated(x, rois, 2, 1.0, 2, 2)
    except (RuntimeError, NotImplementedError) as e:
        print(f"the compiled ops do not run on CUDA: {e}")
        return 1
    print(
        f"CUDA kernels OK: IoU diagonal {iou.diagonal().tolist()}, NMS keeps {keep.tolist()}, "
        f"RoIAlign output {tuple(out.shape)}"
    )
    return 0


# --------------------------------------------------------------------------------------------
def _timeit(fn, device, repeat: int, warmup: int = 1) -> float:
    """Median seconds of ``fn()`` over ``repeat`` runs after ``warmup`` (CUDA synchronised)."""
    import torch

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _op_workloads(small: bool, gen):
    """The dev/bench_ops.py workloads (smaller with --small)."""
    import torch

    def boxes(n, extent, lo, hi):
        return torch.cat(
            [
                torch.rand(n, 2, generator=gen) * extent,
                torch.rand(n, 2, generator=gen) * (hi - lo) + lo,
                torch.rand(n, 1, generator=gen) * 360 - 180,
            ],
            1,
        )

    n_iou, n_nms, n_rois, channels, side = (
        (300, 2000, 128, 32, 50) if small else (2000, 20000, 1024, 256, 100)
    )
    w = {
        "iou": (boxes(n_iou, 1000, 10, 100), boxes(n_iou, 1000, 10, 100)),
        "nms": (boxes(n_nms, 300, 10, 100), torch.rand(n_nms, generator=gen)),
        "feat": torch.randn(2, channels, side, side, generator=gen),
    }
    rb = boxes(n_rois, side * 4, 16, 200)
    bidx = torch.randint(0, 2, (n_rois, 1), generator=gen).float()
    w["rois"] = torch.cat([bidx, rb], 1)
    w["hrois"] = torch.cat([bidx, rb[:, :2] - rb[:, 2:4] / 2, rb[:, :2] + rb[:, 2:4] / 2], 1)
    w["names"] = {
        "iou": f"IoU {n_iou}x{n_iou}",
        "nms": f"NMS {n_nms} boxes, IoU 0.5",
        "roi": f"RoIAlign {n_rois}x7x7 on 2x{channels}x{side}x{side}",
    }
    return w


def _xyxy(b):
    import torch

    return torch.cat([b[:, :2] - b[:, 2:4] / 2, b[:, :2] + b[:, 2:4] / 2], 1)


def _op_cases(w: dict, device, dtypes) -> list[tuple]:
    """(name, rotated_det callable, torchvision callable) for each op workload on ``device``."""
    from torchvision import ops as tv

    from rotated_det.layers import (
        nms_rotated,
        pairwise_iou_rotated,
        ri_roi_align_rotated,
        roi_align_rotated,
    )

    b1, b2 = (x.to(device) for x in w["iou"])
    nb, ns = (x.to(device) for x in w["nms"])
    feat, rois, hrois = (w[k].to(device) for k in ("feat", "rois", "hrois"))
    h1, h2, hn = _xyxy(b1), _xyxy(b2), _xyxy(nb)
    cases = [
        (w["names"]["iou"], lambda: pairwise_iou_rotated(b1, b2), lambda: tv.box_iou(h1, h2)),
        (w["names"]["nms"], lambda: nms_rotated(nb, ns, 0.5), lambda: tv.nms(hn, ns, 0.5)),
    ]

    def ours(x):
        return roi_align_rotated(x, rois, 7, 0.25, 2)

    def base(x):
        return tv.roi_align(x, hrois.to(x.dtype), 7, 0.25, 2, aligned=True)

    def ours_ri(x):  # ReDet's rotation-invariant RoIAlign, the channels as C8 regular fields
        return ri_roi_align_rotated(x, rois, 7, 0.25, 2, 8)

    def fwd(fn, x):
        return lambda: fn(x)

    def fwd_bwd(fn, x):
        x = x.clone().requires_grad_()

        def run():
            fn(x).sum().backward()
            x.grad = None

        return run

    for dtype in dtypes:
        x = feat.to(dtype)
        tag = "" if dtype == feat.dtype else f" ({str(dtype).split('.')[-1]})"
        name = w["names"]["roi"]
        cases.append((f"{name} fwd{tag}", fwd(ours, x), fwd(base, x)))
        cases.append((f"{name} fwd+bwd{tag}", fwd_bwd(ours, x), fwd_bwd(base, x)))
        cases.append((f"Ri{name} C8 fwd{tag}", fwd(ours_ri, x), fwd(base, x)))
        cases.append((f"Ri{name} C8 fwd+bwd{tag}", fwd_bwd(ours_ri, x), fwd_bwd(base, x)))
    return cases


def time_ops(devices, small: bool, repeat: int) -> list[dict]:
    import torch

    w = _op_workloads(small, torch.Generator().manual_seed(0))
    rows = []
    for device in devices:
        dtypes = [torch.float32] + ([torch.float16] if device.type == "cuda" else [])
        for name, ours_fn, base_fn in _op_cases(w, device, dtypes):
            t_ours = _timeit(ours_fn, device, repeat)
            t_base = _timeit(base_fn, device, repeat)
            rows.append(
                {"op": name, "device": device.type, "ours_s": t_ours, "torchvision_s": t_base}
            )
            print(
                f"  {name:<48} {device.type:<4} rotated_det {t_ours * 1e3:9.2f} ms   "
                f"torchvision (axis-aligned) {t_base * 1e3:9.2f} ms",
                flush=True,
            )
    return rows


def time_models(devices, small: bool, iters: int, warmup: int) -> list[dict]:
    import bench_models as bm
    import torch

    from rotated_det.config import LazyConfig, instantiate
    from rotated_det.structures import Instances, RotatedBoxes

    size, objects = (256, 10) if small else (512, 20)
    inputs = bm.to_inputs(bm.make_scenes(2, size, objects), Instances, RotatedBoxes)
    rows = []
    for name in CONFIGS:
        if small:  # the quickstart R-18 models
            cfg = LazyConfig.load(os.path.join(ROOT, f"configs/quickstart/{name}_R_18_FPN.py"))
            heads = cfg.model if name == "rotated_retinanet" else cfg.model.roi_heads
            heads.num_classes = bm.NUM_CLASSES  # the classes of make_scenes
            torch.manual_seed(0)
            model = instantiate(cfg.model)
        else:  # R-50 as dev/bench_models.py, FrozenBN statistics calibrated on the inputs
            model = bm.build_ours(name)
            bm.calibrate_frozen_bn(model, inputs)
        for device in devices:
            model.to(device)
            modes = [("fp32", None)]
            if device.type == "cuda":
                modes.append(("amp fp16", torch.float16))
            for mode, dtype in modes:
                params = [p for p in model.parameters() if p.requires_grad]
                opt = torch.optim.SGD(params, lr=1e-6, momentum=0.9)

                def step(model=model, opt=opt, dtype=dtype, device=device):
                    model.train()
                    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                        losses = model(inputs)
                    opt.zero_grad()
                    sum(losses.values()).backward()
                    opt.step()

                def infer(model=model, dtype=dtype, device=device):
                    model.eval()
                    images = [{k: v for k, v in x.items() if k != "instances"} for x in inputs]
                    with (
                        torch.no_grad(),
                        torch.autocast(device.type, dtype=dtype, enabled=dtype is not None),
                    ):
                        model(images)

                t_train = _timeit(step, device, iters, warmup)
                t_infer = _timeit(infer, device, iters, warmup) / len(inputs)
                rows.append(
                    {"model": name, "device": device.type, "mode": mode,
                     "train_s_per_iter": t_train, "infer_s_per_image": t_infer}
                )  # fmt: skip
                print(
                    f"  {name:<20} {device.type:<4} {mode:<8} train {t_train:7.3f} s/iter "
                    f"(batch 2 of {size} px)   inference {t_infer:7.3f} s/image",
                    flush=True,
                )
        model.to("cpu")
    return rows


def cmd_timings(args) -> int:
    import torch

    device = torch.device(args.device)
    devices = [torch.device("cpu")] + ([device] if device.type != "cpu" else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print("ops (median of runs):")
    ops = time_ops(devices, args.small, args.repeat)
    print("models (" + ("quickstart R-18 FPN" if args.small else "R-50 FPN, random weights") + "):")
    models = time_models(devices, args.small, args.iters, args.warmup)
    with open(args.json, "w") as f:
        json.dump({"ops": ops, "models": models}, f, indent=1)
    return 0


# --------------------------------------------------------------------------------------------
def _map50(run_dir: str) -> float | None:
    path = os.path.join(run_dir, "summary.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return float(json.load(f)["mAP50"])


def cmd_compare(args) -> int:
    """Order-of-magnitude agreement: within a factor 10 of each other; when both are below
    ``--floor`` points the comparison says nothing (inconclusive, not a failure)."""
    results, failed = [], False
    print(f"  {'config':<22} {'AMP/device mAP50':>17} {'CPU mAP50':>10}  verdict")
    for name in args.configs:
        dev = _map50(os.path.join(args.train_dir, f"{name}_device"))
        cpu = _map50(os.path.join(args.train_dir, f"{name}_cpu"))
        if dev is None or cpu is None:
            verdict = "FAIL: no result (see the training log)"
        elif max(dev, cpu) < args.floor:
            verdict = f"inconclusive: both below {args.floor} points"
        elif min(dev, cpu) > 0 and max(dev, cpu) / min(dev, cpu) <= 10:
            verdict = "PASS: same order of magnitude"
        else:
            verdict = "FAIL: differ by more than 10x"
        failed |= verdict.startswith("FAIL")
        results.append({"config": name, "device_mAP50": dev, "cpu_mAP50": cpu, "verdict": verdict})
        fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        print(f"  {name:<22} {fmt(dev):>17} {fmt(cpu):>10}  {verdict}")
    with open(args.json, "w") as f:
        json.dump(results, f, indent=1)
    return 1 if failed else 0


def cmd_summary(args) -> int:
    lines = [f"rotated_det GPU check ({args.mode}), {time.strftime('%Y-%m-%d %H:%M:%S')}", ""]
    stages = []
    with open(os.path.join(args.work, "stages.tsv")) as f:
        for line in f:
            name, status, seconds, note = (line.rstrip("\n").split("\t") + [""] * 4)[:4]
            stages.append({"stage": name, "status": status, "seconds": int(seconds), "note": note})
    lines.append(f"{'stage':<30} {'result':<8} {'time':>6}  note")
    for s in stages:
        lines.append(f"{s['stage']:<30} {s['status']:<8} {s['seconds']:>5}s  {s['note']}")
    lines.append(f"{'total (wall clock)':<30} {'':<8} {args.elapsed:>5}s")
    summary = {"mode": args.mode, "stages": stages, "wall_seconds": args.elapsed}
    for key, file in (("map", "map.json"), ("timings", "timings.json")):
        path = os.path.join(args.work, file)
        if os.path.isfile(path):
            with open(path) as f:
                summary[key] = json.load(f)
    if "map" in summary:
        lines += [
            "",
            "mAP50, AMP on the device vs float32 on the CPU (same data, same iterations):",
        ]
        for r in summary["map"]:
            dev, cpu = r["device_mAP50"], r["cpu_mAP50"]
            lines.append(f"  {r['config']:<22} {dev!s:>8} vs {cpu!s:>8}  {r['verdict']}")
    timings = summary.get("timings", {})
    if timings.get("ops"):
        lines += ["", "ops (ms): rotated_det / torchvision axis-aligned, per device"]
        for r in timings["ops"]:
            lines.append(
                f"  {r['op']:<48} {r['device']:<4} {r['ours_s'] * 1e3:9.2f} / "
                f"{r['torchvision_s'] * 1e3:9.2f}"
            )
    if timings.get("models"):
        lines += ["", "models: train s/iter, inference s/image"]
        for r in timings["models"]:
            lines.append(
                f"  {r['model']:<20} {r['device']:<4} {r['mode']:<8} "
                f"{r['train_s_per_iter']:8.3f} {r['infer_s_per_image']:8.3f}"
            )
    failed = [s["stage"] for s in stages if s["status"] != "PASS"]
    lines += ["", "RESULT: " + ("FAILED (" + ", ".join(failed) + ")" if failed else "all passed")]
    text = "\n".join(lines)
    print(text)
    for out_dir in [args.work] + ([args.out] if args.out else []):
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "summary.txt"), "w") as f:
            f.write(text + "\n")
        with open(os.path.join(out_dir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
    return 1 if failed else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("env")
    e.add_argument("--cpu-dry-run", action="store_true")
    sub.add_parser("cuda-kernels")
    t = sub.add_parser("timings")
    t.add_argument("--device", default="cuda")
    t.add_argument("--small", action="store_true", help="tiny workloads, R-18 models")
    t.add_argument("--repeat", type=int, default=5)
    t.add_argument("--iters", type=int, default=3)
    t.add_argument("--warmup", type=int, default=1)
    t.add_argument("--json", required=True)
    c = sub.add_parser("compare")
    c.add_argument("--train-dir", required=True)
    c.add_argument("--configs", nargs="+", default=list(CONFIGS))
    c.add_argument("--floor", type=float, default=1.0, help="mAP50 points below which: no verdict")
    c.add_argument("--json", required=True)
    s = sub.add_parser("summary")
    s.add_argument("--work", required=True)
    s.add_argument("--out", default="")
    s.add_argument("--mode", default="gpu")
    s.add_argument("--elapsed", type=int, default=0, help="wall-clock seconds of the whole check")
    args = p.parse_args()
    return {
        "env": cmd_env,
        "cuda-kernels": cmd_cuda_kernels,
        "timings": cmd_timings,
        "compare": cmd_compare,
        "summary": cmd_summary,
    }[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())

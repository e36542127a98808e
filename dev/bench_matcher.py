"""Anchor matching in crowded images: Matcher.match_boxes (chunked) vs the dense IoU matrix.

Workload: Rotated Faster R-CNN's RRPN anchors (configs/common/models/rotated_faster_rcnn.py:
P2-P6, 3 aspect ratios x 6 angles = 18 per location) of a --size px image against --objects small
rotated objects (sides 6-18 px, any angle, uniform over the image). Each variant runs in a fresh
subprocess; its peak memory is the process's maximum resident set size (getrusage), reported
with its increase over the resident size just before matching (anchors and objects built).
  * dense (baseline): Matcher()(pairwise_iou_rotated(gt, anchors)), the [G, A] float32 matrix.
    Before match_boxes the detectors built this matrix too (with ~3x more in temporaries). It is
    skipped, with its estimated size printed, when that exceeds --max-dense-gb or 60% of the
    available memory.
  * chunked: Matcher().match_boxes(gt, anchors) (max_pairs_per_chunk = 2^21 by default).
When both ran, their outputs are compared (they must be equal). --train-step also trains one
step of each quickstart detector (R-18 FPN) on a --size image with --objects objects and
reports its peak memory. With --device cuda, memory is torch's peak CUDA allocation instead.

Usage: python dev/bench_matcher.py [--size 1024] [--objects 500 5000] [--threads 1]
       [--train-step [--no-match] [--only rotated_faster_rcnn ...]] [--device cpu|cuda]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

DETECTORS = {
    "rotated_faster_rcnn": "configs/quickstart/rotated_faster_rcnn_R_18_FPN.py",
    "rotated_retinanet": "configs/quickstart/rotated_retinanet_R_18_FPN.py",
    "oriented_rcnn": "configs/quickstart/oriented_rcnn_R_18_FPN.py",
}
MODEL_CONFIGS = {  # R-50 definitions: their anchors are what the matcher sees
    "rotated_faster_rcnn": ("configs/common/models/rotated_faster_rcnn.py", "proposal_generator."),
    "rotated_retinanet": ("configs/common/models/rotated_retinanet.py", ""),
    "oriented_rcnn": ("configs/common/models/oriented_rcnn.py", "proposal_generator."),
}
# Bytes per [G, A] entry of the dense path: the float32 IoU plus the bool ``quality == best``
# mask of the low-quality rule.
DENSE_BYTES_PER_ENTRY = 5


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _available_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def build_anchors(name: str, size: int, device: str = "cpu"):
    """All anchors ``[A, box_dim]`` of detector ``name`` for a ``size`` x ``size`` image."""
    import torch

    from rotated_det.config import LazyConfig, instantiate

    path, prefix = MODEL_CONFIGS[name]
    cfg = LazyConfig.load(os.path.join(ROOT, path)).model
    node = cfg
    for part in (prefix + "anchor_generator").split("."):
        node = node[part]
    gen = instantiate(node)
    feats = [torch.zeros(1, 1, -(-size // s), -(-size // s), device=device) for s in gen.strides]
    return torch.cat([a.tensor for a in gen(feats)]).to(device)


def crowded_objects(num: int, size: int, seed: int = 0, device: str = "cpu"):
    """``[num, 5]`` small rotated boxes (sides 6-18 px, any angle) uniform over the image."""
    import torch

    g = torch.Generator().manual_seed(seed)
    boxes = torch.cat(
        [
            torch.rand(num, 2, generator=g) * size,
            torch.rand(num, 2, generator=g) * 12 + 6,
            torch.rand(num, 1, generator=g) * 180 - 90,
        ],
        1,
    )
    return boxes.to(device)


def worker_match(args) -> dict:
    import torch

    from rotated_det.layers import pairwise_iou_rotated
    from rotated_det.modeling import Matcher

    anchors = build_anchors("rotated_faster_rcnn", args.size, args.device)
    gt = crowded_objects(args.objects, args.size, device=args.device)
    matcher = Matcher([0.3, 0.7], [0, -1, 1], allow_low_quality_matches=True)
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    before_rss = _rss_bytes()
    t0 = time.perf_counter()
    if args.worker == "dense":
        matches, labels = matcher(pairwise_iou_rotated(gt, anchors))
    else:
        matches, labels = matcher.match_boxes(gt, anchors)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    if cuda:
        increase = torch.cuda.max_memory_allocated() - before
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = _max_rss_bytes()
        increase = max(peak - before_rss, 0)
    if args.save:
        torch.save({"matches": matches.cpu(), "labels": labels.cpu()}, args.save)
    return {"seconds": seconds, "peak": peak, "increase": increase, "anchors": len(anchors)}


def worker_train(args) -> dict:
    import math

    import numpy as np
    import torch

    from rotated_det.config import LazyConfig, instantiate
    from rotated_det.structures import Instances, RotatedBoxes

    cfg = LazyConfig.load(os.path.join(ROOT, DETECTORS[args.worker_detector])).model
    torch.manual_seed(0)
    model = instantiate(cfg).to(args.device).train()
    gt = crowded_objects(args.objects, args.size)
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.integers(0, 255, (3, args.size, args.size), dtype=np.uint8))
    num_classes = cfg.num_classes if "num_classes" in cfg else cfg.roi_heads.num_classes
    inst = Instances(
        (args.size, args.size),
        gt_boxes=RotatedBoxes(gt),
        gt_classes=torch.randint(0, num_classes, (args.objects,)),
    )
    batch = [{"image": image.float(), "height": args.size, "width": args.size, "instances": inst}]
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    before_rss = _rss_bytes()
    t0 = time.perf_counter()
    losses = model(batch)
    sum(losses.values()).backward()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() if cuda else _max_rss_bytes()
    finite = all(math.isfinite(float(v.detach())) for v in losses.values())
    return {
        "seconds": seconds,
        "peak": peak,
        "increase": max(peak - (0 if cuda else before_rss), 0),
        "finite": finite,
        "losses": {k: round(float(v.detach()), 4) for k, v in losses.items()},
    }


def run_worker(extra: list[str], args) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--size", str(args.size)]
    cmd += ["--threads", str(args.threads), "--device", args.device] + extra
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def gb(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="image side in pixels")
    parser.add_argument("--objects", type=int, nargs="+", default=[500, 5000])
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-dense-gb", type=float, default=None, help="skip larger dense runs")
    parser.add_argument("--train-step", action="store_true", help="also one step per detector")
    parser.add_argument("--no-match", action="store_true", help="skip the matching benchmark")
    parser.add_argument("--only", nargs="*", default=list(DETECTORS), choices=list(DETECTORS))
    parser.add_argument("--worker", choices=["dense", "chunked"], help=argparse.SUPPRESS)
    parser.add_argument("--worker-detector", choices=list(DETECTORS), help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    if args.worker:
        args.objects = args.objects[0]
        print(json.dumps(worker_match(args)))
        return 0
    if args.worker_detector:
        args.objects = args.objects[0]
        print(json.dumps(worker_train(args)))
        return 0

    print(f"Anchors of a {args.size} px image, and the dense [objects x anchors] IoU (float32):")
    for name in DETECTORS:
        n = len(build_anchors(name, args.size))
        sizes = ", ".join(f"{k} objects: {gb(4.0 * k * n)}" for k in args.objects)
        print(f"  {name:<20} {n:>9,} anchors   {sizes}")
    limit = 0.6 * _available_bytes() if args.device == "cpu" else float("inf")
    if args.max_dense_gb is not None:
        limit = min(limit, args.max_dense_gb * 2**30)
    failed = False
    if not args.no_match:
        failed = bench_matching(args, limit)
    if args.train_step:
        failed |= bench_train_steps(args)
    return 1 if failed else 0


def bench_matching(args, limit: float) -> bool:
    """Dense vs chunked RRPN matching per object count; True if something failed."""
    import torch

    print(f"\nRRPN anchor matching, {args.threads} thread(s), {args.device}:")
    print(f"  {'objects':>7}  {'variant':<8} {'time':>9}  {'peak memory':>12}  {'increase':>10}")
    failed = False
    n_anchors = len(build_anchors("rotated_faster_rcnn", args.size))
    with tempfile.TemporaryDirectory() as tmp:
        for k in args.objects:
            saved = {}
            for variant in ("dense", "chunked"):
                need = DENSE_BYTES_PER_ENTRY * k * n_anchors
                if variant == "dense" and need > limit:
                    print(f"  {k:>7}  {variant:<8} skipped: needs ~{gb(need)}, limit {gb(limit)}")
                    continue
                path = os.path.join(tmp, f"{variant}_{k}.pt")
                extra = ["--worker", variant, "--objects", str(k), "--save", path]
                res = run_worker(extra, args)
                if "error" in res:
                    print(f"  {k:>7}  {variant:<8} FAILED: {res['error']}")
                    failed = True
                    continue
                saved[variant] = path
                print(
                    f"  {k:>7}  {variant:<8} {res['seconds']:>8.2f}s  {gb(res['peak']):>12}  "
                    f"{gb(res['increase']):>10}"
                )
            if len(saved) == 2:
                a, b = torch.load(saved["dense"]), torch.load(saved["chunked"])
                same = all(torch.equal(a[key], b[key]) for key in ("matches", "labels"))
                print(f"  {k:>7}  chunked == dense: {'yes' if same else 'NO'}")
                failed |= not same
    return failed


def bench_train_steps(args) -> bool:
    """One training step per detector and object count; True if something failed."""
    failed = False
    print(f"\nOne training step (quickstart R-18 FPN), {args.size} px image:")
    for name in args.only:
        for k in args.objects:
            extra = ["--worker-detector", name, "--objects", str(k)]
            res = run_worker(extra, args)
            if "error" in res:
                print(f"  {name:<20} {k:>5} objects FAILED: {res['error']}")
                failed = True
                continue
            failed |= not res["finite"]
            print(
                f"  {name:<20} {k:>5} objects {res['seconds']:>7.1f}s  peak {gb(res['peak'])}"
                f"  finite losses: {res['finite']}  {res['losses']}"
            )
    return failed


if __name__ == "__main__":
    sys.exit(main())

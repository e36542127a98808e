"""Benchmark of the convex-polygon ops (the minimum-area rectangle of a point set,
rotated_det.structures.points_to_rbox; rotated_det.layers: convex_iou, convex_giou,
convex_overlaps, points_in_polygons) at Oriented RepPoints' scale, next to baselines timed in the
same run:
  * points_to_rbox with its side choice by the compiled op (the default) and by the torch
    formulation (as ONNX export runs it), and that choice alone in both;
  * per-item loops of the compiled references: cv2.minAreaRect, cv2.convexHull +
    cv2.intersectConvexConvex (the IoU), cv2.pointPolygonTest, and shapely (IoU and GIoU), timed
    on ``--loop`` items and scaled to the full count (their cost per item does not depend on it);
  * convex_iou and convex_overlaps by the compiled op (what runs without gradients) and by the
    torch formulation (with gradients; for convex_overlaps its eager path, only pairs whose
    bounding boxes overlap, and its dense one, every pair);
  * with ``--compile``: the vectorised torch functions under torch.compile (inductor fuses the
    elementwise chains into C++ loops), next to the hand-written compiled ops.

Workload: N point sets of K = 9 points (RepPoints), each spread around a box (sides 8-100 px,
centres over 1024 x 1024 px); G ground-truth boxes for the overlaps; P points x G boxes for
points_in_polygons.

Usage: python dev/bench_convex.py [--n 20000] [--g 30] [--loop 300] [--repeat 3] [--threads 1]
       [--compile] [--device cpu|cuda]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from shapely.geometry import MultiPoint, Polygon  # noqa: E402

from rotated_det.layers import (  # noqa: E402
    convex_giou,
    convex_iou,
    convex_overlaps,
    points_in_polygons,
)
from rotated_det.structures import points_to_rbox, rbox_to_poly  # noqa: E402


def workload(n, g, gen):
    boxes = torch.cat(
        [
            torch.rand(n, 2, generator=gen) * 1024,
            torch.rand(n, 2, generator=gen) * 92 + 8,
            torch.rand(n, 1, generator=gen) * 180 - 90,
        ],
        1,
    )
    spread = boxes[:, None, 2:4].amax(-1, keepdim=True) * (0.6 + 0.8 * torch.rand(n, 1, 1))
    pts = boxes[:, None, :2] + (torch.rand(n, 9, 2, generator=gen) - 0.5) * spread
    return pts, boxes, boxes[torch.randperm(n, generator=gen)[:g]]


def timeit(fn, repeat, sync):
    fn()
    sync()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def per_item(fn, items, repeat):
    """Seconds per item of a Python loop calling ``fn`` on each item."""
    return timeit(lambda: [fn(*it) for it in items], repeat, lambda: None) / len(items)


def cv2_iou(p, q):
    hull = cv2.convexHull(p)
    inter, _ = cv2.intersectConvexConvex(hull, q)
    union = cv2.contourArea(hull) + cv2.contourArea(q) - inter
    return inter / union if union > 0 else 0.0


def shapely_giou(p, q):
    hull, poly = MultiPoint(p).convex_hull, Polygon(q)
    inter = hull.intersection(poly).area
    union = hull.area + poly.area - inter
    c = MultiPoint(np.concatenate([p, q])).convex_hull.area
    return inter / union - (c - union) / c


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--g", type=int, default=30)
    parser.add_argument("--loop", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    gen = torch.Generator().manual_seed(0)
    pts, boxes, gts = workload(args.n, args.g, gen)
    load = os.getloadavg()[0]
    print(
        f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, load "
        f"{load:.2f}, best of {args.repeat}, float32, N={args.n} sets of 9 points, G={args.g}"
    )
    m = min(args.loop, args.n)
    p_np = pts[:m].numpy()
    q_np = rbox_to_poly(boxes[:m]).view(-1, 4, 2).numpy()
    g_np = rbox_to_poly(gts).view(-1, 4, 2).numpy()
    pts_d, boxes_d, gts_d = pts.to(device), boxes.to(device), gts.to(device)
    grad_pts = pts_d.clone().requires_grad_()

    def giou_fwd_bwd():
        convex_giou(grad_pts, boxes_d).sum().backward()

    rows = []  # (op, variant, seconds)
    rows.append(
        (
            "min_area_rect",
            "points_to_rbox",
            timeit(lambda: points_to_rbox(pts_d), args.repeat, sync),
        )
    )
    conv = sys.modules["rotated_det.structures.rotated_box_conversions"]
    rows.append(
        (
            "min_area_rect",
            "  its side choice: compiled op",
            timeit(
                lambda: torch.ops.rotated_det.min_area_rect_pair(pts_d, 1e-5), args.repeat, sync
            ),
        )
    )
    rows.append(
        (
            "min_area_rect",
            "  its side choice: torch",
            timeit(lambda: conv.min_area_rect_pair_torch(pts_d, 1e-5), args.repeat, sync),
        )
    )
    compiled_check = conv._has_compiled_pair_op
    conv._has_compiled_pair_op = lambda points: False  # points_to_rbox as ONNX export runs it
    rows.append(
        (
            "min_area_rect",
            "points_to_rbox, torch choice",
            timeit(lambda: points_to_rbox(pts_d), args.repeat, sync),
        )
    )
    conv._has_compiled_pair_op = compiled_check
    rows.append(
        (
            "min_area_rect",
            "cv2 loop*",
            per_item(cv2.minAreaRect, [(p,) for p in p_np], args.repeat) * args.n,
        )
    )
    # (the module, not the function rotated_det.layers.convex_iou that shadows its name)
    ci = sys.modules["rotated_det.layers.convex_iou"]
    compiled_iou = ci._compiled_iou

    def torch_formulation(fn):
        """``fn`` run with the compiled op disabled (the differentiable torch formulation)."""

        def run():
            ci._compiled_iou = lambda *a, **k: None
            try:
                return fn()
            finally:
                ci._compiled_iou = compiled_iou

        return run

    iou = lambda: convex_iou(pts_d, boxes_d)  # noqa: E731
    rows.append(("convex_iou", "compiled op (no grad)", timeit(iou, args.repeat, sync)))
    rows.append(("convex_iou", "torch", timeit(torch_formulation(iou), args.repeat, sync)))
    rows.append(
        ("convex_iou", "cv2 loop*", per_item(cv2_iou, list(zip(p_np, q_np)), args.repeat) * args.n)
    )
    rows.append(
        ("convex_giou", "ours fwd", timeit(lambda: convex_giou(pts_d, boxes_d), args.repeat, sync))
    )
    rows.append(("convex_giou", "ours fwd+bwd", timeit(giou_fwd_bwd, args.repeat, sync)))
    rows.append(
        (
            "convex_giou",
            "shapely loop*",
            per_item(shapely_giou, list(zip(p_np, q_np)), args.repeat) * args.n,
        )
    )
    overlaps = lambda: convex_overlaps(pts_d, gts_d)  # noqa: E731
    rows.append(("convex_overlaps", "compiled op", timeit(overlaps, args.repeat, sync)))
    rows.append(
        (
            "convex_overlaps",
            "torch (bbox filter)",
            timeit(torch_formulation(overlaps), args.repeat, sync),
        )
    )
    real = ci.building_graph
    ci.building_graph = lambda: True  # the torch formulation's graph path: every pair
    rows.append(
        ("convex_overlaps", "torch dense", timeit(torch_formulation(overlaps), args.repeat, sync))
    )
    ci.building_graph = real
    pairs = [(p, q) for p in p_np[: max(1, m // args.g)] for q in g_np]
    rows.append(
        ("convex_overlaps", "cv2 loop*", per_item(cv2_iou, pairs, args.repeat) * args.n * args.g)
    )
    centres = boxes_d[:, :2].contiguous()
    polys_d = rbox_to_poly(gts_d).view(-1, 4, 2)
    rows.append(
        (
            "points_in_polygons",
            "ours",
            timeit(lambda: points_in_polygons(centres, polys_d), args.repeat, sync),
        )
    )
    probe = [
        (q, (float(x), float(y)), False)
        for x, y in boxes[: max(1, m // args.g), :2].tolist()
        for q in g_np
    ]
    rows.append(
        (
            "points_in_polygons",
            "cv2 loop*",
            per_item(cv2.pointPolygonTest, probe, args.repeat) * args.n * args.g,
        )
    )
    if args.compile:
        for name, fn, call in [
            ("min_area_rect", points_to_rbox, lambda f: f(pts_d)),
            ("convex_giou", convex_giou, lambda f: f(pts_d, boxes_d)),
        ]:
            compiled = torch.compile(fn, dynamic=False)
            t0 = time.perf_counter()
            call(compiled)
            build = time.perf_counter() - t0
            rows.append(
                (
                    name,
                    f"torch.compile (build {build:.0f} s)",
                    timeit(lambda c=call, f=compiled: c(f), args.repeat, sync),
                )
            )
    print(f"{'op':<20} {'variant':<32} {'time':>10}  {'vs ours':>8}")
    ours = {}
    for op, variant, sec in rows:
        ours.setdefault(op, sec)
        print(f"{op:<20} {variant:<32} {sec * 1e3:>8.1f} ms  {sec / ours[op]:>7.2f}x")
    print(f"* loops timed on {m} items (pairs: {len(pairs)}) and scaled to the full count")
    # agreement with the references on the looped items
    iou = convex_iou(pts[:m], boxes[:m]).numpy()
    ref = np.array([cv2_iou(p, q) for p, q in zip(p_np, q_np)])
    rect = points_to_rbox(pts[:m])
    cv_area = np.array([np.prod(cv2.minAreaRect(p)[1]) for p in p_np])
    print(
        f"max |convex_iou - cv2| = {np.abs(iou - ref).max():.1e}; max relative |area - "
        f"cv2.minAreaRect| = {np.abs((rect[:, 2] * rect[:, 3]).numpy() / cv_area - 1).max():.1e}; "
        f"pairs with overlapping bounding boxes: "
        f"{(convex_overlaps(pts, gts) > 0).float().mean().item():.2%} have IoU > 0"
    )


if __name__ == "__main__":
    main()

"""Speed of the detectors on CPU, next to Detectron2's RRPN + RROIHeads when it is importable.

Per detector (R-50-FPN, random weights, 15 classes): training seconds per iteration (forward,
backward, SGD step) and inference seconds per image, at batch 2 of 512 x 512 images with 20
rotated objects each. Rotated Faster R-CNN is configured exactly like Detectron2's reference
(rotated anchors: sizes 32-512 on P2-P6, aspect ratios 0.5/1/2, angles -90..90 by 30; RPN
2000 pre-NMS / 1000 post-NMS proposals in training and test; RoI batch 512, score threshold
0.05, NMS 0.5, 100 detections per image), and, when Detectron2 is importable, is given the same
weights so that both run on the same proposals and detections.

Detectron2 is not a dependency: build it outside this repository, e.g.

    git clone https://github.com/facebookresearch/detectron2 /tmp/d2   # or the fetch tool
    cd /tmp/d2 && MAX_JOBS=2 /path/to/.venv/bin/python setup.py build_ext --inplace

and pass ``--d2-path /tmp/d2`` (default: $DETECTRON2_PATH or /tmp/d2). Without it the script
prints that the reference is unavailable and times this package only.

Usage: python dev/bench_models.py [--iters 5] [--warmup 2] [--threads 1] [--only NAME ...]
       [--image-size 512] [--objects 20] [--convex-ops-baseline]

``--latency-1024``: instead, the forward latency (eval, batch 1, one 1024 x 1024 image, random
weights) of the real-time models, Rotated RTMDet tiny and s, next to Rotated RetinaNet R-50-FPN
measured in the same run (``--only`` picks others; ``rotated_rtmdet_s`` is the s size).

``--overhead``: instead, per detector, inference seconds per 512 px image (batch 2, eval) of the
whole detector next to its own backbone plus neck (``model.backbone``) on the same images, and
their ratio: what the heads, proposal selection, RoI pooling, NMS and post-processing add. Each
is timed as trained and as ``DefaultPredictor`` runs it on a CPU (batch norms folded into the
convolutions, channels-last weights), all interleaved so that they see the same machine load;
next to the ratio of their floating-point operations (what the heads' arithmetic alone costs).
"""

import argparse
import contextlib
import importlib.util
import os
import statistics
import sys
import time
import types

import cv2
import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from rotated_det.config import LazyConfig, instantiate  # noqa: E402
from rotated_det.structures import Instances, RotatedBoxes  # noqa: E402

# The detector list of the tests (configs/common/models). h2rbox_v2 trains on 3 views of each
# image (original, rotated, flipped).
from tests.modeling._helpers import DETECTORS, TWO_STAGE  # noqa: E402

NUM_CLASSES = 15
D2_ANGLES = [-90, -60, -30, 0, 30, 60, 90]


def make_scenes(num_images=2, size=512, num_objects=20, seed=0):
    """Images (BGR uint8, HWC) with ``num_objects`` filled rotated rectangles, and their boxes."""
    rng = np.random.default_rng(seed)
    scenes = []
    for _ in range(num_images):
        img = rng.integers(60, 160, size=(size, size, 3), dtype=np.uint8)
        boxes = np.stack(
            [
                rng.uniform(40, size - 40, num_objects),
                rng.uniform(40, size - 40, num_objects),
                rng.uniform(20, 80, num_objects),
                rng.uniform(10, 40, num_objects),
                rng.uniform(-180, 180, num_objects),
            ],
            axis=1,
        ).astype(np.float32)
        classes = rng.integers(0, NUM_CLASSES, num_objects)
        for cx, cy, w, h, a in boxes:
            pts = cv2.boxPoints(((float(cx), float(cy)), (float(w), float(h)), -float(a)))
            color = tuple(int(v) for v in rng.integers(0, 255, 3))
            cv2.fillPoly(img, [np.round(pts).astype(np.int32)], color)
        scenes.append((img, boxes, classes))
    return scenes


def to_inputs(scenes, instances_cls, boxes_cls):
    out = []
    for img, boxes, classes in scenes:
        h, w = img.shape[:2]
        inst = instances_cls((h, w))
        inst.gt_boxes = boxes_cls(torch.from_numpy(boxes))
        inst.gt_classes = torch.from_numpy(classes).long()
        out.append(
            {
                "image": torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))),
                "height": h,
                "width": w,
                "instances": inst,
            }
        )
    return out


# Sizes of a model definition benchmarked besides its default: name -> (config, size)
SIZED_MODELS = {"rotated_rtmdet_s": ("rotated_rtmdet", "s")}
# Detectors of projects/ (their DOTA config's model: ReResNet-50 + ReFPN for ReDet)
PROJECT_MODELS = {"redet": "projects/ReDet/configs/redet_re50_refpn_1x_dota.py"}
LATENCY_MODELS = ["rotated_retinanet", "rotated_rtmdet", "rotated_rtmdet_s"]


def build_ours(name):
    if name in SIZED_MODELS:
        config, size = SIZED_MODELS[name]
        path = os.path.join(ROOT, "configs", "common", "models", f"{config}.py")
        cfg = load_config_function(path, f"{config}_model")(size, num_classes=NUM_CLASSES)
        torch.manual_seed(0)
        return instantiate(cfg)
    if name in PROJECT_MODELS:
        cfg = LazyConfig.load(os.path.join(ROOT, PROJECT_MODELS[name])).model
    else:
        cfg = LazyConfig.load(os.path.join(ROOT, "configs", "common", "models", f"{name}.py")).model
    if name in TWO_STAGE or name in PROJECT_MODELS:
        cfg.roi_heads.num_classes = NUM_CLASSES
    else:
        cfg.num_classes = NUM_CLASSES
    if name == "rotated_faster_rcnn":  # Detectron2's RRPN / RROIHeads settings
        rpn = cfg.proposal_generator
        rpn.anchor_generator.angles = D2_ANGLES
        rpn.head.num_anchors = 3 * len(D2_ANGLES)
        rpn.pre_nms_topk = (2000, 2000)
        rpn.post_nms_topk = (1000, 1000)
        for coder in (rpn.box2box_transform, cfg.roi_heads.box_predictor.box2box_transform):
            coder.angle_version, coder.edge_swap = None, False  # Detectron2's coder
        cfg.roi_heads.box_predictor.box2box_transform.weights = (10.0, 10.0, 5.0, 5.0, 1.0)
        pred = cfg.roi_heads.box_predictor
        pred.test_score_thresh, pred.test_nms_thresh, pred.test_topk_per_image = 0.05, 0.5, 100
        cfg.roi_heads.box_pooler.sampling_ratio = 0
    torch.manual_seed(0)
    return instantiate(cfg)


def build_detectron2(path):
    """Detectron2's RRPN + RROIHeads R-50-FPN, or (None, reason)."""
    if path and os.path.isdir(path) and path not in sys.path:
        sys.path.insert(0, path)
    if "cloudpickle" not in sys.modules:
        try:
            import cloudpickle  # noqa: F401
        except ImportError:
            # Only Detectron2's data pipeline pickles with it; the model code never does.
            sys.modules["cloudpickle"] = types.ModuleType("cloudpickle")
    try:
        from detectron2 import _C  # noqa: F401
        from detectron2.config import get_cfg
        from detectron2.modeling import build_model
        from detectron2.structures import Instances as D2Instances
        from detectron2.structures import RotatedBoxes as D2RotatedBoxes
        from detectron2.utils.events import EventStorage
    except Exception as e:  # noqa: BLE001
        return None, f"{type(e).__name__}: {e}"
    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.MASK_ON = False
    cfg.MODEL.RESNETS.DEPTH = 50
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.BACKBONE.NAME = "build_resnet_fpn_backbone"
    cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.ANCHOR_GENERATOR.NAME = "RotatedAnchorGenerator"
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[32], [64], [128], [256], [512]]
    cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS = [[0.5, 1.0, 2.0]]
    cfg.MODEL.ANCHOR_GENERATOR.ANGLES = [D2_ANGLES]
    cfg.MODEL.PROPOSAL_GENERATOR.NAME = "RRPN"
    cfg.MODEL.RPN.IN_FEATURES = ["p2", "p3", "p4", "p5", "p6"]
    cfg.MODEL.RPN.BBOX_REG_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 1.0)
    cfg.MODEL.RPN.PRE_NMS_TOPK_TRAIN = 2000
    cfg.MODEL.RPN.PRE_NMS_TOPK_TEST = 2000
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 1000
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 1000
    cfg.MODEL.ROI_HEADS.NAME = "RROIHeads"
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2", "p3", "p4", "p5"]
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = NUM_CLASSES
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 2
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE = "ROIAlignRotated"
    cfg.MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS = (10.0, 10.0, 5.0, 5.0, 1.0)
    torch.manual_seed(0)
    model = build_model(cfg)
    # Detectron2's training forward logs to an EventStorage that its trainer normally opens.
    return (model, D2Instances, D2RotatedBoxes, lambda: EventStorage(0)), None


@torch.no_grad()
def calibrate_frozen_bn(model, inputs):
    """Set every frozen BN's statistics to those of its input on ``inputs`` (one pass).

    Random weights with identity BN statistics make ResNet activations grow by orders of
    magnitude, and the resulting degenerate proposals break Detectron2's IoU matcher. With
    calibrated statistics the random network behaves like a trained one numerically (unit-scale
    features, proposals near their anchors), which is what the timings should reflect.
    """

    def hook(module, args):
        x = args[0]
        module.running_mean.copy_(x.mean(dim=(0, 2, 3)))
        module.running_var.copy_(x.var(dim=(0, 2, 3)))

    handles = [
        m.register_forward_pre_hook(hook)
        for m in model.modules()
        if type(m).__name__ == "FrozenBatchNorm2d"
    ]
    model.eval()
    images = model.preprocess_image(inputs)
    model.backbone(images.tensor)
    for h in handles:
        h.remove()


def share_weights(d2_model, ours):
    """Copy Detectron2's weights into our Rotated Faster R-CNN (names differ only in the RPN
    head's hidden conv)."""
    state = {}
    for k, v in d2_model.state_dict().items():
        state[k.replace("rpn_head.conv.", "rpn_head.conv.0.")] = v
    missing, unexpected = ours.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"weight sharing failed: missing {missing}, unexpected {unexpected}")


def load_config_function(path, name):
    """A function defined in a config file (e.g. ``rotated_rtmdet_model``)."""
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def latency_1024(names, iters, warmup):
    """Median forward seconds of one 1024 x 1024 image per model, the models interleaved so
    that all see the same machine load."""
    img, _, _ = make_scenes(num_images=1, size=1024, num_objects=60)[0]
    inputs = [{"image": torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))}]
    models = {}
    for name in names:
        model = build_ours(name)
        calibrate_frozen_bn(model, inputs)
        models[name] = model.eval()
    times = {name: [] for name in names}
    with torch.no_grad():
        for it in range(warmup + iters):
            for name, model in models.items():
                t = time.perf_counter()
                model(inputs)
                dt = time.perf_counter() - t
                print(f"  {name}: iteration {it + 1}/{warmup + iters}: {dt:.3f} s", flush=True)
                if it >= warmup:
                    times[name].append(dt)
    base = statistics.median(times[names[0]])
    print(f"\n{'model':30s} {'params (M)':>11s} {'forward s':>10s} {'vs ' + names[0]:>24s}")
    for name, model in models.items():
        params = sum(p.numel() for p in model.parameters()) / 1e6
        t = statistics.median(times[name])
        print(f"{name:30s} {params:11.2f} {t:10.3f} {base / t:23.2f}x")


def prepare_like_predictor(model):
    """A copy of ``model`` as :class:`DefaultPredictor` prepares it on a CPU: eval mode, batch
    norms folded into the convolutions, channels-last weights."""
    import copy

    from rotated_det.layers import fuse_conv_bn, to_channels_last

    prepared = copy.deepcopy(model).eval()
    fuse_conv_bn(prepared)
    to_channels_last(prepared)
    return prepared


def inference_overhead(names, iters, warmup):
    """Per detector: seconds per image of the backbone + neck and of the whole detector (batch
    of two 512 px images, eval), as trained and as prepared by the predictor; prints the table
    with each detector's ratio to its own backbone + neck, next to the same ratio of their
    floating-point operations (torch's FlopCounterMode; convolutions and matrix products, not
    sampling, sorting or NMS): a time ratio above the FLOP ratio is what the heads spend beyond
    their arithmetic."""
    from torch.utils.flop_counter import FlopCounterMode

    inputs = [
        {k: v for k, v in x.items() if k != "instances"}
        for x in to_inputs(make_scenes(), Instances, RotatedBoxes)
    ]
    rows = []
    for name in names:
        model = build_ours(name)
        calibrate_frozen_bn(model, inputs)
        variants = {"as trained": model.eval(), "predictor": prepare_like_predictor(model)}
        times = {(v, part): [] for v in variants for part in ("backbone", "detector")}
        with torch.no_grad():
            with FlopCounterMode(display=False) as backbone_flops:
                model.backbone(model.preprocess_image(inputs).tensor)
            with FlopCounterMode(display=False) as detector_flops:
                model(inputs)
            flop_ratio = detector_flops.get_total_flops() / backbone_flops.get_total_flops()
            for it in range(warmup + iters):
                for variant, m in variants.items():
                    t = time.perf_counter()
                    images = m.preprocess_image(inputs)
                    m.backbone(images.tensor)
                    t_backbone = (time.perf_counter() - t) / len(inputs)
                    t = time.perf_counter()
                    m(inputs)
                    t_detector = (time.perf_counter() - t) / len(inputs)
                    print(
                        f"  {name} ({variant}): iteration {it + 1}/{warmup + iters}: backbone + "
                        f"neck {t_backbone:.3f} s, detector {t_detector:.3f} s per image",
                        flush=True,
                    )
                    if it >= warmup:
                        times[(variant, "backbone")].append(t_backbone)
                        times[(variant, "detector")].append(t_detector)
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append((name, med, flop_ratio, backbone_flops.get_total_flops() / len(inputs)))
    print(
        f"\n{'detector':22s} {'backbone GFLOPs':>16s} {'FLOP ratio':>11s} "
        f"{'as trained: backbone+neck / detector / ratio':>46s} "
        f"{'predictor: backbone+neck / detector / ratio':>46s}"
    )
    for name, med, flop_ratio, flops in rows:
        cells = []
        for variant in ("as trained", "predictor"):
            b, d = med[(variant, "backbone")], med[(variant, "detector")]
            cells.append(f"{b:10.3f} s {d:10.3f} s {d / b:8.2f}x")
        print(f"{name:22s} {flops / 1e9:16.1f} {flop_ratio:10.2f}x {cells[0]:>46s} {cells[1]:>46s}")


POINT_SET_DETECTORS = ("rotated_reppoints", "oriented_reppoints", "cfa", "sasm")


@contextlib.contextmanager
def torch_convex_ops():
    """While active, points_to_rbox's side choice and the convex IoU run on their torch
    formulations (has_kernel answers False for their compiled ops on the CPU)."""
    from rotated_det.layers import ops_library

    keys = [(op, "CPU") for op in ("min_area_rect_pair", "convex_overlaps")]
    saved = {key: ops_library.has_kernel(key[0], torch.device("cpu")) for key in keys}
    ops_library._kernels.update(dict.fromkeys(keys, False))
    try:
        yield
    finally:
        ops_library._kernels.update(saved)


def time_train(model, inputs, context=contextlib.nullcontext):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=1e-5, momentum=0.9)
    model.train()
    t = time.perf_counter()
    with context():
        losses = model(inputs)
    loss = sum(losses.values())
    opt.zero_grad()
    loss.backward()
    opt.step()
    return time.perf_counter() - t


def time_infer(model, inputs):
    model.eval()
    images = [{k: v for k, v in x.items() if k != "instances"} for x in inputs]
    with torch.no_grad():
        t = time.perf_counter()
        outputs = model(images)
        dt = time.perf_counter() - t
    return dt / len(images), sum(len(o["instances"]) for o in outputs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=5, help="timed iterations (median reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument(
        "--only",
        nargs="*",
        default=None,
        choices=list(DETECTORS) + list(SIZED_MODELS) + list(PROJECT_MODELS),
    )
    parser.add_argument(
        "--latency-1024",
        action="store_true",
        help=f"forward latency at 1024 x 1024, batch 1 (default: {', '.join(LATENCY_MODELS)})",
    )
    parser.add_argument(
        "--overhead",
        action="store_true",
        help="inference time of each detector next to its own backbone + neck (see above)",
    )
    parser.add_argument("--d2-path", default=os.environ.get("DETECTRON2_PATH", "/tmp/d2"))
    parser.add_argument("--image-size", type=int, default=512, help="training/inference images")
    parser.add_argument("--objects", type=int, default=20, help="objects per image")
    parser.add_argument(
        "--convex-ops-baseline",
        action="store_true",
        help="also time each point-set detector with points_to_rbox's side choice and the convex "
        "IoU on their torch formulations (the baseline of the compiled ops), interleaved",
    )
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.latency_1024:
        print(
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, eval forward of one "
            f"1024x1024 image, random weights; median of {args.iters} after {args.warmup} warm-up"
        )
        latency_1024(args.only or LATENCY_MODELS, args.iters, args.warmup)
        return
    if args.overhead:
        print(
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, eval, batch 2 of "
            f"512x512, 20 objects / image, random weights; seconds per image, median of "
            f"{args.iters} after {args.warmup} warm-up"
        )
        inference_overhead(
            args.only or list(DETECTORS) + list(PROJECT_MODELS), args.iters, args.warmup
        )
        return
    args.only = args.only or list(DETECTORS) + list(PROJECT_MODELS)
    size = args.image_size
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 2 of {size}x{size}, "
        f"{args.objects} objects / image, R-50-FPN, CPU; median of {args.iters} after "
        f"{args.warmup} warm-up"
    )
    scenes = make_scenes(size=size, num_objects=args.objects)
    ours_inputs = to_inputs(scenes, Instances, RotatedBoxes)

    reference, reason = build_detectron2(args.d2_path)
    if reference is None:
        print(f"Detectron2 reference unavailable ({reason}); timing rotated_det only.")

    rows = []
    for name in args.only:
        model = build_ours(name)
        calibrate_frozen_bn(model, ours_inputs)
        # (label, model, inputs, training context, context of the whole iteration)
        nullcontext = contextlib.nullcontext
        runs = [("rotated_det " + name, model, ours_inputs, nullcontext, nullcontext)]
        if name == "rotated_faster_rcnn" and reference is not None:
            d2_model, d2_inst, d2_boxes, d2_context = reference
            d2_inputs = to_inputs(scenes, d2_inst, d2_boxes)
            calibrate_frozen_bn(d2_model, d2_inputs)
            share_weights(d2_model, model)
            runs.append(("detectron2 RRPN+RROIHeads", d2_model, d2_inputs, d2_context, nullcontext))
        if args.convex_ops_baseline and name in POINT_SET_DETECTORS:
            label = f"rotated_det {name} (torch convex ops)"
            runs.append((label, model, ours_inputs, nullcontext, torch_convex_ops))
        train_t = {run[0]: [] for run in runs}
        infer_t = {run[0]: [] for run in runs}
        dets = {}
        # Interleave the implementations so that both see the same machine load.
        for it in range(args.warmup + args.iters):
            for label, m, inputs, context, iteration_context in runs:
                torch.manual_seed(it)
                with iteration_context():
                    t_train = time_train(m, inputs, context)
                    t_infer, n = time_infer(m, inputs)
                print(
                    f"  {label}: iteration {it + 1}/{args.warmup + args.iters}: train "
                    f"{t_train:.2f} s, inference {t_infer:.2f} s/image",
                    flush=True,
                )
                if it >= args.warmup:
                    train_t[label].append(t_train)
                    infer_t[label].append(t_infer)
                    dets[label] = n
        for label, *_ in runs:
            rows.append(
                (
                    label,
                    statistics.median(train_t[label]),
                    statistics.median(infer_t[label]),
                    dets[label],
                )
            )

    print()
    print(f"{'model':45s} {'train s/iter':>13s} {'infer s/image':>14s} {'detections':>11s}")
    for label, tr, inf, n in rows:
        print(f"{label:45s} {tr:13.3f} {inf:14.3f} {n:11d}")
    ours_row = next((r for r in rows if r[0] == "rotated_det rotated_faster_rcnn"), None)
    ref_row = next((r for r in rows if r[0].startswith("detectron2")), None)
    if ours_row and ref_row:
        print(
            f"\nRotated Faster R-CNN vs Detectron2: training {ref_row[1] / ours_row[1]:.2f}x, "
            f"inference {ref_row[2] / ours_row[2]:.2f}x (> 1: rotated_det is faster)"
        )


if __name__ == "__main__":
    main()

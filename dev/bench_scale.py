#!/usr/bin/env python
"""DOTA scale without DOTA: the data, evaluation and merging costs of a DOTA-sized run, each next
to the straightforward way measured in the same run, and an estimate of the wall time per epoch.

Sizes at ``--scale 1`` (each part can be run smaller with its own ``--<part>-scale``):

(a) loader: a lazily generated training set of 15,000 patches of 1024 px with about 30 objects
    each (:class:`LazySyntheticPatches`: each image is drawn by ``render_scene`` of
    rotated_det/data/datasets/synthetic.py when it is read, from a generator seeded by its index,
    and never stored). Throughput in images/s of
    - the real train loader: ``build_detection_train_loader`` with the DOTA config's mapper and
      augmentations (configs/DOTA-Rotated/rotated_faster_rcnn_R_50_FPN_1x.py: DatasetMapper, BGR,
      three random flips), its batch size (2), 2 workers;
    - baseline: the straightforward torch loader doing the same work:
      ``torch.utils.data.DataLoader`` over a map-style dataset that returns
      ``mapper(dataset[i])``, random sampling, the same batch size and 2 workers, a list
      collate (the default collate cannot batch dicts with Instances), and none of the train
      loader's machinery (per-item seeding for exact resume, aspect-ratio grouping, position
      bookkeeping);
    - and, for the per-image cost, a plain loop in the main process (drawing and mapping timed
      apart).
    The library's DatasetMapper reads images from files only (``detection_utils.read_image``), so
    the benchmark wraps the mapper in :class:`SyntheticImageReader`: the dataset dict carries the
    drawn image, and while the wrapped mapper runs, ``read_image`` returns it for that file name
    (an in-memory hook; both loaders use it). Drawing a scene costs more than decoding a DOTA PNG
    patch; the table shows both so that the figures can be read for real data.
(b) evaluation: 10,000 images x 1,000 detections (15 classes, 30 GT per image, data from
    dev/bench_eval.py's ``make_map_data``, drawn in chunks) through ``DOTAEvaluator.process`` and
    ``evaluate`` (IoU 0.5, and its default 0.50:0.95), with the peak resident memory it adds;
    baselines: dev/bench_eval.py's DOTA-kit per-detection loop with the compiled IoU and its
    shapely reference, run on the first ``--eval-ref-images`` images and extrapolated linearly in
    the number of images (APs on those images are checked to agree).
(c) merging: 10,000 patches x 1,000 detections (25 overlapping patches per full image, data from
    dev/bench_eval.py's ``make_patches``, drawn one full image at a time) through ``PatchMerger``
    (incremental, an image merged and released on its last patch); baselines: collect every raw
    detection, then ``batched_nms_rotated`` per image (on ``--merge-ref-images`` images,
    extrapolated linearly in images), and collect-all + Python polygon NMS (dev/bench_eval.py's,
    on one class of one image, extrapolated linearly in (image, class) groups).
(d) epoch estimate: 7,500 iterations of batch 2 (15,000 patches). CPU model time: train s/iter
    of Rotated Faster R-CNN R-50-FPN at batch 2 of 1024 px, by default README's 512 px figure of
    dev/bench_models.py (12.3 s, 1 thread) scaled by the pixel count (x4: an upper bound, since
    the proposal and RoI stages do not grow with the image); ``--cpu-model-time`` overrides it;
    ``--measure-cpu-model`` measures the DOTA config's model (random weights, two iterations,
    the second counts; about a minute each on 1 thread). GPU model time: ``--gpu-model-time``, or
    measured the same way when CUDA is available; otherwise unavailable. An iteration takes the
    longer of the model step and the loader's time per batch (the workers load while the model
    runs; on the CPU they also compete with it for cores, which this ignores).

    OMP_NUM_THREADS=1 .venv/bin/python dev/bench_scale.py --scale 0.01 --output /tmp/scale.json
    OMP_NUM_THREADS=1 .venv/bin/python dev/bench_scale.py --scale 1 --loader-scale 0.02 \\
        --output /tmp/scale.json
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import itertools
import json
import math
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.utils.data as torchdata

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rotated_det.data import detection_utils  # noqa: E402
from rotated_det.data.datasets.synthetic import SYNTHETIC_CLASSES, render_scene  # noqa: E402
from rotated_det.structures import BoxMode, Instances, RotatedBoxes, rbox_to_poly  # noqa: E402

FULL_TRAIN_PATCHES = 15_000
FULL_EVAL_IMAGES = 10_000
FULL_MERGE_PATCHES = 10_000
DETS_PER_IMAGE = 1_000
GTS_PER_IMAGE = 30
NUM_CLASSES = 15
PATCH = 1024
DENSITY = 0.3  # render_scene density giving about 30 objects per 1024 px patch
DOTA_CONFIG = REPO / "configs" / "DOTA-Rotated" / "rotated_faster_rcnn_R_50_FPN_1x.py"
README_TRAIN_S_PER_ITER_512 = 12.3  # README benchmark table, dev/bench_models.py, 1 thread


def _load_dev_module(name: str):
    spec = importlib.util.spec_from_file_location(f"_{name}_for_bench_scale", REPO / "dev" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------------------
# The lazily generated training set
# ------------------------------------------------------------------------------------------------
class LazySyntheticPatches(torchdata.Dataset):
    """``num_images`` square synthetic patches, each drawn when it is read and never stored.

    Item ``i`` is a standard dataset dict (``file_name``, ``image_id``, ``height``, ``width``,
    ``annotations`` with XYWHA_ABS boxes and ``category_id`` into ``SYNTHETIC_CLASSES``) plus
    ``"drawn_image"``: the BGR uint8 ``[size, size, 3]`` image. Everything is a function of
    ``(seed, i)`` only: ``render_scene`` draws from ``np.random.default_rng([seed, i])``.

    Args:
        num_images: dataset length.
        size: image side in pixels.
        density: ``render_scene`` density (0.3: about 30 objects per 1024 px image).
        seed: base seed.
    """

    def __init__(self, num_images: int, size: int = PATCH, density: float = DENSITY, seed: int = 0):
        self.num_images = int(num_images)
        self.size = int(size)
        self.density = float(density)
        self.seed = int(seed)

    def __len__(self) -> int:
        return self.num_images

    def scene(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``render_scene``'s ``(image, boxes [N, 5], classes [N], difficult [N])`` of ``index``."""
        if not 0 <= index < self.num_images:
            raise IndexError(f"LazySyntheticPatches: index {index} not in [0, {self.num_images})")
        rng = np.random.default_rng([self.seed, int(index)])
        return render_scene(rng, self.size, self.size, density=self.density)

    def __getitem__(self, index: int) -> dict:
        image, boxes, classes, difficult = self.scene(int(index))
        annotations = [
            {
                "bbox": [float(v) for v in b],
                "bbox_mode": BoxMode.XYWHA_ABS,
                "category_id": int(c),
                "difficult": int(d),
            }
            for b, c, d in zip(boxes, classes, difficult)
        ]
        return {
            "file_name": f"lazy_synthetic/seed{self.seed}/{int(index):06d}.png",
            "image_id": int(index),
            "height": self.size,
            "width": self.size,
            "annotations": annotations,
            "drawn_image": image,
        }


@contextlib.contextmanager
def _serve_image(file_name: str, image: np.ndarray) -> Iterator[None]:
    """While active, ``detection_utils.read_image(file_name, fmt)`` returns ``image`` (BGR
    uint8 [H, W, 3]) converted to ``fmt``; other names are read from disk as usual."""
    original = detection_utils.read_image

    def read_image(name: str, format: str = "BGR") -> np.ndarray:
        if name != file_name:
            return original(name, format)
        if format == "RGB":
            return image[:, :, ::-1]
        if format == "L":
            return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)[:, :, None]
        return image

    detection_utils.read_image = read_image
    try:
        yield
    finally:
        detection_utils.read_image = original


class SyntheticImageReader:
    """Wraps a mapper so that it reads the image drawn by :class:`LazySyntheticPatches` (the
    dict's ``"drawn_image"``, removed from the dict) instead of a file. Picklable, so it works in
    DataLoader workers whatever the start method."""

    def __init__(self, mapper):
        self.mapper = mapper

    def __call__(self, dataset_dict: dict):
        d = dict(dataset_dict)
        image = d.pop("drawn_image")
        with _serve_image(d["file_name"], image):
            return self.mapper(d)


class _MappedDataset(torchdata.Dataset):
    """The straightforward map-style dataset: item ``i`` is ``mapper(dataset[i])``."""

    def __init__(self, dataset, mapper):
        self.dataset, self.mapper = dataset, mapper

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        return self.mapper(self.dataset[i])


def _list_collate(batch: list) -> list:
    return batch


# ------------------------------------------------------------------------------------------------
# Measuring
# ------------------------------------------------------------------------------------------------
def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Peak resident memory of this process while the block runs, sampled every ``period`` s by
    a thread; :attr:`added` is the peak minus the resident memory at entry (bytes)."""

    def __init__(self, period: float = 0.02):
        self.period = period
        self.start = self.peak = 0
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.peak = max(self.peak, _rss_bytes())

    def __enter__(self) -> PeakRSS:
        gc.collect()
        self.start = self.peak = _rss_bytes()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())

    @property
    def added(self) -> int:
        return self.peak - self.start


def _mb(n_bytes: float) -> float:
    return n_bytes / 2**20


def _scaled(full: int, scale: float, minimum: int = 1) -> int:
    return max(minimum, int(round(full * scale)))


def _set_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


def _isolated(fn, *args):
    """``fn(*args)`` in a fresh (spawned) Python process: its peak memory is its own, not
    lowered by memory that earlier parts freed into this process's heap."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


# ------------------------------------------------------------------------------------------------
# (a) loader
# ------------------------------------------------------------------------------------------------
def _dota_train_config():
    from rotated_det.config import LazyConfig

    return LazyConfig.load(str(DOTA_CONFIG)).dataloader.train


def _time_batches(make_iter, num_batches: int) -> float:
    """Seconds for ``num_batches`` batches of a fresh iterator, after its first batch (which
    starts the workers and is not timed); the iterator and its workers are released after."""
    it = make_iter()
    next(it)
    t = time.perf_counter()
    for _ in itertools.islice(it, num_batches):
        pass
    dt = time.perf_counter() - t
    if hasattr(it, "close"):
        it.close()
    del it
    gc.collect()
    return dt


def bench_loader(args) -> dict:
    from rotated_det.config import instantiate
    from rotated_det.data import DatasetCatalog, MetadataCatalog, build_detection_train_loader

    n = _scaled(FULL_TRAIN_PATCHES, args.loader_scale, minimum=8)
    dataset = LazySyntheticPatches(n)
    name = f"bench_scale_lazy_synthetic_{n}"
    if name not in DatasetCatalog:
        DatasetCatalog.register(name, lambda: dataset)
        MetadataCatalog.get(name).thing_classes = list(SYNTHETIC_CLASSES)
    cfg = _dota_train_config()
    batch = int(cfg.total_batch_size)
    workers = args.workers
    print(
        f"\n== (a) loader: {n} lazily drawn {PATCH} px patches (dataset '{name}'), batch {batch} "
        f"(DOTA config), {workers} workers"
    )

    # The dataset: deterministic per index, boxes inside the image, about 30 objects.
    a, b = dataset[0], dataset[0]
    if not (
        np.array_equal(a["drawn_image"], b["drawn_image"]) and a["annotations"] == b["annotations"]
    ):
        raise AssertionError("LazySyntheticPatches is not deterministic per index")
    probe = [dataset.scene(i) for i in range(min(n, 6))]
    counts = [len(p[1]) for p in probe]
    for _, boxes, classes, _ in probe:
        # Objects lie inside the image; a storage tank (class 3) is a disc of diameter w whose
        # label square, at an angle, may reach past the border with its corners.
        pts = rbox_to_poly(boxes).reshape(-1, 4, 2)
        disc = classes == 3
        r = boxes[disc, 2:3] / 2
        pts[disc] = boxes[disc, None, :2] + np.stack([-r, -r, r, r], 1) * [[1, 1]]
        if len(pts) and (pts.min() < -1 or pts.max() > PATCH + 1):
            raise AssertionError("LazySyntheticPatches drew an object outside its image")
    print(f"objects per image on {len(probe)} images: {counts} (mean {np.mean(counts):.1f})")

    mapper = SyntheticImageReader(instantiate(cfg.mapper))
    loader = build_detection_train_loader(
        name,
        mapper=mapper,
        total_batch_size=batch,
        aspect_ratio_grouping=cfg.get("aspect_ratio_grouping", True),
        num_workers=workers,
        seed=0,
    )
    plain = torchdata.DataLoader(
        _MappedDataset(dataset, mapper),
        batch_size=batch,
        sampler=torchdata.RandomSampler(dataset, replacement=True, num_samples=10**8),
        num_workers=workers,
        collate_fn=_list_collate,
    )
    rounds = max(1, args.rounds)
    per_round = max(2, int(math.ceil(n / batch / rounds)))
    t_ours = t_plain = 0.0
    for r in range(rounds):  # alternate, so that both see the same machine load
        t_ours += _time_batches(lambda: iter(loader), per_round)
        t_plain += _time_batches(lambda: iter(plain), per_round)
        print(f"  round {r + 1}/{rounds}: {per_round} batches each", flush=True)
    images = rounds * per_round * batch
    ours_ips, plain_ips = images / t_ours, images / t_plain

    # Main-process loop: the per-image cost, drawing and mapping apart.
    n_main = max(2, min(images // 2, n))
    t_draw = t_map = 0.0
    for i in np.random.default_rng(1).integers(0, n, n_main):
        t = time.perf_counter()
        d = dataset[int(i)]
        t_draw += time.perf_counter() - t
        t = time.perf_counter()
        mapper(d)
        t_map += time.perf_counter() - t
    draw_ms, map_ms = 1e3 * t_draw / n_main, 1e3 * t_map / n_main
    ok, png = cv2.imencode(".png", probe[0][0])
    t = time.perf_counter()
    for _ in range(5):
        cv2.imdecode(png, cv2.IMREAD_COLOR)
    decode_ms = 1e3 * (time.perf_counter() - t) / 5
    return {
        "images": n,
        "batch": batch,
        "workers": workers,
        "images_timed": images,
        "objects_per_image_probe": counts,
        "train_loader_images_per_s": ours_ips,
        "plain_dataloader_images_per_s": plain_ips,
        "main_process_images_per_s": 1e3 / (draw_ms + map_ms),
        "draw_ms_per_image": draw_ms,
        "map_ms_per_image": map_ms,
        "png_decode_ms_per_image": decode_ms,
        "png_bytes": int(len(png)),
    }


# ------------------------------------------------------------------------------------------------
# (b) evaluation
# ------------------------------------------------------------------------------------------------
_EVAL_CHUNK = 100  # images drawn at once


def _eval_chunks(bench_eval, num_images: int, dets_per_image: int):
    """Yields ``(first_image, dets, gts)`` per chunk of images, as ``make_map_data`` makes them
    (image ids local to the chunk). The GT of a chunk do not depend on ``dets_per_image``."""
    for k, first in enumerate(range(0, num_images, _EVAL_CHUNK)):
        m = min(_EVAL_CHUNK, num_images - first)
        dets, gts = bench_eval.make_map_data(m, dets_per_image, GTS_PER_IMAGE, NUM_CLASSES, [7, k])
        yield first, dets, gts


def _register_eval_dataset(bench_eval, num_images: int) -> str:
    from rotated_det.data import DatasetCatalog, MetadataCatalog
    from rotated_det.structures.dota_format import DOTA_V1_CLASSES

    name = f"bench_scale_eval_{num_images}"
    if name in DatasetCatalog:
        return name
    dicts = []
    for first, _, (gt_img, gt_box, gt_cls, gt_diff) in _eval_chunks(bench_eval, num_images, 0):
        bounds = np.searchsorted(gt_img, np.arange(_EVAL_CHUNK + 1))
        for j in range(len(bounds) - 1):
            s = slice(bounds[j], bounds[j + 1])
            if first + j >= num_images:
                break
            annos = [
                {"bbox": b.tolist(), "bbox_mode": BoxMode.XYWHA_ABS, "category_id": int(c),
                 "difficult": int(x)}
                for b, c, x in zip(gt_box[s], gt_cls[s], gt_diff[s])
            ]  # fmt: skip
            dicts.append(
                {"file_name": f"img{first + j:06d}.png", "image_id": first + j, "height": PATCH,
                 "width": PATCH, "annotations": annos}
            )  # fmt: skip
    DatasetCatalog.register(name, lambda: dicts)
    MetadataCatalog.get(name).thing_classes = list(DOTA_V1_CLASSES)
    return name


def _run_evaluator(num_images: int, thresholds: tuple[float, ...], threads: int) -> dict:
    """DOTAEvaluator over ``num_images`` images (run in a fresh process by :func:`_isolated`):
    process and evaluate times, and the peak memory added after the dataset is registered."""
    from rotated_det.evaluation import DOTAEvaluator

    _set_threads(threads)
    bench_eval = _load_dev_module("bench_eval.py")
    t = time.perf_counter()
    name = _register_eval_dataset(bench_eval, num_images)
    t_register = time.perf_counter() - t
    with PeakRSS() as mem:
        ev = DOTAEvaluator(
            name, None, iou_thresholds=thresholds, plot_pr_curves=False, distributed=False
        )
        ev.reset()
        t_process = 0.0
        for first, (det_img, det_box, det_score, det_cls), _ in _eval_chunks(
            bench_eval, num_images, DETS_PER_IMAGE
        ):
            bounds = np.searchsorted(det_img, np.arange(det_img.max() + 2))
            boxes = torch.from_numpy(det_box.astype(np.float32))
            scores = torch.from_numpy(det_score.astype(np.float32))
            classes = torch.from_numpy(det_cls)
            for j in range(len(bounds) - 1):
                s = slice(int(bounds[j]), int(bounds[j + 1]))
                inst = Instances(
                    (PATCH, PATCH),
                    pred_boxes=RotatedBoxes(boxes[s]),
                    scores=scores[s],
                    pred_classes=classes[s],
                )
                t = time.perf_counter()
                ev.process([{"image_id": first + j}], [{"instances": inst}])
                t_process += time.perf_counter() - t
        t = time.perf_counter()
        res = ev.evaluate()
        t_eval = time.perf_counter() - t
        del ev
    return {
        "process_s": t_process,
        "evaluate_s": t_eval,
        "total_s": t_process + t_eval,
        "peak_added_mb": _mb(mem.added),
        "gt_dicts_s": t_register,
        "mAP50": res["rbox"]["mAP"],
        "mAP50_95": res["rbox"].get("mAP50-95"),
    }


def bench_eval_part(args, bench_eval) -> dict:
    from rotated_det.evaluation.rotated_map import COCO_IOU_THRESHOLDS, rotated_voc_map

    n = _scaled(FULL_EVAL_IMAGES, args.eval_scale)
    print(
        f"\n== (b) evaluation: {n} images x {DETS_PER_IMAGE} detections ({n * DETS_PER_IMAGE:,} "
        f"in all), {GTS_PER_IMAGE} GT per image, {NUM_CLASSES} classes, DOTAEvaluator"
    )
    at50 = _isolated(_run_evaluator, n, (0.5,), args.threads)
    print(f"  IoU 0.5: {at50}", flush=True)
    coco = _isolated(_run_evaluator, n, COCO_IOU_THRESHOLDS, args.threads)
    print(f"  IoU 0.50:0.95: {coco}", flush=True)

    # Baselines on the first images of the first chunk, extrapolated linearly in images.
    n_ref = max(1, min(args.eval_ref_images, n, _EVAL_CHUNK))
    _, dets, gts = next(_eval_chunks(bench_eval, n, DETS_PER_IMAGE))
    d_sub, g_sub = bench_eval.subset(dets, dets[0], n_ref), bench_eval.subset(gts, gts[0], n_ref)
    ours_sub = rotated_voc_map(*d_sub, *g_sub, num_classes=NUM_CLASSES).class_ap()
    t = time.perf_counter()
    loop_aps = bench_eval.kit_loop_compiled_iou(d_sub, g_sub, NUM_CLASSES)
    t_loop = time.perf_counter() - t
    n_shapely = max(1, min(args.eval_ref_images_shapely, n_ref))
    d_sh, g_sh = (
        bench_eval.subset(dets, dets[0], n_shapely),
        bench_eval.subset(gts, gts[0], n_shapely),
    )
    t = time.perf_counter()
    ref_aps = bench_eval.shapely_reference(d_sh, g_sh, NUM_CLASSES)
    t_ref = time.perf_counter() - t
    ours_sh = rotated_voc_map(*d_sh, *g_sh, num_classes=NUM_CLASSES).class_ap()
    diff_loop = float(np.nanmax(np.abs(ours_sub - loop_aps)))
    diff_ref = float(np.nanmax(np.abs(ours_sh - ref_aps)))
    if (
        diff_loop > 1e-6
        or diff_ref > 1e-6
        or not np.array_equal(np.isnan(ours_sh), np.isnan(ref_aps))
    ):
        raise AssertionError(f"AP disagreement with the references: {diff_loop}, {diff_ref}")
    return {
        "images": n,
        "detections": n * DETS_PER_IMAGE,
        "iou50": at50,
        "iou50_95": coco,
        "kit_loop_s_extrapolated": t_loop * n / n_ref,
        "kit_loop_ref_images": n_ref,
        "shapely_s_extrapolated": t_ref * n / n_shapely,
        "shapely_ref_images": n_shapely,
        "max_ap_diff_vs_references": max(diff_loop, diff_ref),
    }


# ------------------------------------------------------------------------------------------------
# (c) merging
# ------------------------------------------------------------------------------------------------
def _image_patches(bench_eval, k: int) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """The 25 patches (5 x 5 grid, 1024 px, gap 200) of full image ``k``, named ``IMG<k>``."""
    from rotated_det.structures.dota_patch_name import format_patch_name, parse_patch_name

    patches, _ = bench_eval.make_patches(25, DETS_PER_IMAGE, classes=NUM_CLASSES, seed=[11, k])
    out = []
    for name, b, s, c in patches:
        _, rate, x, y = parse_patch_name(name)
        out.append((format_patch_name(f"IMG{k:05d}", rate, x, y), b, s, c))
    return out


def _run_merger(num_images: int, threads: int) -> dict:
    """PatchMerger over the patches of ``num_images`` full images, drawn one image at a time
    (run in a fresh process by :func:`_isolated`): time (drawing excluded), detections kept,
    most raw detections held, peak memory added."""
    from rotated_det.evaluation.patch_merger import PatchMerger

    _set_threads(threads)
    bench_eval = _load_dev_module("bench_eval.py")
    expected = {f"IMG{k:05d}": 25 for k in range(num_images)}
    with PeakRSS() as mem:
        merger = PatchMerger(0.1, expected_patches=expected)
        kept, peak_held, t_ours = 0, 0, 0.0
        for k in range(num_images):
            patches = _image_patches(bench_eval, k)
            t = time.perf_counter()
            for name, b, s, c in patches:
                merger.add(name, b, s, c)
                peak_held = max(peak_held, merger.num_buffered_detections)
                kept += sum(len(d) for d in merger.pop_finished().values())
            t_ours += time.perf_counter() - t
        kept += sum(len(d) for d in merger.finish().values())
    return {"s": t_ours, "kept": kept, "peak_raw_held": peak_held, "peak_added_mb": _mb(mem.added)}


def bench_merge(args, bench_eval) -> dict:
    from rotated_det.evaluation.patch_merger import PatchMerger, patch_boxes_to_image
    from rotated_det.layers import batched_nms_rotated
    from rotated_det.structures.dota_patch_name import parse_patch_name

    per_image = 25  # _image_patches: a 5 x 5 grid
    num_images = max(1, int(math.ceil(_scaled(FULL_MERGE_PATCHES, args.merge_scale) / per_image)))
    n_patches = num_images * per_image
    print(
        f"\n== (c) merging: {n_patches} patches x {DETS_PER_IMAGE} detections "
        f"({n_patches * DETS_PER_IMAGE:,} in all), {num_images} full images of {per_image} "
        "patches, NMS IoU 0.1"
    )
    ours = _isolated(_run_merger, num_images, args.threads)
    print(f"  PatchMerger: {ours}", flush=True)

    # Collect-all + batched_nms_rotated per image, on the first images (same result checked).
    n_ref = max(1, min(args.merge_ref_images, num_images))
    t_all, kept_ref, kept_ours_ref = 0.0, 0, 0
    first_image = None
    for k in range(n_ref):
        patches = _image_patches(bench_eval, k)
        check = PatchMerger(0.1, expected_patches={f"IMG{k:05d}": per_image})
        for name, b, s, c in patches:
            check.add(name, b, s, c)
        kept_ours_ref += sum(len(d) for d in check.finish().values())
        t = time.perf_counter()
        held = []
        for name, b, s, c in patches:
            _, rate, x, y = parse_patch_name(name)
            held.append((patch_boxes_to_image(b, rate, x, y), s, c))
        boxes = torch.from_numpy(np.concatenate([h[0] for h in held]))
        scores = torch.from_numpy(np.concatenate([h[1] for h in held]))
        classes = torch.from_numpy(np.concatenate([h[2] for h in held]))
        kept_ref += len(batched_nms_rotated(boxes, scores, classes, 0.1))
        t_all += time.perf_counter() - t
        if first_image is None:
            first_image = (boxes.double().numpy(), scores.double().numpy(), classes.numpy())
    if kept_ref != kept_ours_ref:
        raise AssertionError(
            f"merging disagrees with batched_nms_rotated: {kept_ours_ref} vs {kept_ref}"
        )

    # Collect-all + Python polygon NMS: one class of the first image, extrapolated over
    # (image, class) groups.
    b, s, c = first_image
    idx = np.flatnonzero(c == c[0])
    t = time.perf_counter()
    bench_eval.python_poly_nms(b[idx], s[idx], 0.1)
    t_py_group = time.perf_counter() - t
    groups = num_images * len(np.unique(c))
    held_bytes = n_patches * DETS_PER_IMAGE * (5 * 4 + 4 + 8)  # float32 boxes, scores, int64
    return {
        "patches": n_patches,
        "full_images": num_images,
        "detections": n_patches * DETS_PER_IMAGE,
        "merger_s": ours["s"],
        "merger_kept": ours["kept"],
        "merger_peak_raw_held": ours["peak_raw_held"],
        "merger_peak_added_mb": ours["peak_added_mb"],
        "collect_all_nms_s_extrapolated": t_all * num_images / n_ref,
        "collect_all_ref_images": n_ref,
        "collect_all_raw_held": n_patches * DETS_PER_IMAGE,
        "collect_all_held_mb": _mb(held_bytes),
        "python_nms_s_extrapolated": t_py_group * groups,
        "python_nms_group_size": int(len(idx)),
        "python_nms_groups": groups,
    }


# ------------------------------------------------------------------------------------------------
# (d) model time and epoch estimate
# ------------------------------------------------------------------------------------------------
def measure_model_time(device: str, iters: int, warmup: int) -> float:
    """Median train s/iter of the DOTA config's Rotated Faster R-CNN R-50-FPN (random weights,
    frozen BN calibrated as dev/bench_models.py does) at batch 2 of 1024 px images with 30
    objects each (dev/bench_models.py's scenes)."""
    from rotated_det.config import LazyConfig, instantiate

    bench_models = _load_dev_module("bench_models.py")
    scenes = bench_models.make_scenes(num_images=2, size=PATCH, num_objects=GTS_PER_IMAGE)
    for _, _, classes in scenes:
        classes %= NUM_CLASSES
    inputs = bench_models.to_inputs(scenes, Instances, RotatedBoxes)
    torch.manual_seed(0)
    model = instantiate(LazyConfig.load(str(DOTA_CONFIG)).model)
    bench_models.calibrate_frozen_bn(model, inputs)
    model.to(device)
    inputs = [
        {**x, "image": x["image"].to(device), "instances": x["instances"].to(device)}
        for x in inputs
    ]
    times = []
    for it in range(warmup + iters):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        bench_models.time_train(model, inputs)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        dt = time.perf_counter() - t
        print(f"  model on {device}: iteration {it + 1}/{warmup + iters}: {dt:.3f} s", flush=True)
        if it >= warmup:
            times.append(dt)
    return float(np.median(times))


def epoch_estimate(args, loader: dict | None) -> dict:
    iters = FULL_TRAIN_PATCHES // 2
    out: dict = {"iterations": iters, "batch": 2}
    if args.cpu_model_time is not None:
        cpu, cpu_src = args.cpu_model_time, "--cpu-model-time"
    elif args.measure_cpu_model:
        print("\n== (d) model time on the CPU (1024 px, batch 2)")
        cpu = measure_model_time("cpu", iters=1, warmup=1)
        cpu_src = f"measured here ({torch.get_num_threads()} threads, second iteration)"
    else:
        cpu = README_TRAIN_S_PER_ITER_512 * (PATCH / 512) ** 2
        cpu_src = f"README's {README_TRAIN_S_PER_ITER_512} s at 512 px x4 (pixel count)"
    gpu, gpu_src = args.gpu_model_time, "--gpu-model-time"
    if gpu is None and torch.cuda.is_available():
        print("\n== (d) model time on the GPU (1024 px, batch 2)")
        try:
            gpu = measure_model_time("cuda", iters=5, warmup=3)
            gpu_src = f"measured here on {torch.cuda.get_device_name()}"
        except Exception as e:  # noqa: BLE001 - report why and go on
            gpu, gpu_src = None, f"measurement failed: {type(e).__name__}: {e}"
    elif gpu is None:
        gpu_src = "unavailable (no CUDA device; pass --gpu-model-time S)"
    batch_s = 2 / loader["train_loader_images_per_s"] if loader else 0.0
    per_image_s = 1 / loader["main_process_images_per_s"] if loader else 0.0
    out["loader_s_per_batch"] = batch_s
    out["cpu_model_s_per_iter"], out["cpu_model_source"] = cpu, cpu_src
    out["cpu_epoch_h"] = iters * max(cpu, batch_s) / 3600
    out["gpu_model_s_per_iter"], out["gpu_model_source"] = gpu, gpu_src
    out["loader_bound_epoch_h"] = iters * batch_s / 3600
    if gpu is not None:
        out["gpu_epoch_h"] = iters * max(gpu, batch_s) / 3600
        out["gpu_bound_by"] = "loader" if batch_s > gpu else "model"
        if per_image_s:
            out["workers_to_feed_gpu"] = int(math.ceil(2 * per_image_s / gpu))
    return out


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------
def _x(base: float, ours: float) -> str:
    return f"speed-up {base / ours:.1f}x" if ours > 0 else "-"


def print_table(res: dict) -> None:
    rows: list[tuple[str, str, str]] = []
    a = res.get("loader")
    if a:
        rows += [
            (
                f"(a) train loader, {a['workers']} workers, DOTA mapper, {a['images_timed']} "
                "images of 1024 px",
                f"{a['train_loader_images_per_s']:.1f} images/s",
                f"plain torch DataLoader, {a['workers']} workers: "
                f"{a['plain_dataloader_images_per_s']:.1f} images/s",
            ),
            (
                "(a) per image in one process: draw + map",
                f"{a['draw_ms_per_image']:.0f} + {a['map_ms_per_image']:.1f} ms "
                f"({a['main_process_images_per_s']:.1f} images/s)",
                f"PNG decode of the same image: {a['png_decode_ms_per_image']:.0f} ms",
            ),
        ]
    b = res.get("eval")
    if b:
        for key, label in (("iou50", "IoU 0.5"), ("iou50_95", "IoU 0.50:0.95")):
            e = b[key]
            base = (
                f"kit loop + compiled IoU ~{b['kit_loop_s_extrapolated']:.0f} s "
                f"(x{b['images'] / b['kit_loop_ref_images']:g} of {b['kit_loop_ref_images']} "
                f"images, {_x(b['kit_loop_s_extrapolated'], e['total_s'])}); shapely reference "
                f"~{b['shapely_s_extrapolated']:.0f} s (x{b['images'] / b['shapely_ref_images']:g})"
                if key == "iou50"
                else "(the kit runs once per threshold: x10 the IoU 0.5 figures)"
            )
            rows.append(
                (
                    f"(b) DOTAEvaluator {b['images']:,} images x {DETS_PER_IMAGE} dets, {label}",
                    f"{e['total_s']:.1f} s (process {e['process_s']:.1f} + evaluate "
                    f"{e['evaluate_s']:.1f}), +{e['peak_added_mb']:.0f} MB peak",
                    base,
                )
            )
    c = res.get("merge")
    if c:
        rows.append(
            (
                f"(c) merging {c['patches']:,} patches x {DETS_PER_IMAGE} dets "
                f"({c['full_images']} images)",
                f"{c['merger_s']:.1f} s, {c['merger_peak_raw_held']:,} raw dets held at most, "
                f"+{c['merger_peak_added_mb']:.0f} MB peak",
                f"collect-all + batched_nms_rotated ~{c['collect_all_nms_s_extrapolated']:.1f} s "
                f"(x{c['full_images'] / c['collect_all_ref_images']:g}, "
                f"{_x(c['collect_all_nms_s_extrapolated'], c['merger_s'])}), "
                f"{c['collect_all_raw_held']:,} held ({c['collect_all_held_mb']:.0f} MB); "
                f"Python polygon NMS ~{c['python_nms_s_extrapolated']:.0f} s (one class of "
                f"{c['python_nms_group_size']} dets x{c['python_nms_groups']})",
            )
        )
    d = res.get("epoch")
    if d:
        rows.append(
            (
                f"(d) DOTA epoch on this CPU ({d['iterations']} iter of batch 2 of 1024 px)",
                f"{d['cpu_epoch_h']:.1f} h (model {d['cpu_model_s_per_iter']:.1f} s/iter: "
                f"{d['cpu_model_source']})",
                f"loader alone: {d['loader_bound_epoch_h'] * 60:.1f} min "
                f"({d['loader_s_per_batch']:.3f} s/batch)",
            )
        )
        if d.get("gpu_model_s_per_iter") is not None:
            gpu = (
                f"{d['gpu_epoch_h'] * 60:.1f} min (model {d['gpu_model_s_per_iter']:.3f} s/iter: "
                f"{d['gpu_model_source']}); bound by the {d['gpu_bound_by']}"
            )
            base = (
                f"{d.get('workers_to_feed_gpu', '?')} workers like these would keep up"
                if d["gpu_bound_by"] == "loader"
                else ""
            )
        else:
            gpu = d["gpu_model_source"]
            base = (
                f"no faster than the loader alone: {d['loader_bound_epoch_h'] * 60:.1f} min"
                if d["loader_s_per_batch"]
                else ""
            )
        rows.append(("(d) DOTA epoch on a GPU", gpu, base))
    width = max(len(r[0]) for r in rows)
    mid = max(len(r[1]) for r in rows)
    print(f"\n{'what':<{width}} | {'rotated_det':<{mid}} | baseline, same run")
    print("-" * (width + mid + 24))
    for r in rows:
        print(f"{r[0]:<{width}} | {r[1]:<{mid}} | {r[2]}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--scale", type=float, default=0.01, help="fraction of the full sizes")
    p.add_argument("--loader-scale", type=float, help="(a) only (default --scale)")
    p.add_argument("--eval-scale", type=float, help="(b) only (default --scale)")
    p.add_argument("--merge-scale", type=float, help="(c) only (default --scale)")
    p.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads")
    p.add_argument("--workers", type=int, default=2, help="loader worker processes")
    p.add_argument("--rounds", type=int, default=2, help="(a) alternating timing rounds")
    p.add_argument("--eval-ref-images", type=int, default=20, help="(b) kit-loop baseline images")
    p.add_argument("--eval-ref-images-shapely", type=int, default=2, help="(b) shapely images")
    p.add_argument("--merge-ref-images", type=int, default=8, help="(c) collect-all images")
    p.add_argument("--cpu-model-time", type=float, help="CPU train s/iter, batch 2 of 1024 px")
    p.add_argument("--measure-cpu-model", action="store_true", help="measure it (minutes)")
    p.add_argument("--gpu-model-time", type=float, help="GPU train s/iter, batch 2 of 1024 px")
    p.add_argument("--only", nargs="*", choices=["loader", "eval", "merge"], default=None)
    p.add_argument("--output", help="write the JSON summary here")
    args = p.parse_args()
    for part in ("loader", "eval", "merge"):
        if getattr(args, f"{part}_scale") is None:
            setattr(args, f"{part}_scale", args.scale)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    load_start = os.getloadavg()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPUs, "
        f"load average at start {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}; "
        f"scales: loader {args.loader_scale:g}, eval {args.eval_scale:g}, "
        f"merge {args.merge_scale:g}"
    )
    bench_eval = _load_dev_module("bench_eval.py")
    parts = args.only or ["loader", "eval", "merge"]
    res: dict = {"args": vars(args), "load_average_start": load_start}
    t0 = time.perf_counter()
    if "loader" in parts:
        res["loader"] = bench_loader(args)
    if "eval" in parts:
        res["eval"] = bench_eval_part(args, bench_eval)
    if "merge" in parts:
        res["merge"] = bench_merge(args, bench_eval)
    res["epoch"] = epoch_estimate(args, res.get("loader"))
    res["load_average_end"] = os.getloadavg()
    res["wall_s"] = time.perf_counter() - t0
    print_table(res)
    le = res["load_average_end"]
    print(
        f"\nload average at start {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}, "
        f"at end {le[0]:.2f} {le[1]:.2f} {le[2]:.2f} ({os.cpu_count()} CPUs, shared with other "
        f"jobs); benchmark wall time {res['wall_s']:.0f} s"
    )
    if args.output:
        with open(args.output, "w") as f:
            json.dump(res, f, indent=1, default=float)
        print(f"JSON summary: {args.output}")


if __name__ == "__main__":
    main()

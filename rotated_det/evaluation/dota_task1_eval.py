"""Score DOTA Task1 result files against DOTA label files, locally (what the DOTA server does
for the validation set): the engine of ``tools/eval_dota.py``.

By default ground-truth polygons become their minimum-area rotated rectangles and detections'
polygons too (Task1 detections are rectangles already), and IoU is the compiled rotated-box IoU.
For labelled quadrilaterals that are not rectangles this differs slightly from the DOTA kit, which
intersects the raw polygons; ``polygon_iou_fn`` (``tools/eval_dota.py --polygon-iou``) scores the
polygons as written instead.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from rotated_det.evaluation.dota_submission import read_task1_results, write_task1_results
from rotated_det.evaluation.patch_merger import PatchMerger, strip_image_extension
from rotated_det.evaluation.rotated_map import RotatedMAPResult, rotated_voc_map
from rotated_det.structures import poly_to_rbox, rbox_to_poly
from rotated_det.structures.dota_format import (
    DOTA_V1_CLASSES,
    DOTA_V2_CLASSES,
    DOTA_V15_CLASSES,
    parse_dota_label_file,
)

__all__ = ["evaluate_task1_results", "merge_task1_patch_results", "read_imageset"]

logger = logging.getLogger(__name__)


def read_imageset(path: str) -> list[str]:
    """Image names listed one per line (extensions and blank lines ignored)."""
    with open(path, encoding="utf-8") as f:
        names = [strip_image_extension(line.strip()) for line in f if line.strip()]
    if not names:
        raise ValueError(f"Image set file {path} lists no image")
    return names


def _default_class_order(found: set[str]) -> list[str]:
    for classes in (DOTA_V1_CLASSES, DOTA_V15_CLASSES, DOTA_V2_CLASSES):
        if found <= set(classes):
            return list(classes)
    return sorted(found)


def merge_task1_patch_results(
    dets: dict[str, dict[str, np.ndarray]], iou_threshold: float = 0.1
) -> dict[str, dict[str, np.ndarray]]:
    """Merge Task1 results made on split patches (image names ``NAME__RATE__X___Y``) into
    results on the full images: boxes mapped back and merged by class-wise rotated NMS.

    Args:
        dets: as returned by :func:`read_task1_results` (class -> image_names, scores, polys).
        iou_threshold: NMS IoU threshold (the DOTA kit merges with 0.1).

    Returns:
        The same structure with full-image names and polygons.
    """
    class_names = list(dets)
    names = np.concatenate([d["image_names"] for d in dets.values()]).astype(str)
    scores = np.concatenate([d["scores"] for d in dets.values()])
    boxes = poly_to_rbox(np.concatenate([d["polys"] for d in dets.values()]).reshape(-1, 8))
    classes = np.concatenate([np.full(len(d["scores"]), k) for k, d in enumerate(dets.values())])
    order = np.argsort(names, kind="stable")
    names, scores, boxes, classes = names[order], scores[order], boxes[order], classes[order]
    if len(names):
        starts = np.flatnonzero(np.r_[True, names[1:] != names[:-1]])
        ends = np.r_[starts[1:], len(names)]
    else:
        starts = ends = np.zeros(0, dtype=np.int64)
    merger = PatchMerger(iou_threshold)
    for a, b in zip(starts, ends):
        merger.add(names[a], boxes[a:b], scores[a:b], classes[a:b])
    merged = merger.finish()
    out = {}
    for k, cname in enumerate(class_names):
        imgs, sc, polys = [], [], []
        for img in sorted(merged):
            m = merged[img]
            sel = m.classes == k
            imgs += [img] * int(sel.sum())
            sc.append(m.scores[sel].astype(np.float64))
            polys.append(rbox_to_poly(m.boxes[sel].astype(np.float64)).reshape(-1, 8))
        out[cname] = {
            "image_names": np.asarray(imgs, dtype=object),
            "scores": np.concatenate(sc) if sc else np.zeros(0),
            "polys": np.concatenate(polys) if polys else np.zeros((0, 8)),
        }
    return out


def evaluate_task1_results(
    det_dir: str,
    ann_dir: str,
    image_names: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    iou_thresholds: Sequence[float] = (0.5,),
    use_07_metric: bool = False,
    show_progress: bool = True,
    merge_patches: bool = False,
    merge_iou_threshold: float = 0.1,
    polygon_iou_fn=None,
    save_merged_dir: str | None = None,
) -> tuple[RotatedMAPResult, list[str]]:
    """Rotated mAP of ``det_dir/Task1_<class>.txt`` against ``ann_dir/<image>.txt``.

    Args:
        det_dir: directory of Task1 files.
        ann_dir: directory of DOTA label files.
        image_names: images to evaluate (default: every label file in ``ann_dir``). Detections
            on other images are dropped and counted in a warning.
        class_names: evaluated classes (default: the DOTA v1.0 / v1.5 / v2.0 list that contains
            every class found in the labels and result files, else their sorted union).
        iou_thresholds, use_07_metric: see :func:`rotated_voc_map`.
        merge_patches: the result files are on split patches: merge them into the full images
            first (:func:`merge_task1_patch_results`).
        merge_iou_threshold: IoU threshold of that merge.
        polygon_iou_fn: if given, ``(polys1 [N, 8], polys2 [M, 8]) -> IoU [N, M]`` applied to
            the polygons as written in the files (the DOTA kit's geometry) instead of the
            rotated-box IoU of their minimum-area rectangles.
        save_merged_dir: with ``merge_patches``, also write the merged results there as Task1
            files (and ``<dir>.zip``): a submission made from patch results.

    Returns:
        ``(result, class_names)``.
    """
    if image_names is None:
        image_names = sorted(n[:-4] for n in os.listdir(ann_dir) if n.endswith(".txt"))
        if not image_names:
            raise FileNotFoundError(f"No DOTA label file (*.txt) in {ann_dir}")
    image_names = list(image_names)
    index = {n: i for i, n in enumerate(image_names)}
    if len(index) != len(image_names):
        raise ValueError("The image set lists an image twice")

    labels = []
    for name in tqdm(image_names, desc="labels", disable=not show_progress, unit="img"):
        path = os.path.join(ann_dir, name + ".txt")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No DOTA label file for image '{name}': {path}")
        labels.append(parse_dota_label_file(path))
    dets = read_task1_results(det_dir)
    if merge_patches:
        dets = merge_task1_patch_results(dets, merge_iou_threshold)
        if save_merged_dir:
            zip_path = write_task1_results(dets, save_merged_dir)
            logger.info(f"Merged Task1 results written to {save_merged_dir} and {zip_path}")
    elif save_merged_dir:
        raise ValueError("save_merged_dir needs merge_patches=True")

    found = {c for lab in labels for c in lab.class_names} | set(dets)
    if class_names is None:
        class_names = _default_class_order(found)
    class_names = list(class_names)
    cls_index = {c: i for i, c in enumerate(class_names)}
    unknown = sorted(found - set(class_names))
    if unknown:
        raise ValueError(f"Classes {unknown} are not in the evaluated classes {class_names}")

    gt_ids, gt_polys, gt_cls, gt_diff = [], [], [], []
    for i, lab in enumerate(labels):
        gt_ids.append(np.full(len(lab), i))
        gt_polys.append(lab.polys)
        gt_cls.append(np.array([cls_index[c] for c in lab.class_names], dtype=np.int64))
        gt_diff.append(lab.difficult.astype(bool))

    det_ids, det_polys, det_scores, det_cls = [], [], [], []
    dropped = 0
    for cname, d in dets.items():
        ids = np.array([index.get(n, -1) for n in d["image_names"]], dtype=np.int64)
        ok = ids >= 0
        dropped += int((~ok).sum())
        det_ids.append(ids[ok])
        det_polys.append(d["polys"][ok])
        det_scores.append(d["scores"][ok])
        det_cls.append(np.full(int(ok.sum()), cls_index[cname], dtype=np.int64))
    if dropped:
        logger.warning(f"{dropped} detections are on images outside the evaluated set: dropped")

    def cat(parts, shape):
        return np.concatenate(parts) if parts else np.zeros(shape)

    det_geom, gt_geom = cat(det_polys, (0, 8)), cat(gt_polys, (0, 8))
    if polygon_iou_fn is None:
        det_geom, gt_geom = poly_to_rbox(det_geom), poly_to_rbox(gt_geom)
    result = rotated_voc_map(
        cat(det_ids, 0).astype(np.int64),
        det_geom,
        cat(det_scores, 0),
        cat(det_cls, 0).astype(np.int64),
        cat(gt_ids, 0).astype(np.int64),
        gt_geom,
        cat(gt_cls, 0).astype(np.int64),
        cat(gt_diff, 0).astype(bool),
        num_classes=len(class_names),
        iou_thresholds=iou_thresholds,
        use_07_metric=use_07_metric,
        iou_fn=polygon_iou_fn,
    )
    return result, class_names

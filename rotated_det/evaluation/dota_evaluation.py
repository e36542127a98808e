"""DOTAEvaluator: rotated VOC-style mAP as the DOTA development kit computes it (Task1).

Each processed image contributes its predictions; :meth:`DOTAEvaluator.evaluate` scores them with
:func:`~rotated_det.evaluation.rotated_map.rotated_voc_map` against the ground truth of the same
images (difficult objects ignored), at the IoU thresholds 0.50:0.95, and reports::

    {"rbox": {"mAP": AP50 averaged over classes, "AP50": same, "AP75": ..., "mAP50-95": ...,
              "AP50-small", "AP50-medium", "AP50-large": AP50 by rotated-box area w * h
              (< 32^2, 32^2 to 96^2, >= 96^2 pixels^2; see rotated_map's docstring),
              "AP-<class>": AP50 of each class}}   # AP values in percent, as in Detectron2

It prints a per-class table (GTs, detections, recall, AP) and saves precision-recall curves
(PNG) in ``output_dir``.

Split datasets (``merge_patches=True``): inputs are patches named ``NAME__RATE__X___Y``; their
predictions go through a :class:`~rotated_det.evaluation.patch_merger.PatchMerger` (mapped back to
the full image, class-wise rotated NMS) as they arrive, and are scored against the labels of the
full images, from a registered full-image dataset (``full_dataset_name``) or a DOTA label
directory (``ann_dir``). This is how DOTA results are reported.

Submission (``submission_dir``): the (merged) predictions are also written as DOTA Task1 files and
zipped, for the evaluation server. With ``compute_metrics=False`` (the test set, which has no
labels) only the submission is written. From the command line, with a LazyConfig whose
``dataloader.evaluator`` is a DOTAEvaluator on the split test set::

    python tools/lazyconfig_train_net.py --config-file configs/X.py --eval-only \
        train.init_checkpoint=W dataloader.evaluator.merge_patches=True \
        dataloader.evaluator.compute_metrics=False dataloader.evaluator.submission_dir=out/task1
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from rotated_det.evaluation.dota_submission import Task1Writer
from rotated_det.evaluation.evaluator import DatasetEvaluator
from rotated_det.evaluation.patch_merger import (
    MergedDetections,
    PatchMerger,
    strip_image_extension,
)
from rotated_det.evaluation.pr_curves import save_pr_curves
from rotated_det.evaluation.rotated_map import (
    COCO_IOU_THRESHOLDS,
    SIZE_RANGES,
    RotatedMAPResult,
    rotated_voc_map,
)
from rotated_det.structures import poly_to_rbox
from rotated_det.structures.dota_format import parse_dota_label_file
from rotated_det.structures.dota_patch_name import parse_patch_name
from rotated_det.utils import comm

__all__ = ["DOTAEvaluator", "RotatedGroundTruth", "format_class_table", "load_dota_label_dir"]

logger = logging.getLogger(__name__)


class RotatedGroundTruth:
    """Ground truth of one image as arrays: boxes float64 [G, 5] (XYWHA_ABS), classes int64 [G],
    difficult bool [G]."""

    __slots__ = ("boxes", "classes", "difficult")

    def __init__(self, boxes, classes, difficult):
        self.boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
        self.classes = np.asarray(classes, dtype=np.int64).reshape(-1)
        self.difficult = np.asarray(difficult, dtype=bool).reshape(-1)

    @staticmethod
    def from_dataset_dict(d: dict) -> RotatedGroundTruth:
        """From a standard dataset dict (annotations with ``bbox`` in XYWHA_ABS)."""
        from rotated_det.structures import BoxMode

        boxes, classes, difficult = [], [], []
        for k, ann in enumerate(d.get("annotations", [])):
            mode = ann.get("bbox_mode", BoxMode.XYWHA_ABS)
            if mode != BoxMode.XYWHA_ABS or len(ann["bbox"]) != 5:
                raise ValueError(
                    f"{d.get('file_name', d.get('image_id'))}: annotation {k} has bbox_mode "
                    f"{mode!r} and bbox {ann['bbox']}; the rotated evaluators expect "
                    "BoxMode.XYWHA_ABS (cx, cy, w, h, angle_deg)"
                )
            boxes.append(ann["bbox"])
            classes.append(ann["category_id"])
            difficult.append(bool(ann.get("difficult", 0)))
        return RotatedGroundTruth(boxes, classes, difficult)


def _image_key(name: str) -> str:
    return strip_image_extension(name)


def format_class_table(
    class_names: Sequence[str], result: RotatedMAPResult, iou_threshold: float = 0.5
) -> str:
    """A text table: class, GTs (non-difficult), detections, recall and AP at ``iou_threshold``,
    then the mean row."""
    col = result._column(iou_threshold)
    width = max([len("class"), *(len(c) for c in class_names)])
    pct = f"{iou_threshold * 100:.0f}"
    head = f"| {'class':<{width}} | {'gts':>6} | {'dets':>7} | {'recall' + pct:>8} | "
    head += f"{'AP' + pct:>6} |"
    rule = "|" + "-" * (width + 2) + "|" + "-" * 8 + "|" + "-" * 9 + "|" + "-" * 10 + "|"
    rule += "-" * 8 + "|"
    lines = [head, rule]
    for c, name in enumerate(class_names):
        rec, ap = result.recall[c, col], result.ap[c, col]
        rec_s = f"{rec:8.4f}" if np.isfinite(rec) else f"{'-':>8}"
        ap_s = f"{ap * 100:6.2f}" if np.isfinite(ap) else f"{'-':>6}"
        lines.append(
            f"| {name:<{width}} | {result.num_gts[c]:>6d} | {result.num_dets[c]:>7d} | "
            f"{rec_s} | {ap_s} |"
        )
    lines.append(rule)
    m = result.mean_ap(iou_threshold)
    m_s = f"{m * 100:6.2f}" if np.isfinite(m) else f"{'-':>6}"
    lines.append(
        f"| {'mAP':<{width}} | {int(result.num_gts.sum()):>6d} | {int(result.num_dets.sum()):>7d}"
        f" | {'':>8} | {m_s} |"
    )
    return "\n".join(lines)


class DOTAEvaluator(DatasetEvaluator):
    """Rotated VOC/DOTA mAP of a dataset's predictions (see the module docstring).

    Args:
        dataset_name: registered dataset whose images are evaluated (the patch dataset when
            merging). Its metadata gives ``thing_classes``.
        output_dir: where PR curves (``pr_curves/``) and the predictions are saved; None: nothing
            saved.
        iou_thresholds: thresholds evaluated (a detection matches when IoU > threshold). Must
            contain 0.5; AP75 and mAP50-95 are reported when 0.75 / all of 0.50:0.95 are there.
        use_07_metric: VOC2007 11-point AP instead of the area under the PR envelope (the DOTA
            default is the area).
        merge_patches: inputs are patches ``NAME__RATE__X___Y`` to be merged per full image.
        merge_iou_threshold: IoU of the class-wise rotated NMS that merges patches (DOTA kit: 0.1).
        full_dataset_name: registered full-image dataset with the labels to evaluate merged
            predictions against (images matched by file name stem).
        ann_dir: alternatively, a DOTA label directory (``<image name>.txt``) for merged
            predictions.
        submission_dir: if given, write DOTA Task1 files there and zip them (``<dir>.zip``).
        compute_metrics: False to only write the submission (test set without labels).
        plot_pr_curves: save PR curves as PNG in ``output_dir/pr_curves``.
        distributed: gather predictions from all ranks before evaluating.
        max_dets_per_image: keep at most this many merged detections per full image.
        size_ranges: ``{name: (lo, hi)}`` rotated-box areas (pixels^2, ``[lo, hi)``) reported as
            ``AP50-<name>``; default :data:`~rotated_det.evaluation.rotated_map.SIZE_RANGES`
            (COCO's small/medium/large); None or ``{}`` for none.
    """

    def __init__(
        self,
        dataset_name: str,
        output_dir: str | None = None,
        *,
        iou_thresholds: Sequence[float] = COCO_IOU_THRESHOLDS,
        use_07_metric: bool = False,
        merge_patches: bool = False,
        merge_iou_threshold: float = 0.1,
        full_dataset_name: str | None = None,
        ann_dir: str | None = None,
        submission_dir: str | None = None,
        compute_metrics: bool = True,
        plot_pr_curves: bool = True,
        distributed: bool = True,
        max_dets_per_image: int | None = None,
        size_ranges: Mapping[str, tuple[float, float]] | None = SIZE_RANGES,
    ):
        from rotated_det.data import MetadataCatalog

        self._dataset_name = dataset_name
        self._output_dir = output_dir
        self._iou_thresholds = tuple(float(t) for t in iou_thresholds)
        if not any(abs(t - 0.5) < 1e-9 for t in self._iou_thresholds):
            raise ValueError(
                f"DOTAEvaluator: iou_thresholds must contain 0.5, got {iou_thresholds}"
            )
        self._use_07_metric = use_07_metric
        self._merge = merge_patches
        self._merge_iou = merge_iou_threshold
        self._full_dataset_name = full_dataset_name
        self._ann_dir = ann_dir
        if merge_patches and compute_metrics and full_dataset_name is None and ann_dir is None:
            raise ValueError(
                "DOTAEvaluator(merge_patches=True) needs the full images' labels: pass "
                "full_dataset_name= or ann_dir= (or compute_metrics=False for a test set)"
            )
        self._submission_dir = submission_dir
        self._compute_metrics = compute_metrics
        self._plot = plot_pr_curves
        self._distributed = distributed
        self._max_dets = max_dets_per_image
        self._size_ranges = dict(size_ranges or {})
        meta = MetadataCatalog.get(dataset_name)
        self._class_names = list(meta.thing_classes)
        self._predictions: dict[str, MergedDetections] = {}
        self._merger: PatchMerger | None = None

    # -- DatasetEvaluator --------------------------------------------------------------------
    def reset(self) -> None:
        self._predictions = {}
        self._merger = None
        if self._merge:
            self._merger = PatchMerger(
                self._merge_iou,
                expected_patches=self._count_patches(),
                max_dets_per_image=self._max_dets,
            )

    def process(self, inputs, outputs) -> None:
        if self._merge and self._merger is None:
            self.reset()
        merger = self._merger if self._merge else None
        for inp, out in zip(inputs, outputs):
            inst = out["instances"]
            if hasattr(inst, "to"):
                inst = inst.to(torch.device("cpu"))
            boxes = (
                inst.pred_boxes.tensor if hasattr(inst.pred_boxes, "tensor") else inst.pred_boxes
            )
            if merger is not None:
                merger.add(inp["file_name"], boxes, inst.scores, inst.pred_classes)
                self._predictions.update(merger.pop_finished())
            else:
                key = str(inp["image_id"])
                dets = MergedDetections(
                    boxes.detach().numpy().astype(np.float32).reshape(-1, 5),
                    inst.scores.detach().numpy().astype(np.float32).reshape(-1),
                    inst.pred_classes.detach().numpy().astype(np.int64).reshape(-1),
                )
                if self._max_dets is not None and len(dets) > self._max_dets:
                    top = np.argsort(-dets.scores, kind="stable")[: self._max_dets]
                    dets = MergedDetections(dets.boxes[top], dets.scores[top], dets.classes[top])
                self._predictions[key] = dets

    def evaluate(self):
        predictions = self._predictions
        if self._merger is not None:
            predictions.update(self._merger.finish())
        if self._distributed and comm.get_world_size() > 1:
            comm.synchronize()
            parts = comm.gather(predictions, dst=0)
            if not comm.is_main_process():
                return {}
            predictions = self._combine_ranks(parts)
        if not predictions:
            logger.warning(f"[DOTAEvaluator] No predictions for dataset {self._dataset_name}")
            return {}
        if self._output_dir:
            os.makedirs(self._output_dir, exist_ok=True)
            torch.save(
                {k: v.__dict__ for k, v in predictions.items()},
                os.path.join(self._output_dir, "rotated_predictions.pth"),
            )
        if self._submission_dir:
            self._write_submission(predictions, self._submission_dir)
        if not self._compute_metrics:
            return {}
        gts = self._load_ground_truth(sorted(predictions))
        if gts is None:
            logger.warning(
                f"[DOTAEvaluator] The images of '{self._dataset_name}' have no labels "
                "(no 'annotations'): no metrics"
                + (f"; the submission is in {self._submission_dir}" if self._submission_dir else "")
                + ". Pass compute_metrics=False to silence this."
            )
            return {}
        return self._evaluate_predictions(predictions, gts)

    # -- helpers -----------------------------------------------------------------------------
    def _count_patches(self) -> dict[str, int] | None:
        from rotated_det.data import DatasetCatalog

        counts: dict[str, int] = {}
        try:
            dicts = DatasetCatalog.get(self._dataset_name)
        except KeyError:
            return None
        for d in dicts:
            name = parse_patch_name(_image_key(d["file_name"]))[0]
            counts[name] = counts.get(name, 0) + 1
        return counts

    def _combine_ranks(self, parts: list[dict]) -> dict[str, MergedDetections]:
        out: dict[str, MergedDetections] = {}
        for part in parts:
            for k, v in part.items():
                if k in out and self._merge:
                    # One full image split across ranks: merge the two partial results again.
                    m = PatchMerger(
                        self._merge_iou,
                        max_dets_per_image=self._max_dets,
                        parse_name=lambda n: (n, 1.0, 0, 0),
                    )
                    m.add(k, out[k].boxes, out[k].scores, out[k].classes)
                    m.add(k, v.boxes, v.scores, v.classes)
                    v = m.finish()[k]
                out[k] = v
        return out

    def _write_submission(
        self, predictions: dict[str, MergedDetections], submission_dir: str
    ) -> None:
        with Task1Writer(submission_dir, self._class_names) as w:
            for name in sorted(predictions):
                d = predictions[name]
                w.add(_image_key(name), d.boxes, d.scores, d.classes)
        logger.info(
            f"[DOTAEvaluator] Wrote {w.num_detections} detections of {w.num_images} images as "
            f"DOTA Task1 files in {submission_dir} and {w.zip_path}"
        )

    def _load_ground_truth(self, keys: list[str]) -> dict[str, RotatedGroundTruth] | None:
        """GT of the predicted images; None when the dataset has no labels (a test set)."""
        from rotated_det.data import DatasetCatalog

        if not self._merge:
            dicts = DatasetCatalog.get(self._dataset_name)
            by_id = {str(d["image_id"]): d for d in dicts}
            missing = [k for k in keys if k not in by_id]
            if missing:
                raise KeyError(
                    f"DOTAEvaluator: {len(missing)} predicted image_id(s) not in dataset "
                    f"'{self._dataset_name}', e.g. {missing[:3]}"
                )
            if len(keys) < len(by_id):
                logger.warning(
                    f"[DOTAEvaluator] Evaluating the {len(keys)} processed images of the "
                    f"{len(by_id)} in '{self._dataset_name}'"
                )
            if not any("annotations" in by_id[k] for k in keys):
                return None
            return {k: RotatedGroundTruth.from_dataset_dict(by_id[k]) for k in keys}
        if self._full_dataset_name is not None:
            dicts = DatasetCatalog.get(self._full_dataset_name)
            by_name = {_image_key(d["file_name"]): d for d in dicts}
            missing = [k for k in keys if k not in by_name]
            if missing:
                raise KeyError(
                    f"DOTAEvaluator: {len(missing)} merged image(s) not in full-image dataset "
                    f"'{self._full_dataset_name}', e.g. {missing[:3]}"
                )
            if not any("annotations" in by_name[k] for k in keys):
                return None
            return {k: RotatedGroundTruth.from_dataset_dict(by_name[k]) for k in keys}
        if self._ann_dir is None:  # the constructor refuses this with compute_metrics
            raise ValueError("DOTAEvaluator: merged predictions need full_dataset_name or ann_dir")
        return load_dota_label_dir(self._ann_dir, keys, self._class_names)

    def _evaluate_predictions(
        self, predictions: dict[str, MergedDetections], gts: dict[str, RotatedGroundTruth]
    ) -> OrderedDict:
        result = self._score(predictions, gts, self._use_07_metric, self._size_ranges)
        mode = "VOC07 11-point" if self._use_07_metric else "area"
        sizes = "".join(
            f"\nAP50-{name}: {100 * result.area_mean_ap(name, 0.5):.2f} "
            f"({int(result.area_num_gts[name].sum())} GTs)"
            for name in result.area_ap
        )
        logger.info(
            f"[DOTAEvaluator] {self._dataset_name}: {len(gts)} images, AP ({mode}) per class "
            f"at IoU 0.5:\n" + format_class_table(self._class_names, result, 0.5) + sizes
        )
        if self._plot and self._output_dir:
            save_pr_curves(
                os.path.join(self._output_dir, "pr_curves"),
                self._class_names,
                result.curves,
                result.class_ap(result.iou_thresholds[0]),
                float(result.iou_thresholds[0]),
            )
        res = self._summarize(result)
        return OrderedDict({"rbox": res})

    def _score(
        self,
        predictions,
        gts,
        use_07_metric: bool,
        area_ranges: Mapping[str, tuple[float, float]] | None = None,
    ) -> RotatedMAPResult:
        keys = sorted(gts)
        index = {k: i for i, k in enumerate(keys)}
        empty = MergedDetections.empty()
        dets = [predictions.get(k, empty) for k in keys]
        det_ids = np.concatenate([np.full(len(d), index[k]) for k, d in zip(keys, dets)])
        gt_ids = np.concatenate([np.full(len(gts[k].classes), index[k]) for k in keys])
        # Put 0.5 first so that curves and the recall column refer to it.
        thresholds = sorted(self._iou_thresholds, key=lambda t: (abs(t - 0.5) > 1e-9, t))
        return rotated_voc_map(
            det_ids,
            np.concatenate([d.boxes for d in dets]),
            np.concatenate([d.scores for d in dets]),
            np.concatenate([d.classes for d in dets]),
            gt_ids,
            np.concatenate([gts[k].boxes for k in keys]),
            np.concatenate([gts[k].classes for k in keys]),
            np.concatenate([gts[k].difficult for k in keys]),
            num_classes=len(self._class_names),
            iou_thresholds=thresholds,
            use_07_metric=use_07_metric,
            area_ranges=area_ranges,
        )

    def _summarize(self, result: RotatedMAPResult) -> OrderedDict:
        res: OrderedDict = OrderedDict()
        res["mAP"] = 100 * result.mean_ap(0.5)
        res["AP50"] = res["mAP"]
        if any(abs(t - 0.75) < 1e-9 for t in self._iou_thresholds):
            res["AP75"] = 100 * result.mean_ap(0.75)
        if all(any(abs(t - c) < 1e-9 for t in self._iou_thresholds) for c in COCO_IOU_THRESHOLDS):
            res["mAP50-95"] = 100 * float(np.mean([result.mean_ap(t) for t in COCO_IOU_THRESHOLDS]))
        for name in result.area_ap:
            res[f"AP50-{name}"] = 100 * result.area_mean_ap(name, 0.5)
        for name, ap in zip(self._class_names, result.class_ap(0.5)):
            res[f"AP-{name}"] = 100 * float(ap)
        return res


def load_dota_label_dir(
    ann_dir: str, image_names: Sequence[str], class_names: Sequence[str]
) -> dict[str, RotatedGroundTruth]:
    """Ground truth of ``image_names`` from DOTA label files ``<ann_dir>/<name>.txt``.

    Polygons become their minimum-area rotated rectangles (as for training). An object whose
    category is not in ``class_names`` raises ``ValueError`` naming the file and line.
    """
    index = {c: i for i, c in enumerate(class_names)}
    out = {}
    for name in image_names:
        path = os.path.join(ann_dir, f"{name}.txt")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No DOTA label file for image '{name}': {path}")
        labels = parse_dota_label_file(path)
        classes = []
        for k, c in enumerate(labels.class_names):
            if c not in index:
                line = labels.line_numbers[k] if labels.line_numbers is not None else "?"
                raise ValueError(
                    f"{path}:{line}: category '{c}' is not one of the evaluated classes "
                    f"{list(class_names)}"
                )
            classes.append(index[c])
        out[name] = RotatedGroundTruth(
            poly_to_rbox(labels.polys), classes, labels.difficult.astype(bool)
        )
    return out

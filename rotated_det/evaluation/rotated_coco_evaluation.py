"""COCO-style AP of rotated boxes: pycocotools' COCOeval with the rotated IoU.

COCOeval matches detections to ground truth with the IoU returned by ``computeIoU``;
:class:`RotatedCOCOeval` overrides it with the compiled rotated IoU of (cx, cy, w, h, angle)
boxes. Everything else (101-point interpolated precision, IoU 0.50:0.95, area ranges, crowd
handling) is pycocotools' own. Areas are rotated-box areas ``w * h`` (small < 32^2 <= medium
< 96^2 <= large, in pixels^2).

Difficult objects (DOTA, HRSC) are passed as crowd regions (``difficult_as_crowd=True``): they
neither count as misses nor turn the detections on them into false positives, and, as for any
COCO crowd region, their overlap is intersection over the *detection's* area.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from rotated_det.evaluation.dota_evaluation import RotatedGroundTruth
from rotated_det.evaluation.evaluator import DatasetEvaluator
from rotated_det.layers import box_iou_rotated
from rotated_det.utils import comm

__all__ = ["RotatedCOCOeval", "RotatedCOCOEvaluator", "rotated_coco_eval"]

logger = logging.getLogger(__name__)

_STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")


class RotatedCOCOeval(COCOeval):
    """COCOeval whose ``bbox`` entries are rotated boxes [cx, cy, w, h, angle_deg]."""

    def computeIoU(self, imgId, catId):  # noqa: N802 (pycocotools' name)
        p = self.params
        if p.useCats:
            gt = self._gts[imgId, catId]
            dt = self._dts[imgId, catId]
        else:
            gt = [g for c in p.catIds for g in self._gts[imgId, c]]
            dt = [d for c in p.catIds for d in self._dts[imgId, c]]
        if len(gt) == 0 or len(dt) == 0:
            return []
        # Same order and truncation as COCOeval.computeIoU (stable sort by decreasing score).
        order = np.argsort([-d["score"] for d in dt], kind="mergesort")
        dt = [dt[i] for i in order[: p.maxDets[-1]]]
        d = torch.tensor([x["bbox"] for x in dt], dtype=torch.float64).reshape(-1, 5)
        g = torch.tensor([x["bbox"] for x in gt], dtype=torch.float64).reshape(-1, 5)
        ious = box_iou_rotated(d, g).numpy()
        crowd = np.array([bool(x.get("iscrowd", 0)) for x in gt])
        if crowd.any():
            iof = box_iou_rotated(d, g[torch.from_numpy(crowd)], mode="iof").numpy()
            ious[:, crowd] = iof
        return ious


def _quiet(fn, *args):
    """Run a chatty pycocotools call, sending its prints to the debug log."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        out = fn(*args)
    if buf.getvalue():
        logger.debug(buf.getvalue())
    return out


def rotated_coco_eval(
    gts: Sequence[RotatedGroundTruth],
    dets: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    class_names: Sequence[str],
    max_dets_per_image: int = 100,
    difficult_as_crowd: bool = True,
) -> tuple[OrderedDict, RotatedCOCOeval]:
    """COCO AP of rotated detections.

    Args:
        gts: per image, its ground truth.
        dets: per image (same order), ``(boxes float [D, 5], scores [D], classes int [D])``.
        class_names: C names; classes are indices into it.
        max_dets_per_image: the largest of COCOeval's ``maxDets`` (COCO: 100; dense aerial
            images need more).
        difficult_as_crowd: pass difficult objects as crowd (ignored) regions.

    Returns:
        ``(results, coco_eval)``: results in percent (AP, AP50, AP75, APs, APm, APl and
        ``AP-<class>``; NaN where undefined), and the evaluated :class:`RotatedCOCOeval`.
    """
    if len(gts) != len(dets):
        raise ValueError(f"rotated_coco_eval: {len(gts)} ground truths but {len(dets)} detections")
    images = [{"id": i + 1} for i in range(len(gts))]
    categories = [{"id": c + 1, "name": n} for c, n in enumerate(class_names)]
    gt_anns: list[dict[str, Any]] = []
    dt_anns: list[dict[str, Any]] = []
    for i, g in enumerate(gts):
        for box, cls, diff in zip(g.boxes.tolist(), g.classes.tolist(), g.difficult.tolist()):
            gt_anns.append(
                {
                    "id": len(gt_anns) + 1,  # COCOeval treats id 0 as "unmatched"
                    "image_id": i + 1,
                    "category_id": cls + 1,
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": int(diff and difficult_as_crowd),
                }
            )
    for i, (boxes, scores, classes) in enumerate(dets):
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
        for box, s, cls in zip(
            boxes.tolist(), np.asarray(scores).tolist(), np.asarray(classes).tolist()
        ):
            dt_anns.append(
                {
                    "id": len(dt_anns) + 1,
                    "image_id": i + 1,
                    "category_id": int(cls) + 1,
                    "bbox": box,
                    "score": float(s),
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
            )
    coco_gt, coco_dt = COCO(), COCO()
    coco_gt.dataset = {"images": images, "categories": categories, "annotations": gt_anns}
    coco_dt.dataset = {"images": images, "categories": categories, "annotations": dt_anns}
    _quiet(coco_gt.createIndex)
    _quiet(coco_dt.createIndex)
    ev = RotatedCOCOeval(coco_gt, coco_dt, iouType="bbox")
    ev.params.maxDets = [1, 10, int(max_dets_per_image)]
    _quiet(ev.evaluate)
    _quiet(ev.accumulate)
    summary = io.StringIO()
    with contextlib.redirect_stdout(summary):
        ev.summarize()
    logger.info("Rotated COCO evaluation:\n" + summary.getvalue())
    results: OrderedDict = OrderedDict()
    for k, name in enumerate(_STAT_NAMES):
        v = float(ev.stats[k])
        results[name] = 100 * v if v >= 0 else float("nan")
    # precision: [T, R, K, A, M]; per class at all IoUs, area "all", the largest maxDets.
    precision = ev.eval["precision"]
    for c, name in enumerate(class_names):
        p = precision[:, :, c, 0, -1]
        p = p[p > -1]
        results[f"AP-{name}"] = 100 * float(p.mean()) if p.size else float("nan")
    return results, ev


class RotatedCOCOEvaluator(DatasetEvaluator):
    """COCO AP, AP50, AP75, APs/m/l of rotated boxes (evaluator_type ``"rotated_coco"``).

    Args:
        dataset_name: registered dataset with rotated annotations (XYWHA_ABS) and
            ``thing_classes`` metadata.
        output_dir: if given, the predictions are saved there as ``rotated_coco_results.json``.
        max_dets_per_image: the largest COCO ``maxDets`` (default 100 as in COCO).
        difficult_as_crowd: pass difficult objects as crowd (ignored) regions.
        distributed: gather predictions from all ranks before evaluating.
    """

    def __init__(
        self,
        dataset_name: str,
        output_dir: str | None = None,
        *,
        max_dets_per_image: int = 100,
        difficult_as_crowd: bool = True,
        distributed: bool = True,
    ):
        from rotated_det.data import MetadataCatalog

        self._dataset_name = dataset_name
        self._output_dir = output_dir
        self._max_dets = max_dets_per_image
        self._difficult_as_crowd = difficult_as_crowd
        self._distributed = distributed
        self._class_names = list(MetadataCatalog.get(dataset_name).thing_classes)
        self._predictions: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def reset(self) -> None:
        self._predictions = {}

    def process(self, inputs, outputs) -> None:
        for inp, out in zip(inputs, outputs):
            inst = out["instances"]
            if hasattr(inst, "to"):
                inst = inst.to(torch.device("cpu"))
            boxes = (
                inst.pred_boxes.tensor if hasattr(inst.pred_boxes, "tensor") else inst.pred_boxes
            )
            self._predictions[str(inp["image_id"])] = (
                boxes.detach().numpy().astype(np.float64).reshape(-1, 5),
                inst.scores.detach().numpy().astype(np.float64).reshape(-1),
                inst.pred_classes.detach().numpy().astype(np.int64).reshape(-1),
            )

    def evaluate(self):
        from rotated_det.data import DatasetCatalog

        predictions = self._predictions
        if self._distributed and comm.get_world_size() > 1:
            comm.synchronize()
            parts = comm.gather(predictions, dst=0)
            if not comm.is_main_process():
                return {}
            predictions = {k: v for part in parts for k, v in part.items()}
        if not predictions:
            logger.warning(f"[RotatedCOCOEvaluator] No predictions for {self._dataset_name}")
            return {}
        by_id = {str(d["image_id"]): d for d in DatasetCatalog.get(self._dataset_name)}
        keys = sorted(predictions)
        missing = [k for k in keys if k not in by_id]
        if missing:
            raise KeyError(
                f"RotatedCOCOEvaluator: {len(missing)} predicted image_id(s) not in dataset "
                f"'{self._dataset_name}', e.g. {missing[:3]}"
            )
        if self._output_dir:
            os.makedirs(self._output_dir, exist_ok=True)
            with open(os.path.join(self._output_dir, "rotated_coco_results.json"), "w") as f:
                json.dump(
                    [
                        {
                            "image_id": k,
                            "category_id": int(c),
                            "bbox": b.tolist(),
                            "score": float(s),
                        }
                        for k in keys
                        for b, s, c in zip(*predictions[k])
                    ],
                    f,
                )
        gts = [RotatedGroundTruth.from_dataset_dict(by_id[k]) for k in keys]
        results, _ = rotated_coco_eval(
            gts,
            [predictions[k] for k in keys],
            self._class_names,
            max_dets_per_image=self._max_dets,
            difficult_as_crowd=self._difficult_as_crowd,
        )
        return OrderedDict({"rbox": results})

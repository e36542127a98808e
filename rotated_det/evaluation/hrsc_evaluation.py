"""HRSC2016 evaluation: AP at IoU 0.5 in both VOC2007 11-point and area modes (papers report
either; the "07" number is the one most HRSC tables quote), and mAP over IoU 0.50:0.95.

Results::

    {"rbox": {"mAP": AP50 (area), "AP50": AP50 (area), "AP50-07": AP50 (VOC07 11-point),
              "AP75": ..., "AP75-07": ..., "mAP50-95": ..., "mAP50-95-07": ...,
              "AP-<class>": AP50 (area), "AP-07-<class>": AP50 (VOC07)}}   # percent
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict

from rotated_det.evaluation.dota_evaluation import DOTAEvaluator, format_class_table
from rotated_det.evaluation.pr_curves import save_pr_curves
from rotated_det.evaluation.rotated_map import COCO_IOU_THRESHOLDS

__all__ = ["HRSCEvaluator"]

logger = logging.getLogger(__name__)


class HRSCEvaluator(DOTAEvaluator):
    """Rotated AP of HRSC2016-style datasets (evaluator_type ``"hrsc"``); difficult ships are
    ignored as in the DOTA/VOC rules.

    Args:
        dataset_name: registered dataset (metadata ``thing_classes``, e.g. ``["ship"]``).
        output_dir: where PR curves are saved (None: not saved).
        plot_pr_curves, distributed: as for :class:`DOTAEvaluator`.
    """

    def __init__(
        self,
        dataset_name: str,
        output_dir: str | None = None,
        *,
        plot_pr_curves: bool = True,
        distributed: bool = True,
    ):
        super().__init__(
            dataset_name,
            output_dir,
            iou_thresholds=COCO_IOU_THRESHOLDS,
            use_07_metric=False,
            plot_pr_curves=plot_pr_curves,
            distributed=distributed,
        )

    def _evaluate_predictions(self, predictions, gts) -> OrderedDict:
        area = self._score(predictions, gts, use_07_metric=False)
        voc07 = self._score(predictions, gts, use_07_metric=True)
        logger.info(
            f"[HRSCEvaluator] {self._dataset_name}: {len(gts)} images, AP50 (area):\n"
            + format_class_table(self._class_names, area, 0.5)
            + f"\nAP50 (VOC07 11-point): {100 * voc07.mean_ap(0.5):.2f}"
        )
        if self._plot and self._output_dir:
            save_pr_curves(
                os.path.join(self._output_dir, "pr_curves"),
                self._class_names,
                area.curves,
                area.class_ap(0.5),
                0.5,
            )
        res: OrderedDict = OrderedDict()
        res["mAP"] = 100 * area.mean_ap(0.5)
        for suffix, r in (("", area), ("-07", voc07)):
            res[f"AP50{suffix}"] = 100 * r.mean_ap(0.5)
            res[f"AP75{suffix}"] = 100 * r.mean_ap(0.75)
            res[f"mAP50-95{suffix}"] = 100 * r.mean_ap_over_thresholds()
        for name, ap, ap07 in zip(self._class_names, area.class_ap(0.5), voc07.class_ap(0.5)):
            res[f"AP-{name}"] = 100 * float(ap)
            res[f"AP-07-{name}"] = 100 * float(ap07)
        return OrderedDict({"rbox": res})

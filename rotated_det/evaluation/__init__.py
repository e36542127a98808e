"""Evaluation: the DatasetEvaluator interface, inference_on_dataset, and the rotated metrics."""

from .evaluator import (
    DatasetEvaluator,
    DatasetEvaluators,
    inference_context,
    inference_on_dataset,
)

# EVAL's exports (metrics, evaluators) go in one block below.
# isort: split
from .build import EVALUATOR_TYPES, build_evaluator  # noqa: F401
from .dota_evaluation import DOTAEvaluator, RotatedGroundTruth, format_class_table  # noqa: F401
from .dota_submission import Task1Writer, read_task1_results, write_task1_results  # noqa: F401
from .dota_task1_eval import evaluate_task1_results  # noqa: F401
from .hrsc_evaluation import HRSCEvaluator  # noqa: F401
from .patch_merger import MergedDetections, PatchMerger, patch_boxes_to_image  # noqa: F401
from .rotated_coco_evaluation import RotatedCOCOeval, RotatedCOCOEvaluator, rotated_coco_eval  # noqa: F401
from .rotated_map import COCO_IOU_THRESHOLDS, RotatedMAPResult, rotated_voc_map, voc_ap  # noqa: F401

"""Evaluation: the DatasetEvaluator interface, inference_on_dataset, and the rotated metrics."""

from .build import EVALUATOR_TYPES, build_evaluator
from .confusion_matrix import ConfusionMatrix, rotated_confusion_matrix
from .detection_arrays import DetectionArrays, as_detection_arrays, flatten_per_image
from .dota_evaluation import DOTAEvaluator, RotatedGroundTruth, format_class_table
from .dota_submission import Task1Writer, read_task1_results, write_task1_results
from .dota_task1_eval import evaluate_task1_results
from .error_analysis import (
    ERROR_TYPES,
    ErrorAnalysis,
    format_error_table,
    plot_errors,
    tide_errors,
)
from .evaluator import (
    DatasetEvaluator,
    DatasetEvaluators,
    inference_context,
    inference_on_dataset,
)
from .hrsc_evaluation import HRSCEvaluator
from .patch_merger import MergedDetections, PatchMerger, patch_boxes_to_image
from .rotated_coco_evaluation import RotatedCOCOeval, RotatedCOCOEvaluator, rotated_coco_eval
from .rotated_map import (
    COCO_IOU_THRESHOLDS,
    SIZE_RANGES,
    RotatedMAPResult,
    rotated_voc_map,
    voc_ap,
)

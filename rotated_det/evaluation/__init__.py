"""Evaluation: the DatasetEvaluator interface, inference_on_dataset, and the rotated metrics."""

from .evaluator import (
    DatasetEvaluator,
    DatasetEvaluators,
    inference_context,
    inference_on_dataset,
)

# EVAL's exports (metrics, evaluators) go in one block below.

"""Choose the evaluator of a dataset from its metadata's ``evaluator_type``."""

from __future__ import annotations

from collections.abc import Callable

from rotated_det.evaluation.dota_evaluation import DOTAEvaluator
from rotated_det.evaluation.evaluator import DatasetEvaluator
from rotated_det.evaluation.hrsc_evaluation import HRSCEvaluator
from rotated_det.evaluation.rotated_coco_evaluation import RotatedCOCOEvaluator

__all__ = ["EVALUATOR_TYPES", "build_evaluator"]

#: evaluator_type (dataset metadata) -> evaluator class.
EVALUATOR_TYPES: dict[str, Callable[..., DatasetEvaluator]] = {
    "dota": DOTAEvaluator,
    "hrsc": HRSCEvaluator,
    "rotated_coco": RotatedCOCOEvaluator,
}


def build_evaluator(dataset_name: str, output_dir: str | None = None, **kwargs) -> DatasetEvaluator:
    """The evaluator named by ``MetadataCatalog.get(dataset_name).evaluator_type``.

    Args:
        dataset_name: a registered dataset whose metadata has ``evaluator_type`` ("dota", "hrsc"
            or "rotated_coco").
        output_dir: passed to the evaluator.
        kwargs: the evaluator's keyword arguments (e.g. ``merge_patches=True`` for DOTA).
    """
    from rotated_det.data import MetadataCatalog

    meta = MetadataCatalog.get(dataset_name)
    kind = getattr(meta, "evaluator_type", None)
    if kind not in EVALUATOR_TYPES:
        raise ValueError(
            f"Dataset '{dataset_name}' has evaluator_type {kind!r}; expected one of "
            f"{sorted(EVALUATOR_TYPES)}; set it with "
            "MetadataCatalog.get(name).set(evaluator_type=...)"
        )
    return EVALUATOR_TYPES[kind](dataset_name, output_dir, **kwargs)

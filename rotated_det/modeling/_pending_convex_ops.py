"""TEMPORARY: the convex-polygon ops that another change adds to ``rotated_det.layers``, looked
up at call time until they land; then imported from ``rotated_det.layers`` (this file goes)."""

import torch

from rotated_det import layers


def min_area_rect(points: torch.Tensor) -> torch.Tensor:
    result: torch.Tensor = getattr(layers, "min_area_rect")(points)  # noqa: B009
    return result


def convex_iou(points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    result: torch.Tensor = getattr(layers, "convex_iou")(points, boxes)  # noqa: B009
    return result


def convex_giou(points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    result: torch.Tensor = getattr(layers, "convex_giou")(points, boxes)  # noqa: B009
    return result


def convex_overlaps(points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    result: torch.Tensor = getattr(layers, "convex_overlaps")(points, boxes)  # noqa: B009
    return result

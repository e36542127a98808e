"""Steps shared by the dense (one-stage) detectors: flattening head outputs and turning scored
candidates into detections."""

import torch

from rotated_det.layers import batched_nms_rotated
from rotated_det.structures import Instances, RotatedBoxes

from ..shape_utils import min_size

__all__ = ["flatten_levels", "top_candidates", "nms_detections"]


def flatten_levels(x: torch.Tensor, k: int) -> torch.Tensor:
    """``[N, A * k, H, W]`` -> ``[N, H * W * A, k]`` (the anchor / point order)."""
    n, _, h, w = x.shape
    return x.view(n, -1, k, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, k)


def top_candidates(
    probs: torch.Tensor, score_thresh: float, topk: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``topk`` best (location, class) pairs of one level whose probability exceeds
    ``score_thresh``.

    Args:
        probs: ``[L, K]`` class probabilities of the level's L locations (anchors or points).

    Returns:
        scores ``[k]``, location indices ``[k]`` (into L) and classes ``[k]``, k <= topk, best
        first.
    """
    num_classes = probs.shape[1]
    flat = probs.flatten()
    idx = torch.nonzero(flat > score_thresh, as_tuple=True)[0]
    scores = flat[idx]
    k = min_size(idx.shape[0], topk)
    scores, order = scores.topk(k)
    idx = idx[order]
    return scores, idx // num_classes, idx % num_classes


def nms_detections(
    boxes: list[torch.Tensor],
    scores: list[torch.Tensor],
    classes: list[torch.Tensor],
    image_size: tuple[int, int],
    nms_thresh: float,
    max_detections: int,
) -> Instances:
    """One image's candidates of every level -> its detections: the boxes (per level ``[M_l, 5]``,
    with ``[M_l]`` scores and classes) are clipped to ``image_size`` (h, w), class-wise rotated
    NMS at ``nms_thresh`` keeps the best of each cluster and the ``max_detections`` best are
    returned as Instances with ``pred_boxes``, ``scores`` and ``pred_classes``."""
    rboxes = RotatedBoxes(torch.cat(boxes))
    all_scores, all_classes = torch.cat(scores), torch.cat(classes)
    rboxes.clip(image_size)
    keep = batched_nms_rotated(rboxes.tensor, all_scores, all_classes, nms_thresh)
    keep = keep[:max_detections]
    result = Instances(image_size)
    result.pred_boxes = rboxes[keep]
    result.scores = all_scores[keep]
    result.pred_classes = all_classes[keep]
    return result

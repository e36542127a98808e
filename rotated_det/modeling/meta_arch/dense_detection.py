"""Steps shared by the dense (one-stage) detectors: flattening head outputs, labelling anchors
from a matcher's result, the normalised focal loss, and turning scored candidates into
detections."""

from collections.abc import Callable, Sequence

import torch
from torch.nn import functional as F

from rotated_det.layers import batched_nms_rotated
from rotated_det.structures import Instances, RotatedBoxes

from ..losses.focal_loss import sigmoid_focal_loss
from ..shape_utils import min_size

__all__ = [
    "check_point_detector_parts",
    "flatten_levels",
    "labels_from_matches",
    "moving_loss_normalizer",
    "focal_loss_sum",
    "top_candidates",
    "nms_detections",
    "detect_image",
]

# decode_level(level, locations [k], classes [k], scores [k]) -> (boxes [k, 5], scores [k])
LevelDecoder = Callable[
    [int, torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]
]


def flatten_levels(x: torch.Tensor, k: int) -> torch.Tensor:
    """``[N, A * k, H, W]`` -> ``[N, H * W * A, k]`` (the anchor / point order)."""
    n, _, h, w = x.shape
    return x.view(n, -1, k, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, k)


def check_point_detector_parts(
    detector: str, head, num_classes: int, angle_coder, point_generator, box_coder
) -> None:
    """The agreements a point-based (anchor-free) detector needs between its parts, each refused
    with a ValueError naming ``detector`` and both keys: the head's class count and angle-code
    size, the point generator's and the head's strides, the box and angle coders' angle
    versions."""
    pairs = [
        ("num_classes", num_classes, "head.num_classes", head.num_classes),
        (
            "head.angle_encode_size",
            head.angle_encode_size,
            "angle_coder.encode_size",
            angle_coder.encode_size,
        ),
        (
            "point_generator.strides",
            list(point_generator.strides),
            "head.strides",
            list(head.strides),
        ),
        (
            "box_coder.angle_version",
            box_coder.angle_version,
            "angle_coder.angle_version",
            angle_coder.angle_version,
        ),
    ]
    for key, value, other_key, other in pairs:
        if value != other:
            raise ValueError(f"{detector}: {key}={value!r} must equal {other_key}={other!r}")


def labels_from_matches(
    gt: Instances,
    matched_idxs: torch.Tensor,
    match_labels: torch.Tensor,
    num_classes: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One image's matcher result -> the class label of each of its P anchors (boxes, points)
    ``[P]`` (``num_classes``: background, -1: ignored) and the ground-truth box each one is
    matched to ``[P, 5]`` (zeros for an image without objects).

    Args:
        gt: the image's ground truth (``gt_boxes``, ``gt_classes``).
        matched_idxs: ``[P]`` index of the best ground-truth box of each anchor.
        match_labels: ``[P]`` 1 foreground, 0 background, -1 ignored (:class:`Matcher`'s).
    """
    gt_boxes = gt.gt_boxes.tensor
    if gt_boxes.shape[0] == 0:
        labels = torch.full_like(matched_idxs, num_classes)
        return labels, gt_boxes.new_zeros((matched_idxs.shape[0], 5))
    labels = gt.gt_classes[matched_idxs].clone()
    labels[match_labels == 0] = num_classes
    labels[match_labels == -1] = -1
    return labels, gt_boxes[matched_idxs]


def moving_loss_normalizer(previous: float, num_foreground: int, momentum: float) -> float:
    """Detectron2's RetinaNet loss normaliser: the exponential moving average (``momentum``) of
    the batch's foreground count (at least 1), which steadies the loss scale across batches."""
    return momentum * previous + (1 - momentum) * max(num_foreground, 1)


def focal_loss_sum(
    logits: torch.Tensor, labels: torch.Tensor, alpha: float, gamma: float
) -> torch.Tensor:
    """Summed sigmoid focal loss of ``logits`` ``[..., K]`` against ``labels`` ``[...]`` (class
    index; K: background, whose target is all zeros; -1: ignored, left out)."""
    valid = labels >= 0
    num_classes = logits.shape[-1]
    onehot = F.one_hot(labels[valid], num_classes=num_classes + 1)[:, :-1]
    return sigmoid_focal_loss(logits[valid], onehot.to(logits.dtype), alpha, gamma, reduction="sum")


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


def detect_image(
    level_logits: Sequence[torch.Tensor],
    decode_level: LevelDecoder,
    image_size: tuple[int, int],
    score_thresh: float,
    topk: int,
    nms_thresh: float,
    max_detections: int,
) -> Instances:
    """One image's detections from a dense head's per-level class logits.

    Per level: sigmoid probabilities (in float32, also under autocast), the ``topk`` best
    (location, class) pairs above ``score_thresh`` (:func:`top_candidates`), then
    ``decode_level(level, locations, classes, scores)`` returns their rotated boxes ``[k, 5]``
    and final scores ``[k]`` (a detector that rescales scores, e.g. by centerness, does it
    there); finally :func:`nms_detections` over all levels.

    Args:
        level_logits: per level ``[L_l, K]`` class logits of this image's L_l locations.
        decode_level: the detector's decoding of one level's candidates (see above).
        image_size: (h, w) the boxes are clipped to.
    """
    boxes, scores, classes = [], [], []
    for level, logits in enumerate(level_logits):
        level_scores, locations, level_classes = top_candidates(
            logits.float().sigmoid(), score_thresh, topk
        )
        level_boxes, level_scores = decode_level(level, locations, level_classes, level_scores)
        boxes.append(level_boxes)
        scores.append(level_scores)
        classes.append(level_classes)
    return nms_detections(boxes, scores, classes, image_size, nms_thresh, max_detections)

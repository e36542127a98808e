"""Selecting proposals from dense predictions, and adding ground truth to proposals."""

from collections.abc import Callable

import torch

from rotated_det.layers import batched_nms_rotated
from rotated_det.structures import Instances, RotatedBoxes

from ..shape_utils import min_size

__all__ = ["find_top_rrpn_proposals", "add_ground_truth_to_proposals", "GT_PROPOSAL_LOGIT"]

# Objectness logit of the ground-truth boxes appended to proposals: probability 1 - 1e-10, above
# any real proposal; a cascade stage recognises the appended rows by it.
GT_PROPOSAL_LOGIT = 23.0259


def find_top_rrpn_proposals(
    anchors: list[torch.Tensor],
    pred_objectness_logits: list[torch.Tensor],
    pred_anchor_deltas: list[torch.Tensor],
    decode: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    image_sizes: list[tuple[int, int]],
    nms_thresh: float,
    pre_nms_topk: int,
    post_nms_topk: int,
    min_box_size: float,
    training: bool,
) -> list[Instances]:
    """Per image: top ``pre_nms_topk`` anchors per level by objectness, decode them, clip to the
    image, drop boxes with a side < ``min_box_size``, rotated NMS per level, keep the best
    ``post_nms_topk``.

    Only the selected anchors are decoded (decoding is elementwise, so this equals decoding all
    anchors and then selecting).

    Args:
        anchors: per level ``[A_l, box_dim]`` anchors (same for every image).
        pred_objectness_logits: per level ``[N, A_l]``.
        pred_anchor_deltas: per level ``[N, A_l, D]``.
        decode: ``decode(deltas [K, D], anchors [K, box_dim]) -> [K, 5]`` rotated boxes.
        image_sizes: ``(h, w)`` per image.

    Returns:
        per image Instances with ``proposal_boxes`` (RotatedBoxes) and ``objectness_logits``
        (``[P]``), sorted by decreasing objectness.
    """
    num_images = len(image_sizes)
    device = pred_objectness_logits[0].device
    batch_idx = torch.arange(num_images, device=device)[:, None]
    topk_scores, topk_boxes, level_ids = [], [], []
    for level, (anc, logits, deltas) in enumerate(
        zip(anchors, pred_objectness_logits, pred_anchor_deltas)
    ):
        k = min_size(logits.shape[1], pre_nms_topk)
        scores, idx = logits.topk(k, dim=1)  # [N, k]
        sel_deltas = deltas[batch_idx, idx]  # [N, k, D]
        sel_anchors = anc[idx.reshape(-1)]
        decoded = decode(sel_deltas.reshape(-1, sel_deltas.shape[-1]), sel_anchors)
        topk_boxes.append(decoded.reshape(num_images, k, 5))
        topk_scores.append(scores)
        level_ids.append(torch.full((k,), level, dtype=torch.int64, device=device))
    all_scores = torch.cat(topk_scores, dim=1)
    all_boxes = torch.cat(topk_boxes, dim=1)
    all_levels = torch.cat(level_ids)
    results = []
    for i, image_size in enumerate(image_sizes):
        boxes = RotatedBoxes(all_boxes[i])
        scores = all_scores[i]
        levels = all_levels
        finite = torch.isfinite(boxes.tensor).all(dim=1) & torch.isfinite(scores)
        if training:
            if not bool(finite.all()):
                raise FloatingPointError(
                    "Predicted boxes or scores contain Inf/NaN; the training has diverged."
                )
        else:
            # Indexed unconditionally (selecting all rows changes nothing): a Python branch on
            # the mask's values would freeze into a trace and cannot be exported.
            boxes, scores, levels = boxes[finite], scores[finite], levels[finite]
        boxes.clip(image_size)
        keep = boxes.nonempty(threshold=min_box_size)
        boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
        keep = batched_nms_rotated(boxes.tensor, scores, levels, nms_thresh)[:post_nms_topk]
        res = Instances(image_size)
        res.proposal_boxes = boxes[keep]
        res.objectness_logits = scores[keep]
        results.append(res)
    return results


def add_ground_truth_to_proposals(
    gt_boxes: list[RotatedBoxes], proposals: list[Instances]
) -> list[Instances]:
    """Append each image's ground-truth boxes to its proposals (with a high objectness logit),
    so that the second stage always sees positives early in training."""
    if len(gt_boxes) != len(proposals):
        raise ValueError(f"{len(gt_boxes)} ground-truth lists for {len(proposals)} images")
    out = []
    for gt, props in zip(gt_boxes, proposals):
        device = props.objectness_logits.device
        logit = torch.full((len(gt),), GT_PROPOSAL_LOGIT, device=device)
        gt_props = Instances(props.image_size)
        gt_props.proposal_boxes = gt.to(device)
        gt_props.objectness_logits = logit
        out.append(Instances.cat([props, gt_props]))
    return out

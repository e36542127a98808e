"""RRPN: region proposal network with rotated anchors (Ma et al. 2018; Detectron2's RRPN)."""

import torch
from torch import nn
from torch.nn import functional as F

from rotated_det.structures import ImageList, Instances

from ..anchor_generator import DefaultAnchorGenerator, RotatedAnchorGenerator
from ..box_regression import Box2BoxTransform, Box2BoxTransformRotated, MidpointOffsetCoder
from ..losses.box_regression_loss import box_regression_loss, check_box_reg_loss_type
from ..matcher import Matcher
from ..sampling import subsample_labels
from .proposal_utils import find_top_rrpn_proposals
from .rpn_head import StandardRPNHead

__all__ = ["RRPN"]


def _pair(x: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(x, (tuple, list)):
        if len(x) != 2:
            raise ValueError(f"expected (train, test) values, got {x}")
        return int(x[0]), int(x[1])
    return int(x), int(x)


class RRPN(nn.Module):
    """Region proposal network whose anchors and proposals are rotated boxes.

    Args:
        in_features: names of the feature maps used (e.g. ["p2", ..., "p6"]).
        head: a module mapping the list of maps to per-level (objectness ``[N, A, H, W]``,
            deltas ``[N, A * box_dim, H, W]``), e.g. StandardRPNHead.
        anchor_generator: RotatedAnchorGenerator with one stride per feature.
        anchor_matcher: Matcher labelling anchors by IoU with the ground truth.
        box2box_transform: Box2BoxTransformRotated.
        batch_size_per_image: anchors sampled per image for the loss.
        positive_fraction: maximum foreground share of the sampled anchors.
        pre_nms_topk: anchors kept per level before NMS, ``(train, test)`` or one int.
        post_nms_topk: proposals kept per image after NMS, ``(train, test)`` or one int.
        nms_thresh: rotated-IoU threshold of the NMS.
        min_box_size: proposals with a side below this (pixels) are dropped.
        loss_weight: a float (both losses) or ``{"loss_rpn_cls": ..., "loss_rpn_loc": ...}``.
        box_reg_loss_type: "smooth_l1", "l1", "kld" or "gwd".
        smooth_l1_beta: beta of the smooth L1 loss (0: L1).

    Training returns objectness BCE and box regression summed over the sampled anchors and
    divided by ``batch_size_per_image * num_images``.
    """

    def __init__(
        self,
        *,
        in_features: list[str],
        head: StandardRPNHead,
        anchor_generator: RotatedAnchorGenerator | DefaultAnchorGenerator,
        anchor_matcher: Matcher,
        box2box_transform: Box2BoxTransformRotated | MidpointOffsetCoder | Box2BoxTransform,
        batch_size_per_image: int = 256,
        positive_fraction: float = 0.5,
        pre_nms_topk: int | tuple[int, int] = (2000, 1000),
        post_nms_topk: int | tuple[int, int] = (2000, 1000),
        nms_thresh: float = 0.7,
        min_box_size: float = 0.0,
        loss_weight: float | dict[str, float] = 1.0,
        box_reg_loss_type: str = "smooth_l1",
        smooth_l1_beta: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_features = list(in_features)
        self.rpn_head = head
        self.anchor_generator = anchor_generator
        self.anchor_matcher = anchor_matcher
        self.box2box_transform = box2box_transform
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.pre_nms_topk = dict(zip((True, False), _pair(pre_nms_topk)))
        self.post_nms_topk = dict(zip((True, False), _pair(post_nms_topk)))
        self.nms_thresh = nms_thresh
        self.min_box_size = float(min_box_size)
        if isinstance(loss_weight, (int, float)):
            loss_weight = {"loss_rpn_cls": loss_weight, "loss_rpn_loc": loss_weight}
        self.loss_weight = dict(loss_weight)
        self.box_reg_loss_type = check_box_reg_loss_type(box_reg_loss_type, type(self).__name__)
        self.smooth_l1_beta = smooth_l1_beta
        if len(anchor_generator.strides) != len(self.in_features):
            raise ValueError(
                f"{type(self).__name__}: anchor generator has {len(anchor_generator.strides)} "
                f"strides but in_features has {len(self.in_features)} maps {self.in_features}"
            )

    # -- hooks that OrientedRPN overrides ---------------------------------------------------
    def _gt_boxes_for_matching(self, gt_boxes: torch.Tensor) -> torch.Tensor:
        """Ground truth ``[G, 5]`` in the box kind of the anchors, matched to them by IoU."""
        return gt_boxes

    def _decode(self, deltas: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """Decode ``[K, D]`` deltas against ``[K, box_dim]`` anchors into ``[K, 5]`` boxes."""
        return self.box2box_transform.apply_deltas(deltas, anchors)

    # -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def label_and_sample_anchors(
        self, anchors: torch.Tensor, gt_instances: list[Instances]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """
        Args:
            anchors: ``[A, box_dim]`` all anchors of all levels.
            gt_instances: per image, with ``gt_boxes`` (RotatedBoxes).

        Returns:
            per image: labels ``[A]`` (1 foreground, 0 background, -1 ignored / not sampled)
            and matched ground-truth boxes ``[A, 5]`` (meaningful where label is 1).
        """
        gt_labels, matched_boxes = [], []
        for inst in gt_instances:
            gt = inst.gt_boxes.tensor.to(anchors.device)
            # Chunked: a crowded image's [G, A] IoU matrix would not fit in memory.
            matched_idxs, labels = self.anchor_matcher.match_boxes(
                self._gt_boxes_for_matching(gt), anchors
            )
            labels = labels.to(torch.int64)
            pos, neg = subsample_labels(
                labels, self.batch_size_per_image, self.positive_fraction, 0
            )
            labels.fill_(-1)
            labels[pos] = 1
            labels[neg] = 0
            if gt.shape[0] == 0:
                matched = anchors.new_zeros((anchors.shape[0], 5))
            else:
                matched = gt[matched_idxs]
            gt_labels.append(labels)
            matched_boxes.append(matched)
        return gt_labels, matched_boxes

    def losses(
        self,
        anchors: torch.Tensor,
        pred_objectness_logits: list[torch.Tensor],
        gt_labels: list[torch.Tensor],
        pred_anchor_deltas: list[torch.Tensor],
        gt_boxes: list[torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """Objectness and regression losses; inputs as returned by ``forward``'s steps."""
        num_images = len(gt_labels)
        labels = torch.stack(gt_labels)  # [N, A]
        pos = labels == 1
        deltas = torch.cat(pred_anchor_deltas, dim=1)  # [N, A, D]
        pos_img, pos_anchor = pos.nonzero(as_tuple=True)
        loss_loc = box_regression_loss(
            self.box_reg_loss_type,
            self.box2box_transform,
            deltas[pos_img, pos_anchor],
            anchors[pos_anchor],
            torch.stack(gt_boxes)[pos_img, pos_anchor],
            self.smooth_l1_beta,
        )
        valid = labels >= 0
        logits = torch.cat(pred_objectness_logits, dim=1)
        loss_cls = F.binary_cross_entropy_with_logits(
            logits[valid], labels[valid].to(logits.dtype), reduction="sum"
        )
        normalizer = self.batch_size_per_image * num_images
        losses = {"loss_rpn_cls": loss_cls / normalizer, "loss_rpn_loc": loss_loc / normalizer}
        return {k: v * self.loss_weight.get(k, 1.0) for k, v in losses.items()}

    def forward(
        self,
        images: ImageList,
        features: dict[str, torch.Tensor],
        gt_instances: list[Instances] | None = None,
    ) -> tuple[list[Instances], dict[str, torch.Tensor]]:
        """
        Args:
            images: the padded batch (only ``image_sizes`` is used).
            features: feature maps by name, each ``[N, C, H_l, W_l]``.
            gt_instances: per image ground truth with ``gt_boxes``; required in training.

        Returns:
            proposals: per image Instances with ``proposal_boxes`` (RotatedBoxes) and
            ``objectness_logits``; losses: dict (empty at inference).
        """
        feats = [features[f] for f in self.in_features]
        anchors = [a.tensor for a in self.anchor_generator(feats)]
        logits, deltas = self.rpn_head(feats)
        n = feats[0].shape[0]
        pred_logits = [x.permute(0, 2, 3, 1).flatten(1) for x in logits]
        pred_deltas = [
            d.view(n, -1, self.box_dim, d.shape[-2], d.shape[-1])
            .permute(0, 3, 4, 1, 2)
            .flatten(1, 3)
            for d in deltas
        ]
        losses = {}
        if self.training:
            if gt_instances is None:
                raise ValueError(f"{type(self).__name__} needs gt_instances in training mode")
            all_anchors = torch.cat(anchors)
            gt_labels, gt_boxes = self.label_and_sample_anchors(all_anchors, gt_instances)
            losses = self.losses(all_anchors, pred_logits, gt_labels, pred_deltas, gt_boxes)
        with torch.no_grad():
            proposals = find_top_rrpn_proposals(
                anchors,
                [x.detach() for x in pred_logits],
                [x.detach() for x in pred_deltas],
                self._decode,
                images.image_sizes,
                self.nms_thresh,
                self.pre_nms_topk[self.training],
                self.post_nms_topk[self.training],
                self.min_box_size,
                self.training,
            )
        return proposals, losses

    @property
    def box_dim(self) -> int:
        """Deltas per anchor predicted by the head."""
        return self.rpn_head.box_dim

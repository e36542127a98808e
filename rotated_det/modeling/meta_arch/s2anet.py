"""S2A-Net (Han et al., "Align Deep Features for Oriented Object Detection", TGRS 2021): a
one-stage detector that refines one square anchor per location into a rotated box, re-samples the
features along it and detects from orientation-encoded features.

Two stages, each trained like Rotated RetinaNet (IoU matching, focal loss, smooth L1 on deltas):

1. feature alignment module (FAM): square anchors (one per location, side 4 x stride) are
   matched to the ground truth and regressed into rotated boxes, the "refined anchors";
2. oriented detection module (ODM): the alignment convolution samples the features along each
   refined anchor (detached), active rotating filters and orientation pooling follow; its
   classification and deltas against the refined anchors are matched and trained again, and
   give the detections.
"""

import torch

from rotated_det.structures import Instances

from ..anchor_generator import RotatedAnchorGenerator
from ..backbone.backbone import Backbone
from ..box_regression import Box2BoxTransformRotated
from ..dense_heads.s2anet_head import S2ANetHead
from ..losses.box_regression_loss import box_regression_loss, check_box_reg_loss_type
from ..matcher import Matcher
from .dense_detection import (
    detect_image,
    flatten_levels,
    focal_loss_sum,
    labels_from_matches,
    moving_loss_normalizer,
)
from .preprocessing import DetectorBase, gt_instances, postprocess_batch

__all__ = ["S2ANet"]


class S2ANet(DetectorBase):
    """S2A-Net: feature alignment module + oriented detection module.

    Args:
        backbone: Backbone (FPN P3-P7).
        head: S2ANetHead.
        head_in_features: feature names fed to the head, e.g. ["p3", ..., "p7"].
        anchor_generator: RotatedAnchorGenerator with ONE anchor per location (S2A-Net's square
            angle-0 anchor of side 4 x stride); its strides are the alignment convolution's.
        box2box_transform: Box2BoxTransformRotated of both stages (S2A-Net: le135, deltas
            projected on the source box's axes, angle delta divided by pi; the configs add the
            edge swap: see configs/common/models/s2anet.py).
        fam_matcher, odm_matcher: Matchers of the square anchors and of the refined anchors
            (IoU thresholds [0.4, 0.5], labels [0, -1, 1], low-quality matches allowed).
        num_classes: K.
        focal_loss_alpha, focal_loss_gamma: focal loss parameters (both stages).
        box_reg_loss_type: "smooth_l1", "l1" or a decoded-box loss (see ``BOX_REG_LOSS_TYPES``).
        smooth_l1_beta: beta of the smooth L1 loss (0.11 in S2A-Net).
        fam_loss_weight, odm_loss_weight: weights of each stage's losses.
        refine_scale_clamp: bound of the FAM's |dw|, |dh| when refining anchors (a refined side
            stays within exp(+-clamp) of the anchor's: no degenerate anchor for the ODM).
        test_score_thresh: minimum class probability of a detection.
        test_topk_candidates: candidates kept per level before NMS.
        test_nms_thresh: rotated-IoU threshold of the per-class NMS.
        max_detections_per_image: detections kept per image.
        pixel_mean, pixel_std, input_format: see :class:`DetectorBase`.
        loss_normalizer_momentum: each stage's losses are divided by a moving average of its
            number of foreground anchors (per batch), updated with this momentum.

    Inputs and outputs: as GeneralizedRCNN. Training losses: ``loss_fam_cls``,
    ``loss_fam_box_reg`` (FAM), ``loss_cls``, ``loss_box_reg`` (ODM).
    """

    def __init__(
        self,
        *,
        backbone: Backbone,
        head: S2ANetHead,
        head_in_features: list[str],
        anchor_generator: RotatedAnchorGenerator,
        box2box_transform: Box2BoxTransformRotated,
        fam_matcher: Matcher,
        odm_matcher: Matcher,
        num_classes: int,
        focal_loss_alpha: float = 0.25,
        focal_loss_gamma: float = 2.0,
        box_reg_loss_type: str = "smooth_l1",
        smooth_l1_beta: float = 0.11,
        fam_loss_weight: float = 1.0,
        odm_loss_weight: float = 1.0,
        refine_scale_clamp: float = 4.135,
        test_score_thresh: float = 0.05,
        test_topk_candidates: int = 1000,
        test_nms_thresh: float = 0.1,
        max_detections_per_image: int = 100,
        pixel_mean: tuple[float, ...] = (103.530, 116.280, 123.675),
        pixel_std: tuple[float, ...] = (1.0, 1.0, 1.0),
        input_format: str = "BGR",
        loss_normalizer_momentum: float = 0.9,
    ) -> None:
        super().__init__(
            backbone=backbone,
            pixel_mean=pixel_mean,
            pixel_std=pixel_std,
            input_format=input_format,
        )
        if head.num_classes != num_classes:
            raise ValueError(
                f"S2ANet: num_classes={num_classes} but head.num_classes={head.num_classes}; "
                "they must agree"
            )
        per_cell = anchor_generator.num_cell_anchors
        if any(n != 1 for n in per_cell):
            raise ValueError(
                "S2ANet refines ONE anchor per location: anchor_generator must have one size, "
                f"one aspect ratio and one angle per level, got {per_cell} anchors per cell"
            )
        if len(anchor_generator.strides) != len(head_in_features):
            raise ValueError(
                f"S2ANet: anchor_generator.strides {list(anchor_generator.strides)} and "
                f"head_in_features {list(head_in_features)} must have one entry per level"
            )
        if len(box2box_transform.weights) != 5:
            raise ValueError(
                f"S2ANet needs a rotated box coder with 5 weights, got {box2box_transform.weights}"
            )
        self.box_reg_loss_type = check_box_reg_loss_type(box_reg_loss_type, "S2ANet")
        self.head = head
        self.head_in_features = list(head_in_features)
        self.anchor_generator = anchor_generator
        self.box2box_transform = box2box_transform
        self.fam_matcher = fam_matcher
        self.odm_matcher = odm_matcher
        self.num_classes = num_classes
        self.focal_loss_alpha = focal_loss_alpha
        self.focal_loss_gamma = focal_loss_gamma
        self.smooth_l1_beta = smooth_l1_beta
        self.fam_loss_weight = fam_loss_weight
        self.odm_loss_weight = odm_loss_weight
        self.refine_scale_clamp = refine_scale_clamp
        self.test_score_thresh = test_score_thresh
        self.test_topk_candidates = test_topk_candidates
        self.test_nms_thresh = test_nms_thresh
        self.max_detections_per_image = max_detections_per_image
        self.loss_normalizer_momentum = loss_normalizer_momentum
        # initial guesses of foreground anchors per batch, per stage
        self.loss_normalizers = {"fam": 100.0, "odm": 100.0}

    def forward(self, batched_inputs: list[dict]):
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)
        feats = [features[f] for f in self.head_in_features]
        anchors = [a.tensor for a in self.anchor_generator(feats)]  # per level [L, 5]
        fam_logits, fam_deltas = self.head.alignment(feats)
        fam_logits = [flatten_levels(x, self.num_classes) for x in fam_logits]
        fam_deltas = [flatten_levels(x, 5) for x in fam_deltas]
        refined = [self.refine(d, a) for d, a in zip(fam_deltas, anchors)]  # per level [N, L, 5]
        odm_logits, odm_deltas = self.head.detection(feats, refined, self.anchor_generator.strides)
        odm_logits = [flatten_levels(x, self.num_classes) for x in odm_logits]
        odm_deltas = [flatten_levels(x, 5) for x in odm_deltas]
        if self.training:
            gt = gt_instances(batched_inputs, self.device)
            n = len(gt)
            square = torch.cat(anchors)[None].expand(n, -1, -1)
            fam = self.stage_losses("fam", self.fam_matcher, square, fam_logits, fam_deltas, gt)
            odm = self.stage_losses(
                "odm", self.odm_matcher, torch.cat(refined, dim=1), odm_logits, odm_deltas, gt
            )
            return {
                "loss_fam_cls": self.fam_loss_weight * fam[0],
                "loss_fam_box_reg": self.fam_loss_weight * fam[1],
                "loss_cls": self.odm_loss_weight * odm[0],
                "loss_box_reg": self.odm_loss_weight * odm[1],
            }
        results = self.inference(refined, odm_logits, odm_deltas, images.image_sizes)
        return postprocess_batch(results, batched_inputs)

    def refine(self, deltas: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """The FAM's refined boxes of one level: deltas ``[N, L, 5]`` (detached here) applied to
        the level's anchors ``[L, 5]`` -> ``[N, L, 5]``, sides within exp(+-refine_scale_clamp)
        of the anchor's."""
        deltas = deltas.detach().float()
        clamp = self.refine_scale_clamp
        deltas = torch.cat(
            [deltas[..., :2], deltas[..., 2:4].clamp(-clamp, clamp), deltas[..., 4:]], dim=-1
        )
        n = deltas.shape[0]
        boxes = self.box2box_transform.apply_deltas(
            deltas.reshape(-1, 5), anchors[None].expand(n, -1, -1).reshape(-1, 5)
        )
        return boxes.reshape(n, -1, 5)

    @torch.no_grad()
    def label_anchors(
        self, matcher: Matcher, anchors: torch.Tensor, gt_instances: list[Instances]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Class label of each anchor (K background, -1 ignored) ``[N, A]`` and its matched
        ground-truth box ``[N, A, 5]``; ``anchors`` ``[N, A, 5]`` (each image its own)."""
        labels_out, boxes_out = [], []
        for anc, inst in zip(anchors, gt_instances):
            matched_idxs, match_labels = matcher.match_boxes(inst.gt_boxes.tensor, anc)
            labels, boxes = labels_from_matches(inst, matched_idxs, match_labels, self.num_classes)
            labels_out.append(labels)
            boxes_out.append(boxes)
        return torch.stack(labels_out), torch.stack(boxes_out)

    def stage_losses(
        self,
        stage: str,
        matcher: Matcher,
        anchors: torch.Tensor,
        pred_logits: list[torch.Tensor],
        pred_deltas: list[torch.Tensor],
        gt_instances: list[Instances],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One stage's focal loss over non-ignored anchors and box loss over foreground anchors,
        each divided by the stage's moving average of the foreground count.

        Args:
            stage: "fam" or "odm" (which normaliser).
            anchors: ``[N, A, 5]`` the stage's anchors (all levels).
            pred_logits, pred_deltas: per level ``[N, L, K]`` and ``[N, L, 5]``.
        """
        labels, matched = self.label_anchors(matcher, anchors.detach(), gt_instances)
        pos = (labels >= 0) & (labels != self.num_classes)
        normalizer = moving_loss_normalizer(
            self.loss_normalizers[stage], int(pos.sum().item()), self.loss_normalizer_momentum
        )
        self.loss_normalizers[stage] = normalizer
        loss_cls = focal_loss_sum(
            torch.cat(pred_logits, dim=1), labels, self.focal_loss_alpha, self.focal_loss_gamma
        )
        img, anc = pos.nonzero(as_tuple=True)
        loss_box = box_regression_loss(
            self.box_reg_loss_type,
            self.box2box_transform,
            torch.cat(pred_deltas, dim=1)[img, anc],
            anchors[img, anc],
            matched[img, anc],
            self.smooth_l1_beta,
        )
        return loss_cls / normalizer, loss_box / normalizer

    @torch.no_grad()
    def inference(
        self,
        refined: list[torch.Tensor],
        pred_logits: list[torch.Tensor],
        pred_deltas: list[torch.Tensor],
        image_sizes: list[tuple[int, int]],
    ) -> list[Instances]:
        """Per image: per level the best ``test_topk_candidates`` (refined anchor, class) pairs of
        the ODM above the score threshold, decoded against the refined anchors, then per-class
        rotated NMS and the top detections."""
        results = []
        for i, size in enumerate(image_sizes):

            def decode_level(level, idx, classes, scores, i=i):
                deltas, anchors = pred_deltas[level][i][idx], refined[level][i][idx]
                return self.box2box_transform.apply_deltas(deltas, anchors), scores

            results.append(
                detect_image(
                    [logits[i] for logits in pred_logits],
                    decode_level,
                    size,
                    self.test_score_thresh,
                    self.test_topk_candidates,
                    self.test_nms_thresh,
                    self.max_detections_per_image,
                )
            )
        return results

"""Rotated RetinaNet: a one-stage detector with rotated anchors and focal loss.

Variants built from the same class by configuration:
- Rotated ATSS: one anchor per location and an ATSS assigner instead of the IoU matcher;
- RetinaNet with an angle coder (CSL, PSC): the box subnet regresses (x, y, w, h) deltas against
  angle-0 anchors and an angle branch predicts the coder's encoding of the absolute angle.
"""

import torch

from rotated_det.structures import Instances, normalize_rbox_angles

from ..anchor_generator import RotatedAnchorGenerator
from ..angle_coders import AngleCoder
from ..assigners import RotatedATSSAssigner
from ..backbone.backbone import Backbone
from ..box_regression import Box2BoxTransformRotated
from ..dense_heads.retinanet_head import RotatedRetinaNetHead
from ..losses.box_regression_loss import box_regression_loss, check_box_reg_loss_type
from ..losses.smooth_l1_loss import smooth_l1_loss
from ..matcher import Matcher
from .dense_detection import (
    detect_image,
    flatten_levels,
    focal_loss_sum,
    labels_from_matches,
    moving_loss_normalizer,
)
from .preprocessing import DetectorBase, gt_instances, postprocess_batch

__all__ = ["RotatedRetinaNetHead", "RotatedRetinaNet"]


class RotatedRetinaNet(DetectorBase):
    """Rotated RetinaNet (and Rotated ATSS, and its CSL / PSC variants).

    Args:
        backbone: Backbone (FPN P3-P7).
        head: RotatedRetinaNetHead.
        head_in_features: feature names fed to the head, e.g. ["p3", ..., "p7"].
        anchor_generator: RotatedAnchorGenerator.
        box2box_transform: Box2BoxTransformRotated. With an ``angle_coder`` it must have
            ``angle_version=None`` (targets are already in the angle coder's convention) and the
            anchors angle 0: only its (x, y, w, h) deltas are used.
        anchor_matcher: Matcher (IoU thresholds, typically [0.4, 0.5] with labels [0, -1, 1]) or
            RotatedATSSAssigner (Rotated ATSS: no ignored anchors).
        num_classes: K.
        focal_loss_alpha, focal_loss_gamma: focal loss parameters.
        box_reg_loss_type: "smooth_l1", "l1" (on deltas) or a decoded-box loss ("kld", "gwd",
            "iou", ...; see ``BOX_REG_LOSS_TYPES``). With an angle coder: "smooth_l1" or "l1".
        smooth_l1_beta: beta of the smooth L1 loss.
        box_reg_loss_weight: weight of the box regression loss.
        angle_coder: None (the angle is the fifth delta) or an AngleCoder whose encoding the head's
            angle branch predicts (``head.angle_encode_size == angle_coder.encode_size``).
        angle_loss_weight: weight of the angle coder's loss.
        test_score_thresh: minimum class probability of a detection.
        test_topk_candidates: candidates kept per level before NMS.
        test_nms_thresh: rotated-IoU threshold of the per-class NMS.
        max_detections_per_image: detections kept per image.
        pixel_mean, pixel_std, input_format: see :class:`DetectorBase` (equal lengths).
        loss_normalizer_momentum: the losses are divided by a moving average of the number of
            foreground anchors (per batch), updated with this momentum; 0 uses the current count.

    Inputs and outputs: as GeneralizedRCNN.
    """

    def __init__(
        self,
        *,
        backbone: Backbone,
        head: RotatedRetinaNetHead,
        head_in_features: list[str],
        anchor_generator: RotatedAnchorGenerator,
        box2box_transform: Box2BoxTransformRotated,
        anchor_matcher: Matcher | RotatedATSSAssigner,
        num_classes: int,
        focal_loss_alpha: float = 0.25,
        focal_loss_gamma: float = 2.0,
        box_reg_loss_type: str = "smooth_l1",
        smooth_l1_beta: float = 0.1,
        box_reg_loss_weight: float = 1.0,
        angle_coder: AngleCoder | None = None,
        angle_loss_weight: float = 1.0,
        test_score_thresh: float = 0.05,
        test_topk_candidates: int = 1000,
        test_nms_thresh: float = 0.5,
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
        if getattr(head, "num_classes", num_classes) != num_classes:
            raise ValueError(
                f"RotatedRetinaNet: num_classes={num_classes} but head.num_classes="
                f"{head.num_classes}; they must agree"
            )
        if len(box2box_transform.weights) != 5:
            raise ValueError(
                "RotatedRetinaNet needs a rotated box coder with 5 weights, got "
                f"{box2box_transform.weights}"
            )
        self.box_reg_loss_type = check_box_reg_loss_type(box_reg_loss_type, "RotatedRetinaNet")
        if angle_coder is not None:
            _check_angle_coder_setup(
                head, anchor_generator, box2box_transform, angle_coder, box_reg_loss_type
            )
        elif getattr(head, "angle_encode_size", 0):
            raise ValueError(
                "RotatedRetinaNet: head.angle_encode_size > 0 needs an angle_coder (set "
                "model.angle_coder, or head.angle_encode_size=0 and head.box_dim=5)"
            )
        self.head = head
        self.head_in_features = list(head_in_features)
        self.anchor_generator = anchor_generator
        self.box2box_transform = box2box_transform
        self.anchor_matcher = anchor_matcher
        self.num_classes = num_classes
        self.focal_loss_alpha = focal_loss_alpha
        self.focal_loss_gamma = focal_loss_gamma
        self.smooth_l1_beta = smooth_l1_beta
        self.box_reg_loss_weight = box_reg_loss_weight
        self.angle_coder = angle_coder
        self.angle_loss_weight = angle_loss_weight
        self.test_score_thresh = test_score_thresh
        self.test_topk_candidates = test_topk_candidates
        self.test_nms_thresh = test_nms_thresh
        self.max_detections_per_image = max_detections_per_image
        self.loss_normalizer_momentum = loss_normalizer_momentum
        self.loss_normalizer = 100.0  # initial guess of foreground anchors per batch

    @property
    def _box_dim(self) -> int:
        return 5 if self.angle_coder is None else 4

    def forward(self, batched_inputs: list[dict]):
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)
        feats = [features[f] for f in self.head_in_features]
        anchors = [a.tensor for a in self.anchor_generator(feats)]
        logits, deltas, angle_codes = self.head(feats)
        pred_logits = [flatten_levels(x, self.num_classes) for x in logits]
        pred_deltas = [flatten_levels(x, self._box_dim) for x in deltas]
        if self.angle_coder is not None:
            size = self.angle_coder.encode_size
            pred_angles = [flatten_levels(x, size) for x in angle_codes]
        else:
            pred_angles = [x.new_zeros(x.shape[:2] + (0,)) for x in pred_deltas]
        if self.training:
            gt = gt_instances(batched_inputs, self.device)
            gt_labels, gt_boxes = self.label_anchors(anchors, gt)
            return self.losses(
                torch.cat(anchors), pred_logits, gt_labels, pred_deltas, pred_angles, gt_boxes
            )
        results = self.inference(anchors, pred_logits, pred_deltas, pred_angles, images.image_sizes)
        return postprocess_batch(results, batched_inputs)

    @torch.no_grad()
    def label_anchors(self, anchors: list[torch.Tensor], gt_instances: list[Instances]):
        """Per image: class label of each anchor (K background, -1 ignored) ``[A]`` and the
        matched ground-truth box ``[A, 5]``. ``anchors``: per level ``[A_l, 5]``."""
        num_per_level = [a.shape[0] for a in anchors]
        all_anchors = torch.cat(anchors)
        labels_out, boxes_out = [], []
        for inst in gt_instances:
            gt = inst.gt_boxes.tensor
            if isinstance(self.anchor_matcher, RotatedATSSAssigner):
                matched_idxs, _ = self.anchor_matcher(all_anchors, num_per_level, gt)
                match_labels = (matched_idxs >= 0).to(torch.int8)
                matched_idxs = matched_idxs.clamp(min=0)
            else:
                matched_idxs, match_labels = self.anchor_matcher.match_boxes(gt, all_anchors)
            labels, boxes = labels_from_matches(inst, matched_idxs, match_labels, self.num_classes)
            labels_out.append(labels)
            boxes_out.append(boxes)
        return labels_out, boxes_out

    def losses(self, anchors, pred_logits, gt_labels, pred_deltas, pred_angles, gt_boxes):
        """Focal loss over non-ignored anchors, box regression (and the angle coder's loss) over
        foreground anchors, each divided by the moving average of the foreground count."""
        labels = torch.stack(gt_labels)  # [N, A]
        pos = (labels >= 0) & (labels != self.num_classes)
        self.loss_normalizer = moving_loss_normalizer(
            self.loss_normalizer, int(pos.sum().item()), self.loss_normalizer_momentum
        )
        loss_cls = focal_loss_sum(
            torch.cat(pred_logits, dim=1), labels, self.focal_loss_alpha, self.focal_loss_gamma
        )
        deltas = torch.cat(pred_deltas, dim=1)
        img, anc = pos.nonzero(as_tuple=True)
        matched = torch.stack(gt_boxes)[img, anc]
        losses = {"loss_cls": loss_cls / self.loss_normalizer}
        if self.angle_coder is None:
            loss_box = box_regression_loss(
                self.box_reg_loss_type,
                self.box2box_transform,
                deltas[img, anc],
                anchors[anc],
                matched,
                self.smooth_l1_beta,
            )
        else:
            matched = normalize_rbox_angles(matched, self.angle_coder.angle_version)
            target = self.box2box_transform.get_deltas(anchors[anc], matched)[:, :4]
            beta = 0.0 if self.box_reg_loss_type == "l1" else self.smooth_l1_beta
            loss_box = smooth_l1_loss(deltas[img, anc], target, beta, reduction="sum")
            angles = torch.cat(pred_angles, dim=1)[img, anc]
            loss_angle = self.angle_coder.loss(angles, matched[:, 4]).sum()
            losses["loss_angle"] = self.angle_loss_weight * loss_angle / self.loss_normalizer
        losses["loss_box_reg"] = self.box_reg_loss_weight * loss_box / self.loss_normalizer
        return losses

    def decode_boxes(
        self, deltas: torch.Tensor, angle_codes: torch.Tensor, anchors: torch.Tensor
    ) -> torch.Tensor:
        """``deltas`` ``[M, box_dim]``, ``angle_codes`` ``[M, E]`` and ``anchors`` ``[M, 5]`` ->
        boxes ``[M, 5]``."""
        if self.angle_coder is None:
            return self.box2box_transform.apply_deltas(deltas, anchors)
        zeros = deltas.new_zeros((deltas.shape[0], 1))
        boxes = self.box2box_transform.apply_deltas(torch.cat([deltas, zeros], dim=1), anchors)
        angles = self.angle_coder.decode(angle_codes.float())
        return torch.cat([boxes[:, :4], angles[:, None].to(boxes.dtype)], dim=1)

    @torch.no_grad()
    def inference(
        self, anchors, pred_logits, pred_deltas, pred_angles, image_sizes
    ) -> list[Instances]:
        """Per image: per level the best ``test_topk_candidates`` (anchor, class) pairs above the
        score threshold, decoded, then per-class rotated NMS and the top detections."""
        results = []
        for i, size in enumerate(image_sizes):

            def decode_level(level, idx, classes, scores, i=i):
                deltas, angles = pred_deltas[level][i][idx], pred_angles[level][i][idx]
                return self.decode_boxes(deltas, angles, anchors[level][idx]), scores

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


def _check_angle_coder_setup(head, anchor_generator, box2box_transform, angle_coder, loss_type):
    """Raise a ValueError naming the key unless the pieces agree on the angle-branch layout."""
    if getattr(head, "angle_encode_size", None) != angle_coder.encode_size:
        raise ValueError(
            f"RotatedRetinaNet: head.angle_encode_size={getattr(head, 'angle_encode_size', None)} "
            f"must equal angle_coder.encode_size={angle_coder.encode_size} (and head.box_dim=4)"
        )
    if box2box_transform.angle_version is not None:
        raise ValueError(
            "RotatedRetinaNet with an angle_coder needs box2box_transform.angle_version=None: "
            "targets are written in the angle coder's convention "
            f"({angle_coder.angle_version!r}) and only their (x, y, w, h) deltas are regressed"
        )
    angles = torch.cat([cell[:, 4] for cell in anchor_generator.cell_anchors])
    if bool((angles != 0).any()):
        raise ValueError(
            "RotatedRetinaNet with an angle_coder needs anchors of angle 0 "
            f"(anchor_generator.angles=[0]), got angles {sorted(set(angles.tolist()))}"
        )
    if loss_type not in ("smooth_l1", "l1"):
        raise ValueError(
            "RotatedRetinaNet with an angle_coder regresses (x, y, w, h) deltas: "
            f"box_reg_loss_type must be 'smooth_l1' or 'l1', got {loss_type!r}"
        )

"""Rotated RTMDet (Lyu et al., "RTMDet: An Empirical Study of Designing Real-Time Object Detectors",
2022; MMRotate's ``rotated_rtmdet`` configs): a real-time anchor-free one-stage detector.

A CSPNeXt backbone and CSPNeXt-PAFPN neck feed a head whose convs are shared across the P3-P5
levels (BatchNorms per level). Each level's points (cell corners: offset 0) predict class
logits, distances to the four sides of a rotated box and its angle, decoded by the
``DistanceAnglePointCoder``. Training assigns targets with the dynamic soft-label assigner (on the
predictions' rotated IoU with the gts) and learns with the quality focal loss (soft label = that
IoU) and the rotated IoU loss weighted by the same IoU.
"""

import torch

from rotated_det.structures import Instances

from ..angle_coders import AngleCoder
from ..assigners.dynamic_soft_label import DynamicSoftLabelAssigner
from ..backbone.backbone import Backbone
from ..box_coders import DistanceAnglePointCoder
from ..dense_heads.rtmdet_head import RotatedRTMDetHead
from ..losses.quality_focal_loss import quality_focal_loss
from ..losses.rotated_iou_loss import ROTATED_IOU_LOSS_MODES, rotated_iou_loss
from ..point_generator import PointGenerator
from .dense_detection import (
    check_point_detector_parts,
    detect_image,
    flatten_levels,
)
from .preprocessing import DetectorBase, gt_instances, postprocess_batch

__all__ = ["RotatedRTMDet"]


class RotatedRTMDet(DetectorBase):
    """Rotated RTMDet.

    Args:
        backbone: Backbone (CSPNeXt-PAFPN, P3-P5).
        head: RotatedRTMDetHead (``head.angle_encode_size == angle_coder.encode_size``).
        head_in_features: feature names fed to the head, e.g. ["p3", "p4", "p5"].
        point_generator: PointGenerator with the head's strides (offset 0 in RTMDet).
        assigner: DynamicSoftLabelAssigner.
        box_coder: DistanceAnglePointCoder (its angle_version must equal the angle coder's).
        angle_coder: AngleCoder of the angle output (RTMDet: plain regression, radians).
        num_classes: K.
        qfl_beta: exponent of the quality focal loss.
        cls_loss_weight, box_loss_weight: loss weights (1 and 2 in RTMDet).
        box_loss_mode: rotated IoU loss, "linear" (1 - IoU), "log" or "giou".
        test_score_thresh: minimum class probability of a candidate.
        test_topk_candidates: candidates kept per level before NMS.
        test_nms_thresh: rotated-IoU threshold of the per-class NMS.
        max_detections_per_image: detections kept per image.
        pixel_mean, pixel_std, input_format: see :class:`DetectorBase`.

    Losses (as MMRotate): with the assigned IoUs ``q`` of the positives (their soft labels),
    ``loss_cls`` = QFL over all points and classes / max(sum q, 1), ``loss_box_reg`` =
    ``box_loss_weight`` x sum(q x IoU loss) / max(sum q, 1). Scores at inference: the class
    probabilities.
    """

    def __init__(
        self,
        *,
        backbone: Backbone,
        head: RotatedRTMDetHead,
        head_in_features: list[str],
        point_generator: PointGenerator,
        assigner: DynamicSoftLabelAssigner,
        box_coder: DistanceAnglePointCoder,
        angle_coder: AngleCoder,
        num_classes: int,
        qfl_beta: float = 2.0,
        cls_loss_weight: float = 1.0,
        box_loss_weight: float = 2.0,
        box_loss_mode: str = "linear",
        test_score_thresh: float = 0.05,
        test_topk_candidates: int = 2000,
        test_nms_thresh: float = 0.1,
        max_detections_per_image: int = 2000,
        pixel_mean: tuple[float, ...] = (103.53, 116.28, 123.675),
        pixel_std: tuple[float, ...] = (57.375, 57.12, 58.395),
        input_format: str = "BGR",
    ) -> None:
        super().__init__(
            backbone=backbone, pixel_mean=pixel_mean, pixel_std=pixel_std, input_format=input_format
        )
        check_point_detector_parts(
            "RotatedRTMDet", head, num_classes, angle_coder, point_generator, box_coder
        )
        if box_loss_mode not in ROTATED_IOU_LOSS_MODES:
            raise ValueError(
                f"RotatedRTMDet: box_loss_mode must be one of {ROTATED_IOU_LOSS_MODES}, got "
                f"{box_loss_mode!r}"
            )
        self.head = head
        self.head_in_features = list(head_in_features)
        self.point_generator = point_generator
        self.assigner = assigner
        self.box_coder = box_coder
        self.angle_coder = angle_coder
        self.num_classes = num_classes
        self.qfl_beta = qfl_beta
        self.cls_loss_weight = cls_loss_weight
        self.box_loss_weight = box_loss_weight
        self.box_loss_mode = box_loss_mode
        self.test_score_thresh = test_score_thresh
        self.test_topk_candidates = test_topk_candidates
        self.test_nms_thresh = test_nms_thresh
        self.max_detections_per_image = max_detections_per_image

    def forward(self, batched_inputs: list[dict]):
        images = self.preprocess_image(batched_inputs)
        points, pred_logits, pred_distances, pred_angles = self.head_outputs(images.tensor)
        if self.training:
            gt = gt_instances(batched_inputs, self.device)
            return self.losses(points, gt, pred_logits, pred_distances, pred_angles)
        results = self.inference(
            points, pred_logits, pred_distances, pred_angles, images.image_sizes
        )
        return postprocess_batch(results, batched_inputs)

    def head_outputs(self, images: torch.Tensor) -> tuple[list[torch.Tensor], ...]:
        """The points and the head's outputs for a normalised, padded batch ``[N, C, H, W]``:
        per level the points ``[P_l, 2]`` (pixels), class logits ``[N, P_l, K]``, distances
        ``[N, P_l, 4]`` (pixels) and angle codes ``[N, P_l, E]``."""
        features = self.backbone(images)
        feats = [features[f] for f in self.head_in_features]
        points = self.point_generator(feats)
        logits, distances, angle_codes = self.head(feats)
        pred_logits = [flatten_levels(x, self.num_classes) for x in logits]
        pred_distances = [flatten_levels(x, 4) for x in distances]
        pred_angles = [flatten_levels(x, self.angle_coder.encode_size) for x in angle_codes]
        return points, pred_logits, pred_distances, pred_angles

    def decode(
        self, points: torch.Tensor, distances: torch.Tensor, angle_codes: torch.Tensor
    ) -> torch.Tensor:
        """Boxes ``[M, 5]`` from points ``[M, 2]``, distances ``[M, 4]`` and angle codes
        ``[M, E]``."""
        return self.box_coder.decode(points, distances, self.angle_coder.decode(angle_codes))

    @torch.no_grad()
    def label_points(
        self,
        points: list[torch.Tensor],
        gt_instances: list[Instances],
        logits: torch.Tensor,
        distances: torch.Tensor,
        angle_codes: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per image and point: the assigned gt index ``[N, P]`` (-1: background), its soft
        label (the IoU of the point's predicted box with that gt) ``[N, P]`` and the gt box
        ``[N, P, 5]`` (zeros for background), from the predictions ``logits [N, P, K]``,
        ``distances [N, P, 4]`` and ``angle_codes [N, P, E]``."""
        all_points = torch.cat(points)
        strides = torch.cat(
            [
                torch.full((p.shape[0],), float(s), device=p.device)
                for p, s in zip(points, self.point_generator.strides)
            ]
        )
        assigned_out, iou_out, boxes_out = [], [], []
        for i, inst in enumerate(gt_instances):
            gt = inst.gt_boxes.tensor
            pred_boxes = self.decode(all_points, distances[i], angle_codes[i])
            assigned, iou = self.assigner(
                all_points, strides, logits[i], pred_boxes, gt, inst.gt_classes
            )
            boxes = gt.new_zeros((assigned.shape[0], 5))
            fg = assigned >= 0
            if gt.shape[0] > 0:
                boxes[fg] = gt[assigned[fg]]
            assigned_out.append(assigned)
            iou_out.append(iou.float())
            boxes_out.append(boxes)
        return torch.stack(assigned_out), torch.stack(iou_out), torch.stack(boxes_out)

    def losses(
        self, points, gt, pred_logits, pred_distances, pred_angles
    ) -> dict[str, torch.Tensor]:
        logits = torch.cat(pred_logits, dim=1).float()
        distances = torch.cat(pred_distances, dim=1).float()
        angle_codes = torch.cat(pred_angles, dim=1).float()
        assigned, soft_labels, gt_boxes = self.label_points(
            points, gt, logits.detach(), distances.detach(), angle_codes.detach()
        )
        img, idx = (assigned >= 0).nonzero(as_tuple=True)
        # (img, idx) is in row-major order: image by image, points ascending
        pos_classes = torch.cat([inst.gt_classes[a[a >= 0]] for a, inst in zip(assigned, gt)])
        targets = torch.zeros_like(logits)
        weights = soft_labels[img, idx]
        targets[img, idx, pos_classes] = weights
        normaliser = weights.sum().clamp(min=1.0)
        loss_cls = quality_focal_loss(logits, targets, self.qfl_beta, "sum") / normaliser
        if img.numel() > 0:
            all_points = torch.cat(points)
            pred_boxes = self.decode(all_points[idx], distances[img, idx], angle_codes[img, idx])
            box_loss = rotated_iou_loss(pred_boxes, gt_boxes[img, idx], mode=self.box_loss_mode)
            loss_box = (box_loss * weights).sum() / normaliser
        else:  # keeps the regression outputs in the graph
            loss_box = distances.sum() * 0.0 + angle_codes.sum() * 0.0
        return {
            "loss_cls": self.cls_loss_weight * loss_cls,
            "loss_box_reg": self.box_loss_weight * loss_box,
        }

    @torch.no_grad()
    def inference(
        self, points, pred_logits, pred_distances, pred_angles, image_sizes
    ) -> list[Instances]:
        """Per image: per level the best ``test_topk_candidates`` (point, class) pairs by class
        probability above the threshold, decoded, then per-class rotated NMS and the top
        detections."""
        results = []
        for i, size in enumerate(image_sizes):

            def decode_level(level, idx, classes, scores, i=i):
                distances = pred_distances[level][i][idx].float()
                angles = pred_angles[level][i][idx].float()
                return self.decode(points[level][idx], distances, angles), scores

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

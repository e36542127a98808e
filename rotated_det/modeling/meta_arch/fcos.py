"""Rotated FCOS: an anchor-free one-stage detector (Tian et al. 2019; MMRotate's rotated FCOS).

Each FPN cell's centre point predicts a class, its distances to the four sides of a rotated box
(in the box's frame, see ``DistanceAnglePointCoder``), the box angle (through an angle coder:
plain regression, CSL or PSC) and a centerness that down-weights points far from the centre.
"""

import torch
from torch.nn import functional as F

from rotated_det.structures import Instances

from ..angle_coders import AngleCoder
from ..assigners import (
    FCOS_REGRESS_RANGES,
    RotatedCenterSamplingAssigner,
    per_point_strides_and_ranges,
)
from ..backbone.backbone import Backbone
from ..box_coders import DistanceAnglePointCoder
from ..dense_heads.fcos_head import RotatedFCOSHead
from ..losses.distance_iou_loss import distance_iou_loss
from ..losses.focal_loss import sigmoid_focal_loss
from ..losses.rotated_iou_loss import rotated_iou_loss
from ..point_generator import PointGenerator
from .dense_detection import (
    check_point_detector_parts,
    detect_image,
    flatten_levels,
)
from .preprocessing import DetectorBase, gt_instances, postprocess_batch

__all__ = ["RotatedFCOS"]

ROTATED_BOX_LOSSES = ("iou", "log_iou", "giou")
DISTANCE_BOX_LOSSES = ("hbox_iou", "hbox_log_iou", "hbox_giou")


def centerness_targets(distances: torch.Tensor) -> torch.Tensor:
    """FCOS's centerness of points inside their boxes: ``[F, 4]`` (left, top, right, bottom,
    pixels) -> ``[F]`` in [0, 1]: ``sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))``."""
    left, top, right, bottom = distances.clamp(min=0).unbind(1)
    lr = torch.minimum(left, right) / torch.maximum(left, right).clamp(min=1e-6)
    tb = torch.minimum(top, bottom) / torch.maximum(top, bottom).clamp(min=1e-6)
    return torch.sqrt(lr * tb)


class RotatedFCOS(DetectorBase):
    """Rotated FCOS (with a plain, CSL or PSC angle coder).

    Args:
        backbone: Backbone (FPN P3-P7).
        head: RotatedFCOSHead (``head.angle_encode_size == angle_coder.encode_size``).
        head_in_features: feature names fed to the head, e.g. ["p3", ..., "p7"].
        point_generator: PointGenerator with the head's strides.
        assigner: RotatedCenterSamplingAssigner (which points are positives of which box).
        regress_ranges: per level ``(low, high)`` of the largest side distance (pixels) a point
            of that level regresses (FCOS's object-size split between levels).
        box_coder: DistanceAnglePointCoder (its angle_version must equal the angle coder's).
        angle_coder: AngleCoder of the angle output.
        num_classes: K.
        focal_loss_alpha, focal_loss_gamma: focal loss parameters.
        box_loss_type: a loss on the rotated box decoded with the predicted angle ("iou" =
            1 - IoU, "log_iou", "giou"; the angle learns through it: the angle coder's decode
            must be differentiable), or on the (left, top, right, bottom) box in the target's
            frame ("hbox_iou", "hbox_log_iou", "hbox_giou"; MMRotate's ``use_hbbox_loss``) with
            the angle learnt by the angle coder's loss alone.
        angle_loss_weight: weight of the angle coder's loss (0 disables it; must be > 0 with an
            "hbox_*" box loss).
        test_score_thresh: minimum class probability of a candidate.
        test_topk_candidates: candidates kept per level before NMS.
        test_nms_thresh: rotated-IoU threshold of the per-class NMS.
        max_detections_per_image: detections kept per image.
        pixel_mean, pixel_std, input_format: see :class:`DetectorBase`.

    Losses (as FCOS): focal loss over all points / the number of positives; box loss weighted
    by the centerness targets / their sum; centerness binary cross-entropy / positives; angle
    loss / positives. Scores at inference: ``sigmoid(class) * sigmoid(centerness)``.
    """

    def __init__(
        self,
        *,
        backbone: Backbone,
        head: RotatedFCOSHead,
        head_in_features: list[str],
        point_generator: PointGenerator,
        assigner: RotatedCenterSamplingAssigner,
        regress_ranges: tuple[tuple[float, float], ...] | list = FCOS_REGRESS_RANGES,
        box_coder: DistanceAnglePointCoder,
        angle_coder: AngleCoder,
        num_classes: int,
        focal_loss_alpha: float = 0.25,
        focal_loss_gamma: float = 2.0,
        box_loss_type: str = "iou",
        angle_loss_weight: float = 0.0,
        test_score_thresh: float = 0.05,
        test_topk_candidates: int = 1000,
        test_nms_thresh: float = 0.1,
        max_detections_per_image: int = 100,
        pixel_mean: tuple[float, ...] = (103.530, 116.280, 123.675),
        pixel_std: tuple[float, ...] = (1.0, 1.0, 1.0),
        input_format: str = "BGR",
    ) -> None:
        super().__init__(
            backbone=backbone, pixel_mean=pixel_mean, pixel_std=pixel_std, input_format=input_format
        )
        check_point_detector_parts(
            "RotatedFCOS", head, num_classes, angle_coder, point_generator, box_coder
        )
        if len(regress_ranges) != len(head.strides):
            raise ValueError(
                f"RotatedFCOS: {len(regress_ranges)} regress_ranges for {len(head.strides)} "
                "levels (head.strides)"
            )
        if box_loss_type not in ROTATED_BOX_LOSSES + DISTANCE_BOX_LOSSES:
            raise ValueError(
                f"RotatedFCOS: box_loss_type must be one of "
                f"{ROTATED_BOX_LOSSES + DISTANCE_BOX_LOSSES}, got {box_loss_type!r}"
            )
        if box_loss_type in DISTANCE_BOX_LOSSES and angle_loss_weight <= 0:
            raise ValueError(
                f"RotatedFCOS: box_loss_type={box_loss_type!r} does not train the angle: "
                f"angle_loss_weight must be > 0, got {angle_loss_weight}"
            )
        self.head = head
        self.head_in_features = list(head_in_features)
        self.point_generator = point_generator
        self.assigner = assigner
        self.regress_ranges = [(float(lo), float(hi)) for lo, hi in regress_ranges]
        self.box_coder = box_coder
        self.angle_coder = angle_coder
        self.num_classes = num_classes
        self.focal_loss_alpha = focal_loss_alpha
        self.focal_loss_gamma = focal_loss_gamma
        self.box_loss_type = box_loss_type
        self.angle_loss_weight = angle_loss_weight
        self.test_score_thresh = test_score_thresh
        self.test_topk_candidates = test_topk_candidates
        self.test_nms_thresh = test_nms_thresh
        self.max_detections_per_image = max_detections_per_image

    def forward(self, batched_inputs: list[dict]):
        images = self.preprocess_image(batched_inputs)
        points, pred_logits, pred_distances, pred_angles, pred_centerness = self.head_outputs(
            images.tensor
        )
        if self.training:
            gt = gt_instances(batched_inputs, self.device)
            return self.losses(
                points, gt, pred_logits, pred_distances, pred_angles, pred_centerness
            )
        results = self.inference(
            points, pred_logits, pred_distances, pred_angles, pred_centerness, images.image_sizes
        )
        return postprocess_batch(results, batched_inputs)

    def head_outputs(self, images: torch.Tensor) -> tuple[list[torch.Tensor], ...]:
        """The points and the head's outputs for a normalised, padded batch ``[N, C, H, W]``:
        per level the points ``[P_l, 2]`` (pixels), class logits ``[N, P_l, K]``, distances
        ``[N, P_l, 4]`` (pixels), angle codes ``[N, P_l, E]`` and centerness logits
        ``[N, P_l]``."""
        features = self.backbone(images)
        feats = [features[f] for f in self.head_in_features]
        points = self.point_generator(feats)
        logits, distances, angle_codes, centerness = self.head(feats)
        pred_logits = [flatten_levels(x, self.num_classes) for x in logits]
        pred_distances = [flatten_levels(x, 4) for x in distances]
        pred_angles = [flatten_levels(x, self.angle_coder.encode_size) for x in angle_codes]
        pred_centerness = [flatten_levels(x, 1)[..., 0] for x in centerness]
        return points, pred_logits, pred_distances, pred_angles, pred_centerness

    @torch.no_grad()
    def label_points(
        self, points: list[torch.Tensor], gt_instances: list[Instances]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per image and point: the class label (K for background) ``[N, P]``, the assigned
        ground-truth box ``[N, P, 5]`` (zeros for background) and the index of that box in its
        image's ground truth ``[N, P]`` (-1 for background). ``points``: per level
        ``[P_l, 2]``."""
        strides, ranges = per_point_strides_and_ranges(
            [p.shape[0] for p in points],
            self.point_generator.strides,
            self.regress_ranges,
            device=points[0].device,
        )
        all_points = torch.cat(points)
        labels_out, boxes_out, assigned_out = [], [], []
        for inst in gt_instances:
            gt = inst.gt_boxes.tensor
            assigned = self.assigner(all_points, strides, ranges, gt)
            fg = assigned >= 0
            labels = torch.full_like(assigned, self.num_classes)
            boxes = gt.new_zeros((assigned.shape[0], 5))
            if gt.shape[0] > 0:
                labels[fg] = inst.gt_classes[assigned[fg]]
                boxes[fg] = gt[assigned[fg]]
            labels_out.append(labels)
            boxes_out.append(boxes)
            assigned_out.append(assigned)
        return torch.stack(labels_out), torch.stack(boxes_out), torch.stack(assigned_out)

    def losses(self, points, gt, pred_logits, pred_distances, pred_angles, pred_centerness):
        labels, gt_boxes, _ = self.label_points(points, gt)  # [N, P], [N, P, 5], [N, P]
        return self.point_losses(
            points, labels, gt_boxes, pred_logits, pred_distances, pred_angles, pred_centerness
        )

    def point_losses(
        self, points, labels, gt_boxes, pred_logits, pred_distances, pred_angles, pred_centerness
    ) -> dict[str, torch.Tensor]:
        """The losses (class docstring) given each point's label ``[N, P]`` (K: background) and
        assigned box ``[N, P, 5]`` (from :meth:`label_points`)."""
        all_points = torch.cat(points)
        pos = labels != self.num_classes
        num_pos = max(int(pos.sum().item()), 1)
        logits = torch.cat(pred_logits, dim=1)
        onehot = F.one_hot(labels, num_classes=self.num_classes + 1)[..., :-1]
        loss_cls = sigmoid_focal_loss(
            logits, onehot.to(logits.dtype), self.focal_loss_alpha, self.focal_loss_gamma, "sum"
        )
        img, idx = pos.nonzero(as_tuple=True)
        pos_points = all_points[idx]
        target_distances, target_angles = self.box_coder.encode(pos_points, gt_boxes[img, idx])
        distances = torch.cat(pred_distances, dim=1)[img, idx].float()
        angle_codes = torch.cat(pred_angles, dim=1)[img, idx].float()
        centerness = torch.cat(pred_centerness, dim=1)[img, idx].float()
        weights = centerness_targets(target_distances)
        weight_sum = weights.sum().clamp(min=1e-6)
        box_losses = self.box_losses(
            pos_points, labels[img, idx], distances, angle_codes, target_distances, target_angles
        )
        losses = {
            "loss_cls": loss_cls / num_pos,
            "loss_box_reg": (box_losses * weights).sum() / weight_sum,
            "loss_centerness": F.binary_cross_entropy_with_logits(
                centerness, weights, reduction="sum"
            )
            / num_pos,
        }
        if self.angle_loss_weight > 0:
            loss_angle = self.angle_coder.loss(angle_codes, target_angles).sum()
            losses["loss_angle"] = self.angle_loss_weight * loss_angle / num_pos
        return losses

    def box_losses(
        self,
        points: torch.Tensor,
        labels: torch.Tensor,
        distances: torch.Tensor,
        angle_codes: torch.Tensor,
        target_distances: torch.Tensor,
        target_angles: torch.Tensor,
    ) -> torch.Tensor:
        """Per positive point ``[F]``: the box loss (``box_loss_type``) of its predicted
        distances ``[F, 4]`` and angle codes ``[F, E]`` against its target distances ``[F, 4]``
        and angles ``[F]`` (degrees; ``DistanceAnglePointCoder.encode``). ``points``: ``[F, 2]``,
        ``labels``: ``[F]`` classes (unused here; for subclasses)."""
        if self.box_loss_type in DISTANCE_BOX_LOSSES:
            mode = self.box_loss_type.removeprefix("hbox_")
            return distance_iou_loss(distances, target_distances, mode=_iou_mode(mode))
        pred_boxes = self.box_coder.decode(points, distances, self.angle_coder.decode(angle_codes))
        target_boxes = self.box_coder.decode(points, target_distances, target_angles)
        return rotated_iou_loss(pred_boxes, target_boxes, mode=_iou_mode(self.box_loss_type))

    def decode_boxes(
        self,
        points: torch.Tensor,
        distances: torch.Tensor,
        angle_codes: torch.Tensor,
        classes: torch.Tensor,
    ) -> torch.Tensor:
        """Candidate boxes ``[k, 5]`` at inference from their points ``[k, 2]``, distances
        ``[k, 4]``, angle codes ``[k, E]`` and classes ``[k]`` (unused here; for subclasses)."""
        return self.box_coder.decode(points, distances, self.angle_coder.decode(angle_codes))

    @torch.no_grad()
    def inference(
        self, points, pred_logits, pred_distances, pred_angles, pred_centerness, image_sizes
    ) -> list[Instances]:
        """Per image: per level the best ``test_topk_candidates`` (point, class) pairs by class
        probability above the threshold, scored by class probability x centerness, decoded, then
        per-class rotated NMS and the top detections."""
        results = []
        for i, size in enumerate(image_sizes):

            def decode_level(level, idx, classes, scores, i=i):
                distances = pred_distances[level][i][idx].float()
                angles = pred_angles[level][i][idx].float()
                boxes = self.decode_boxes(points[level][idx], distances, angles, classes)
                return boxes, scores * pred_centerness[level][i][idx].float().sigmoid()

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


def _iou_mode(loss_type: str) -> str:
    return {"iou": "linear", "log_iou": "log", "giou": "giou"}[loss_type]

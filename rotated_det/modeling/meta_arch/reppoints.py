"""Point-set detectors: rotated RepPoints and its successors Oriented RepPoints (Li et al., CVPR
2022), CFA (Guo et al., CVPR 2021) and SASM (Hou et al., AAAI 2022), one meta-architecture with
the assignment and the losses as swappable pieces.

Each FPN location predicts a set of 9 points in two stages (:class:`RepPointsHead`); an object is
the minimum-area rectangle of its refined points. Training:

1. initial points: each object is learnt by the point set of its nearest location on the level
   of its size (``init_assigner``, :class:`ConvexAssigner`), with the convex GIoU loss (or SASM's
   shape-balanced variant, ``init_loss_type="bc_convex_giou"``);
2. refined points and classes: the locations whose initial point sets' convex hulls overlap an
   object are assigned by ``refine_assigner`` (max convex IoU, or SASM's shape-adaptive
   selection); an optional ``refine_selection`` keeps the best of those candidates and weights
   them (Oriented RepPoints' adaptive points assessment, CFA's convex-hull feature adaptation);
   focal loss over all locations, convex GIoU loss over the positives;
3. optional: Oriented RepPoints' spatial constraint on both stages (``spatial_*_weight``),
   SASM's shape-adaptive measurement weights of the positives (``shape_measurement``).

The four detectors of MMRotate's point-set family are configurations of these pieces
(configs/common/models/rotated_reppoints.py, oriented_reppoints.py, cfa.py, sasm.py).
"""

import torch
from torch.nn import functional as F

from rotated_det.structures import Instances, points_to_rbox

from ..assigners.adaptive_points_assignment import AdaptivePointsAssignment
from ..assigners.convex_assigner import ConvexAssigner
from ..assigners.convex_hull_feature_adaptation import ConvexHullFeatureAdaptation
from ..assigners.max_convex_iou_assigner import IGNORED, MaxConvexIoUAssigner
from ..assigners.point_set_candidates import PointSetCandidates
from ..assigners.sas_assigner import SASAssigner
from ..assigners.shape_adaptive_measurement import ShapeAdaptiveMeasurement
from ..backbone.backbone import Backbone
from ..dense_heads.reppoints_head import RepPointsHead
from ..losses.convex_giou_loss import bc_convex_giou_loss, convex_giou_loss
from ..losses.focal_loss import sigmoid_focal_loss
from ..losses.spatial_border_loss import spatial_border_loss
from ..point_generator import PointGenerator
from .dense_detection import detect_image, flatten_levels
from .preprocessing import DetectorBase, gt_instances, postprocess_batch

__all__ = ["RotatedRepPoints", "INIT_LOSS_TYPES"]

INIT_LOSS_TYPES = ("convex_giou", "bc_convex_giou")


class RotatedRepPoints(DetectorBase):
    """The point-set detector (module docstring).

    Args:
        backbone: Backbone (FPN P3-P7).
        head: RepPointsHead.
        head_in_features: feature names fed to the head, e.g. ["p3", ..., "p7"].
        point_generator: PointGenerator with the head's strides (the locations' points).
        init_assigner: ConvexAssigner of the initial stage.
        refine_assigner: MaxConvexIoUAssigner or SASAssigner of the refine stage.
        refine_selection: None, AdaptivePointsAssignment (Oriented RepPoints) or
            ConvexHullFeatureAdaptation (CFA): weights of the refine assigner's candidates
            (0: background).
        shape_measurement: None or ShapeAdaptiveMeasurement (SASM): extra weights of the
            positives of both stages' box losses and of the refine positives' focal loss.
        num_classes: K.
        point_base_scale: the length unit of the size-dependent losses (BC convex GIoU's smooth
            L1 terms, spatial constraint) is ``point_base_scale x stride`` of the location's
            level (2 in MMRotate's configs).
        focal_loss_alpha, focal_loss_gamma: focal loss parameters.
        init_loss_type: "convex_giou" or "bc_convex_giou" (SASM) for the initial points.
        init_loss_weight, refine_loss_weight: weights of the two box losses (0.375, 1.0).
        spatial_init_weight, spatial_refine_weight: weights of the spatial constraint on each
            stage (0 disables it; Oriented RepPoints: 0.05, 0.1).
        test_score_thresh: minimum class probability of a detection.
        test_topk_candidates: candidates kept per level before NMS.
        test_nms_thresh: rotated-IoU threshold of the per-class NMS (0.4 in MMRotate's
            point-set configs).
        max_detections_per_image: detections kept per image.
        pixel_mean, pixel_std, input_format: see :class:`DetectorBase`.

    Losses: ``loss_cls`` (focal, sum over locations / positives), ``loss_pts_init`` and
    ``loss_pts_refine`` (weighted mean over each stage's positives), ``loss_spatial_init`` and
    ``loss_spatial_refine`` (when their weights are > 0).
    """

    def __init__(
        self,
        *,
        backbone: Backbone,
        head: RepPointsHead,
        head_in_features: list[str],
        point_generator: PointGenerator,
        init_assigner: ConvexAssigner,
        refine_assigner: MaxConvexIoUAssigner | SASAssigner,
        refine_selection: AdaptivePointsAssignment | ConvexHullFeatureAdaptation | None = None,
        shape_measurement: ShapeAdaptiveMeasurement | None = None,
        num_classes: int,
        point_base_scale: float = 2.0,
        focal_loss_alpha: float = 0.25,
        focal_loss_gamma: float = 2.0,
        init_loss_type: str = "convex_giou",
        init_loss_weight: float = 0.375,
        refine_loss_weight: float = 1.0,
        spatial_init_weight: float = 0.0,
        spatial_refine_weight: float = 0.0,
        test_score_thresh: float = 0.05,
        test_topk_candidates: int = 2000,
        test_nms_thresh: float = 0.4,
        max_detections_per_image: int = 2000,
        pixel_mean: tuple[float, ...] = (103.530, 116.280, 123.675),
        pixel_std: tuple[float, ...] = (1.0, 1.0, 1.0),
        input_format: str = "BGR",
    ) -> None:
        super().__init__(
            backbone=backbone, pixel_mean=pixel_mean, pixel_std=pixel_std, input_format=input_format
        )
        if head.num_classes != num_classes:
            raise ValueError(
                f"RotatedRepPoints: num_classes={num_classes} must equal "
                f"head.num_classes={head.num_classes}"
            )
        if list(point_generator.strides) != list(head.strides):
            raise ValueError(
                f"RotatedRepPoints: point_generator.strides={list(point_generator.strides)} must "
                f"equal head.strides={list(head.strides)}"
            )
        if len(head_in_features) != len(head.strides):
            raise ValueError(
                f"RotatedRepPoints: head_in_features {list(head_in_features)} must have one entry "
                f"per level of head.strides={list(head.strides)}"
            )
        if init_loss_type not in INIT_LOSS_TYPES:
            raise ValueError(
                f"RotatedRepPoints: init_loss_type must be one of {INIT_LOSS_TYPES}, got "
                f"{init_loss_type!r}"
            )
        if point_base_scale <= 0:
            raise ValueError(
                f"RotatedRepPoints: point_base_scale must be > 0, got {point_base_scale}"
            )
        self.head = head
        self.head_in_features = list(head_in_features)
        self.point_generator = point_generator
        self.init_assigner = init_assigner
        self.refine_assigner = refine_assigner
        self.refine_selection = refine_selection
        self.shape_measurement = shape_measurement
        self.num_classes = num_classes
        self.point_base_scale = float(point_base_scale)
        self.focal_loss_alpha = focal_loss_alpha
        self.focal_loss_gamma = focal_loss_gamma
        self.init_loss_type = init_loss_type
        self.init_loss_weight = init_loss_weight
        self.refine_loss_weight = refine_loss_weight
        self.spatial_init_weight = spatial_init_weight
        self.spatial_refine_weight = spatial_refine_weight
        self.test_score_thresh = test_score_thresh
        self.test_topk_candidates = test_topk_candidates
        self.test_nms_thresh = test_nms_thresh
        self.max_detections_per_image = max_detections_per_image

    def forward(self, batched_inputs: list[dict]):
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)
        feats = [features[f] for f in self.head_in_features]
        points = self.point_generator(feats)
        logits, init_offsets, refine_offsets = self.head(feats)
        pred_logits = [flatten_levels(x, self.num_classes) for x in logits]
        strides = self.point_generator.strides
        init_points = [self.image_points(o, p, s) for o, p, s in zip(init_offsets, points, strides)]
        refine_points = [
            self.image_points(o, p, s) for o, p, s in zip(refine_offsets, points, strides)
        ]
        if self.training:
            gt = gt_instances(batched_inputs, self.device)
            return self.losses(feats, points, pred_logits, init_points, refine_points, gt)
        results = self.inference(pred_logits, refine_points, images.image_sizes)
        return postprocess_batch(results, batched_inputs)

    def image_points(
        self, offsets: torch.Tensor, points: torch.Tensor, stride: int
    ) -> torch.Tensor:
        """A level's point sets in image pixels: head offsets ``[N, 2 * K, H, W]`` (x, y in
        strides from each location) and the level's points ``[H * W, 2]`` -> ``[N, H * W, K,
        2]``."""
        num_points = self.head.num_points
        flat = flatten_levels(offsets, 2 * num_points).float()
        n, length = flat.shape[:2]
        return flat.view(n, length, num_points, 2) * stride + points[None, :, None, :]

    def losses(
        self,
        feats: list[torch.Tensor],
        points: list[torch.Tensor],
        pred_logits: list[torch.Tensor],
        init_points: list[torch.Tensor],
        refine_points: list[torch.Tensor],
        gt: list[Instances],
    ) -> dict[str, torch.Tensor]:
        """The losses (class docstring); per level: ``feats`` ``[N, C, H_l, W_l]``, ``points``
        ``[L_l, 2]``, ``pred_logits`` ``[N, L_l, K]``, point sets ``[N, L_l, 9, 2]`` pixels."""
        device = self.device
        counts = [p.shape[0] for p in points]
        strides = self.point_generator.strides
        level = torch.repeat_interleave(
            torch.arange(len(counts), device=device), torch.tensor(counts, device=device)
        )
        unit = self.point_base_scale * torch.tensor(strides, device=device, dtype=torch.float32)
        unit = unit[level]  # [L]
        centres = torch.cat(points)
        logits = torch.cat(pred_logits, dim=1)
        init = torch.cat(init_points, dim=1)
        refine = torch.cat(refine_points, dim=1)
        gt_boxes = [g.gt_boxes.tensor.float() for g in gt]
        gt_classes = [g.gt_classes for g in gt]

        # initial stage
        with torch.no_grad():
            init_assigned = torch.stack(
                [self.init_assigner(centres, counts, strides, b) for b in gt_boxes]
            )
        img, loc = (init_assigned >= 0).nonzero(as_tuple=True)
        boxes = _gather_boxes(gt_boxes, img, init_assigned[img, loc], init)
        weights = torch.ones_like(unit[loc])
        if self.shape_measurement is not None:
            weights = self.shape_measurement(centres[loc], boxes)
        losses = self.stage_box_losses(
            "init", init[img, loc], boxes, unit[loc], weights, max(img.shape[0], 1)
        )

        # refine stage
        with torch.no_grad():
            detached = init.detach()
            refine_assigned = torch.stack(
                [self.refine_assigner(detached[i], counts, b) for i, b in enumerate(gt_boxes)]
            )
            cimg, cloc = (refine_assigned >= 0).nonzero(as_tuple=True)
            cgt = refine_assigned[cimg, cloc]
            cboxes = _gather_boxes(gt_boxes, cimg, cgt, init)
            ccls = _gather_classes(gt_classes, cimg, cgt)
            weights = self.refine_weights(
                feats,
                logits,
                detached,
                refine.detach(),
                level,
                gt_boxes,
                cimg,
                cloc,
                cgt,
                cboxes,
                ccls,
            )
            pos = weights > 0
            labels = torch.full_like(refine_assigned, self.num_classes)
            labels[refine_assigned == IGNORED] = -1
            labels[cimg[pos], cloc[pos]] = ccls[pos]
            label_weights = torch.ones(labels.shape, device=device)
            label_weights[cimg[pos], cloc[pos]] = weights[pos]
            num_pos = max(int(pos.sum()), 1)
        valid = labels >= 0
        onehot = F.one_hot(labels[valid], self.num_classes + 1)[:, :-1].to(logits.dtype)
        focal = sigmoid_focal_loss(
            logits[valid], onehot, self.focal_loss_alpha, self.focal_loss_gamma
        ).float()
        losses["loss_cls"] = (focal.sum(dim=1) * label_weights[valid]).sum() / num_pos
        pimg, ploc = cimg[pos], cloc[pos]
        losses.update(
            self.stage_box_losses(
                "refine", refine[pimg, ploc], cboxes[pos], unit[ploc], weights[pos], num_pos
            )
        )
        return losses

    def stage_box_losses(
        self,
        stage: str,
        point_sets: torch.Tensor,
        boxes: torch.Tensor,
        unit: torch.Tensor,
        weights: torch.Tensor,
        normalizer: int,
    ) -> dict[str, torch.Tensor]:
        """One stage's weighted box loss (and spatial constraint) over its positives: point sets
        ``[F, 9, 2]``, objects ``[F, 5]``, length units ``[F]``, weights ``[F]``, each summed and
        divided by ``normalizer``."""
        if stage == "init" and self.init_loss_type == "bc_convex_giou":
            box_loss = bc_convex_giou_loss(point_sets, boxes, unit)
            weight, spatial_weight = self.init_loss_weight, self.spatial_init_weight
        else:
            box_loss = convex_giou_loss(point_sets, boxes)
            weight = self.init_loss_weight if stage == "init" else self.refine_loss_weight
            spatial_weight = (
                self.spatial_init_weight if stage == "init" else self.spatial_refine_weight
            )
        # "+ 0 * sum": a graph (and zero gradients) also without positives
        anchor = point_sets.sum() * 0
        losses = {f"loss_pts_{stage}": weight * (box_loss * weights).sum() / normalizer + anchor}
        if spatial_weight > 0:
            spatial = spatial_border_loss(point_sets, boxes, unit)
            losses[f"loss_spatial_{stage}"] = (
                spatial_weight * (spatial * weights).sum() / normalizer + anchor
            )
        return losses

    def refine_weights(
        self,
        feats: list[torch.Tensor],
        logits: torch.Tensor,
        init: torch.Tensor,
        refine: torch.Tensor,
        level: torch.Tensor,
        gt_boxes: list[torch.Tensor],
        cimg: torch.Tensor,
        cloc: torch.Tensor,
        cgt: torch.Tensor,
        cboxes: torch.Tensor,
        ccls: torch.Tensor,
    ) -> torch.Tensor:
        """``[F]`` weights of the refine assigner's F candidates (image ``cimg``, location
        ``cloc``, object ``cgt`` with box ``cboxes`` and class ``ccls``): 1, or the
        ``refine_selection``'s, times the ``shape_measurement``'s (at the centroid of the
        initial points, as SASM's assigner sees them); 0 makes a candidate background."""
        weights = torch.ones(cimg.shape[0], device=logits.device)
        if self.refine_selection is not None:
            onehot = F.one_hot(ccls, self.num_classes).float()
            cls_cost = sigmoid_focal_loss(
                logits[cimg, cloc].float(), onehot, self.focal_loss_alpha, self.focal_loss_gamma
            ).sum(dim=1)
            candidates = PointSetCandidates(
                image=cimg,
                gt_index=cgt,
                level=level[cloc],
                gt_boxes=cboxes,
                init_points=init[cimg, cloc],
                refine_points=refine[cimg, cloc],
                cls_cost=cls_cost,
                image_gt_boxes=gt_boxes,
            )
            if getattr(self.refine_selection, "needs_point_features", False):
                candidates.point_features = self.point_features(feats, refine, level, cimg, cloc)
            weights = self.refine_selection(candidates)
        if self.shape_measurement is not None:
            weights = weights * self.shape_measurement(init[cimg, cloc].mean(dim=1), cboxes)
        return weights

    def point_features(
        self,
        feats: list[torch.Tensor],
        refine: torch.Tensor,
        level: torch.Tensor,
        cimg: torch.Tensor,
        cloc: torch.Tensor,
    ) -> torch.Tensor:
        """``[F, 9, C]`` the features of the candidates' levels bilinearly sampled at their
        refined points (``refine`` ``[N, L, 9, 2]`` pixels; zero outside the map)."""
        num_points = refine.shape[2]
        out = refine.new_zeros((cimg.shape[0], num_points, feats[0].shape[1]))
        for lvl, (feat, stride) in enumerate(zip(feats, self.point_generator.strides)):
            in_level = (level[cloc] == lvl).nonzero()[:, 0]
            if in_level.numel() == 0:
                continue
            height, width = feat.shape[-2:]
            pts = refine[cimg[in_level], cloc[in_level]]  # [M, 9, 2]
            size = pts.new_tensor([width * stride, height * stride])
            grid = 2 * pts / size - 1  # pixel centres at (j + 0.5) * stride
            sampled = F.grid_sample(
                feat[cimg[in_level]].float(), grid[:, None], align_corners=False
            )  # [M, C, 1, 9]
            out[in_level] = sampled[:, :, 0].transpose(1, 2)
        return out

    @torch.no_grad()
    def inference(
        self,
        pred_logits: list[torch.Tensor],
        refine_points: list[torch.Tensor],
        image_sizes: list[tuple[int, int]],
    ) -> list[Instances]:
        """Per image: per level the best ``test_topk_candidates`` (location, class) pairs above
        the score threshold, each box the minimum-area rectangle of the location's refined
        points, then per-class rotated NMS and the top detections (:func:`detect_image`)."""
        results = []
        for i, size in enumerate(image_sizes):

            def decode_level(level, locations, classes, scores, i=i):
                return points_to_rbox(refine_points[level][i][locations].float()), scores

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


def _gather_boxes(
    gt_boxes: list[torch.Tensor], img: torch.Tensor, gt_idx: torch.Tensor, like: torch.Tensor
) -> torch.Tensor:
    """``[F, 5]`` the boxes ``gt_boxes[img[f]][gt_idx[f]]``."""
    if img.numel() == 0:
        return like.new_zeros((0, 5))
    offsets = torch.tensor([0] + [b.shape[0] for b in gt_boxes[:-1]], device=img.device)
    return torch.cat(gt_boxes)[torch.cumsum(offsets, 0)[img] + gt_idx]


def _gather_classes(
    gt_classes: list[torch.Tensor], img: torch.Tensor, gt_idx: torch.Tensor
) -> torch.Tensor:
    """``[F]`` the classes ``gt_classes[img[f]][gt_idx[f]]``."""
    if img.numel() == 0:
        return gt_idx.new_zeros(0)
    offsets = torch.tensor([0] + [c.shape[0] for c in gt_classes[:-1]], device=img.device)
    return torch.cat(gt_classes)[torch.cumsum(offsets, 0)[img] + gt_idx]

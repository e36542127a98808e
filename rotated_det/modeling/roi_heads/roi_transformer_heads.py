"""RoITransformerROIHeads: the RoI heads of RoI Transformer (Ding et al., CVPR 2019)."""

from typing import cast

import torch

from rotated_det.structures import ImageList, Instances, RotatedBoxes

from ..proposal_generator.proposal_utils import GT_PROPOSAL_LOGIT
from .rotated_fast_rcnn import RotatedRoIPredictor
from .rotated_roi_heads import RROIHeads

__all__ = ["RoITransformerROIHeads"]


class RoITransformerROIHeads(RROIHeads):
    """A two-stage cascade: the RRoI learner turns horizontal RoIs into rotated RoIs, which the
    rotated stage (these RROIHeads) pools with ROIAlignRotated, classifies and refines.

    The RRoI learner is an RROIHeads on axis-aligned RoIs (``match_bounding_boxes=True``; the
    RPN's angle-0 proposals pooled by ROIAlignRotated are axis-aligned RoIAlign features) whose
    predictor is a RotatedRoIPredictor with class-agnostic regression of horizontal-to-rotated
    deltas, with its own coder (MMRotate's ``DeltaXYWHAHBBoxCoder``: a Box2BoxTransformRotated
    with an angle version reads a horizontal box taller than wide as the box turned by -90
    degrees). As in MMRotate's RoITransRoIHead:

    - training: the learner samples and learns on the RPN proposals; its decoded (detached)
      boxes of the sampled RoIs, less the ground-truth boxes it appended, become the rotated
      stage's proposals, to which that stage appends the rotated ground truth and samples again;
      each stage's losses are multiplied by its ``stage_loss_weights`` entry;
    - inference: every proposal goes through both stages, and the class logits of the two
      stages are averaged before the softmax of the final detections.

    Args:
        rroi_learner: the first stage (an RROIHeads whose predictor is a class-agnostic
            RotatedRoIPredictor).
        stage_loss_weights: ``(learner, rotated stage)`` loss multipliers (MMRotate: (1, 1)).
        **kwargs: the rotated stage's RROIHeads arguments.

    Losses: the learner's as ``loss_rroi_cls`` and ``loss_rroi_box_reg``, the rotated stage's as
    ``loss_cls`` and ``loss_box_reg``.
    """

    def __init__(
        self,
        *,
        rroi_learner: RROIHeads,
        stage_loss_weights: tuple[float, float] | list[float] = (1.0, 1.0),
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        predictor = rroi_learner.box_predictor
        if not isinstance(predictor, RotatedRoIPredictor) or predictor.bbox_pred.out_features != 5:
            raise ValueError(
                "RoITransformerROIHeads: rroi_learner.box_predictor must be a RotatedRoIPredictor "
                "with cls_agnostic_bbox_reg=True (one rotated box per RoI)"
            )
        if rroi_learner.num_classes != self.num_classes:
            raise ValueError(
                f"RoITransformerROIHeads: num_classes={self.num_classes} but "
                f"rroi_learner.num_classes={rroi_learner.num_classes}; they must agree"
            )
        if len(stage_loss_weights) != 2:
            raise ValueError(
                "RoITransformerROIHeads: stage_loss_weights must have 2 entries (RRoI learner, "
                f"rotated stage), got {stage_loss_weights}"
            )
        self.rroi_learner = rroi_learner
        self.stage_loss_weights = tuple(float(w) for w in stage_loss_weights)

    @property
    def _learner_predictor(self) -> RotatedRoIPredictor:
        return cast(RotatedRoIPredictor, self.rroi_learner.box_predictor)

    def _learner_predictions(
        self, features: dict[str, torch.Tensor], proposals: list[Instances]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        learner = self.rroi_learner
        feats = [features[f] for f in learner.box_in_features]
        box_features = learner.box_pooler(feats, [p.proposal_boxes for p in proposals])
        return self._learner_predictor(learner.box_head(box_features))

    def _rotated_rois(
        self, predictions: tuple[torch.Tensor, torch.Tensor], proposals: list[Instances]
    ) -> list[Instances]:
        """The learner's decoded boxes as proposals (``proposal_boxes``), per image."""
        boxes = self._learner_predictor.predict_boxes(predictions, proposals)
        out = []
        for props, b in zip(proposals, boxes):
            rois = Instances(props.image_size)
            rois.proposal_boxes = RotatedBoxes(b.detach())
            out.append(rois)
        return out

    def forward(
        self,
        images: ImageList,
        features: dict[str, torch.Tensor],
        proposals: list[Instances],
        targets: list[Instances] | None = None,
    ) -> tuple[list[Instances], dict[str, torch.Tensor]]:
        """
        Args:
            images: the batch (unused; kept for Detectron2's signature).
            features: feature maps by name.
            proposals: per image, with ``proposal_boxes`` (angle-0 RotatedBoxes).
            targets: per image ground truth (``gt_boxes``, ``gt_classes``); training only.

        Returns:
            (per image detections, {}) at inference; ([], losses) in training.
        """
        del images
        if not self.training:
            return self._inference(features, proposals), {}
        if targets is None:
            raise ValueError("RoITransformerROIHeads needs targets in training mode")
        learner_rois = self.rroi_learner.label_and_sample_proposals(proposals, targets)
        learner_predictions = self._learner_predictions(features, learner_rois)
        learner_losses = self._learner_predictor.losses(learner_predictions, learner_rois)
        rotated = self._rotated_rois(learner_predictions, learner_rois)
        # the learner's appended ground truth is dropped: the rotated stage appends the rotated
        # ground truth itself
        rotated = [r[~_is_appended_gt(p)] for r, p in zip(rotated, learner_rois)]
        rois = self.label_and_sample_proposals(_with_objectness(rotated), targets)
        feats = [features[f] for f in self.box_in_features]
        box_features = self.box_head(self.box_pooler(feats, [p.proposal_boxes for p in rois]))
        losses = self.box_predictor.losses(self.box_predictor(box_features), rois)
        w_learner, w_rotated = self.stage_loss_weights
        out = {f"loss_rroi_{k[len('loss_') :]}": v * w_learner for k, v in learner_losses.items()}
        out.update({k: v * w_rotated for k, v in losses.items()})
        return [], out

    def _inference(
        self, features: dict[str, torch.Tensor], proposals: list[Instances]
    ) -> list[Instances]:
        learner_scores, learner_deltas = self._learner_predictions(features, proposals)
        rois = self._rotated_rois((learner_scores, learner_deltas), proposals)
        feats = [features[f] for f in self.box_in_features]
        box_features = self.box_head(self.box_pooler(feats, [p.proposal_boxes for p in rois]))
        scores, deltas = self.box_predictor(box_features)
        mean_scores = 0.5 * (scores + learner_scores)
        instances, _ = self.box_predictor.inference((mean_scores, deltas), rois)
        return instances


def _is_appended_gt(proposals: Instances) -> torch.Tensor:
    """``[R]`` bool: the rows that ``add_ground_truth_to_proposals`` appended (their objectness
    logit is its constant)."""
    return proposals.objectness_logits == GT_PROPOSAL_LOGIT


def _with_objectness(rois: list[Instances]) -> list[Instances]:
    """Give each RoI an objectness logit of 0 (``add_ground_truth_to_proposals`` needs one)."""
    for r in rois:
        r.objectness_logits = torch.zeros(
            len(r.proposal_boxes), device=r.proposal_boxes.tensor.device
        )
    return rois

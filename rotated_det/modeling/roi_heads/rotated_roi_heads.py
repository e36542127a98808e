"""RROIHeads: the second stage of rotated two-stage detectors."""

from typing import Any, Protocol

import torch
from torch import nn

from rotated_det.structures import ImageList, Instances, RotatedBoxes, hbox_to_rbox, rbox_to_hbox

from ..matcher import Matcher
from ..poolers import ROIPooler
from ..proposal_generator.proposal_utils import add_ground_truth_to_proposals
from ..sampling import subsample_labels

__all__ = ["RROIHeads", "RoIBoxPredictor"]


class RoIBoxPredictor(Protocol):
    """What RROIHeads calls on its box predictor (RotatedFastRCNNOutputLayers,
    GlidingVertexOutputLayers)."""

    num_classes: int

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def losses(self, predictions: Any, proposals: list[Instances]) -> dict[str, torch.Tensor]: ...

    def inference(
        self, predictions: Any, proposals: list[Instances]
    ) -> tuple[list[Instances], list[torch.Tensor]]: ...


class RROIHeads(nn.Module):
    """Pool rotated RoIs (ROIAlignRotated), run the box head and the box predictor.

    Args:
        num_classes: K foreground classes.
        box_in_features: feature maps used by the pooler (e.g. ["p2", "p3", "p4", "p5"]).
        box_pooler: ROIPooler with pooler_type "ROIAlignRotated".
        box_head: per-RoI feature extractor (e.g. FastRCNNConvFCHead).
        box_predictor: RotatedFastRCNNOutputLayers (or any module with its ``losses`` and
            ``inference``: GlidingVertexOutputLayers; a RotatedRoIPredictor, without
            ``inference``, in a cascade stage that another head drives).
        proposal_matcher: Matcher labelling proposals by rotated IoU with the ground truth.
        batch_size_per_image: RoIs sampled per image in training.
        positive_fraction: maximum foreground share of the sampled RoIs.
        proposal_append_gt: add the ground-truth boxes to the proposals in training.
        match_bounding_boxes: match proposals to the axis-aligned bounding boxes of the ground
            truth by horizontal IoU (and append those bounding boxes, as angle-0 boxes, with
            ``proposal_append_gt``), for heads that start from horizontal proposals (Gliding
            Vertex, RoI Transformer's RRoI learner; MMRotate's ``BboxOverlaps2D`` after
            ``obb2xyxy``). The regression targets stay the rotated ground truth.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        box_in_features: list[str],
        box_pooler: ROIPooler,
        box_head: nn.Module,
        box_predictor: RoIBoxPredictor,
        proposal_matcher: Matcher,
        batch_size_per_image: int = 512,
        positive_fraction: float = 0.25,
        proposal_append_gt: bool = True,
        match_bounding_boxes: bool = False,
    ) -> None:
        super().__init__()
        if getattr(box_pooler, "box_dim", 5) != 5:
            raise ValueError("RROIHeads needs a ROIPooler with pooler_type='ROIAlignRotated'")
        if getattr(box_predictor, "num_classes", num_classes) != num_classes:
            raise ValueError(
                f"RROIHeads: num_classes={num_classes} but box_predictor.num_classes="
                f"{box_predictor.num_classes}; they must agree"
            )
        self.num_classes = num_classes
        self.box_in_features = list(box_in_features)
        self.box_pooler = box_pooler
        self.box_head = box_head
        self.box_predictor = box_predictor
        self.proposal_matcher = proposal_matcher
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.proposal_append_gt = proposal_append_gt
        self.match_bounding_boxes = match_bounding_boxes

    @torch.no_grad()
    def label_and_sample_proposals(
        self, proposals: list[Instances], targets: list[Instances]
    ) -> list[Instances]:
        """Match proposals to the ground truth and sample ``batch_size_per_image`` of them.

        Returns per image the sampled proposals with ``gt_classes`` (``num_classes`` for
        background) and ``gt_boxes`` (RotatedBoxes; zeros for background).
        """
        if self.proposal_append_gt:
            gt_proposals = [t.gt_boxes for t in targets]
            if self.match_bounding_boxes:
                gt_proposals = [
                    RotatedBoxes(hbox_to_rbox(rbox_to_hbox(b.tensor))) for b in gt_proposals
                ]
            proposals = add_ground_truth_to_proposals(gt_proposals, proposals)
        sampled = []
        for props, tgt in zip(proposals, targets):
            boxes = props.proposal_boxes.tensor
            gt_boxes = tgt.gt_boxes.tensor.to(boxes.device)
            if self.match_bounding_boxes:
                matched_idxs, match_labels = self.proposal_matcher.match_boxes(
                    rbox_to_hbox(gt_boxes), rbox_to_hbox(boxes)
                )
            else:
                matched_idxs, match_labels = self.proposal_matcher.match_boxes(gt_boxes, boxes)
            if gt_boxes.shape[0] > 0:
                gt_classes = tgt.gt_classes.to(boxes.device)[matched_idxs]
                gt_classes = torch.where(
                    match_labels == 0, torch.full_like(gt_classes, self.num_classes), gt_classes
                )
                gt_classes = torch.where(
                    match_labels == -1, torch.full_like(gt_classes, -1), gt_classes
                )
            else:
                gt_classes = torch.full_like(matched_idxs, self.num_classes)
            fg, bg = subsample_labels(
                gt_classes, self.batch_size_per_image, self.positive_fraction, self.num_classes
            )
            idx = torch.cat([fg, bg])
            out = props[idx]
            out.gt_classes = gt_classes[idx]
            if gt_boxes.shape[0] > 0:
                out.gt_boxes = RotatedBoxes(gt_boxes[matched_idxs[idx]])
            else:
                out.gt_boxes = RotatedBoxes(boxes.new_zeros((len(idx), 5)))
            sampled.append(out)
        return sampled

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
            proposals: per image, with ``proposal_boxes`` (RotatedBoxes).
            targets: per image ground truth (``gt_boxes``, ``gt_classes``); training only.

        Returns:
            (per image detections, {}) at inference; ([], losses) in training.
        """
        del images
        if self.training:
            if targets is None:
                raise ValueError("RROIHeads needs targets in training mode")
            proposals = self.label_and_sample_proposals(proposals, targets)
        feats = [features[f] for f in self.box_in_features]
        box_features = self.box_pooler(feats, [p.proposal_boxes for p in proposals])
        box_features = self.box_head(box_features)
        predictions = self.box_predictor(box_features)
        if self.training:
            return [], self.box_predictor.losses(predictions, proposals)
        instances, _ = self.box_predictor.inference(predictions, proposals)
        return instances, {}

"""R3Det (Yang et al., AAAI 2021): a refined single-stage rotated detector.

A Rotated RetinaNet first stage predicts, from rotated anchors, class scores and box deltas. At
each location the anchor of highest class score is decoded into one refined box; a feature
refinement module (:class:`FeatureRefineModule`) re-samples every FPN level at the centre and
corners of its locations' boxes; a refinement head (a RetinaNet head with one "anchor" per
location, the refined box) then predicts class scores and deltas from the refined boxes. Each
refinement stage has its own IoU matcher (MMRotate: 0.5 / 0.6 instead of 0.4 / 0.5, the boxes
being closer to the objects) and its own loss normaliser; the boxes are passed on detached.
Detections come from the last stage.

The first stage may match its anchors against each object's enclosing horizontal box
(``assign_by_circumhbbox``) while regressing the rotated box, as MMRotate 0.x's R3Det configs do
(their first head keeps RotatedAnchorHead's default ``assign_by_circumhbbox='oc'``; S2A-Net's
sets it to None). Against the rotated box itself, horizontal anchors meet a thin object at 45
degrees poorly: a 35 x 15 px object at -50 degrees has IoU 0.46 with its best anchor and 0.43
with a neighbouring location's, which then falls in the first stage's ignore band (0.4-0.5): its
box is never regressed, decodes to IoU 0.53 with the object, falls in the refinement stage's
ignore band (0.5-0.6) too, and is still scored like its positive neighbour, which the NMS then
removes. Against the enclosing box that neighbour has IoU 0.67: foreground.
"""

import torch
from torch import nn

from rotated_det.structures import Instances, hbox_to_rbox, rbox_to_hbox

from ..dense_heads.feature_refine import FeatureRefineModule
from ..dense_heads.retinanet_head import RotatedRetinaNetHead
from ..losses.box_regression_loss import box_regression_loss
from ..matcher import Matcher
from .dense_detection import (
    flatten_levels,
    focal_loss_sum,
    labels_from_matches,
    moving_loss_normalizer,
)
from .preprocessing import gt_instances, postprocess_batch
from .retinanet import RotatedRetinaNet

__all__ = ["R3Det"]


class R3Det(RotatedRetinaNet):
    """R3Det: Rotated RetinaNet followed by feature-refinement stages.

    Args:
        refine_modules: one FeatureRefineModule per refinement stage (strides equal to the
            anchor generator's).
        refine_heads: one RotatedRetinaNetHead per stage with ``num_anchors=1`` and
            ``box_dim=5`` (no angle branch), same ``num_classes``.
        refine_matchers: one Matcher per stage, matching the stage's input boxes to the ground
            truth by rotated IoU.
        stage_loss_weights: one weight per stage, multiplying its losses.
        assign_by_circumhbbox: the first stage matches its anchors (with ``anchor_matcher``, a
            Matcher) against each ground truth's enclosing horizontal box instead of the rotated
            box; the regression targets stay the rotated boxes. The refinement stages always
            match by rotated IoU.
        **kwargs: the arguments of :class:`RotatedRetinaNet` (first stage, box coder and losses
            shared by every stage, test settings applied to the last stage), without
            ``angle_coder``: every stage regresses the angle as the fifth delta.

    Losses: the first stage's ``loss_cls`` and ``loss_box_reg``, and ``loss_refine{i}_cls``,
    ``loss_refine{i}_box_reg`` for stage i. Inputs and outputs: as GeneralizedRCNN.
    """

    def __init__(
        self,
        *,
        refine_modules: list[FeatureRefineModule],
        refine_heads: list[RotatedRetinaNetHead],
        refine_matchers: list[Matcher],
        stage_loss_weights: list[float],
        assign_by_circumhbbox: bool = False,
        **kwargs,
    ) -> None:
        if kwargs.get("angle_coder") is not None:
            raise ValueError(
                "R3Det: angle_coder is not supported (every stage regresses the angle as the "
                "fifth delta); leave model.angle_coder unset"
            )
        super().__init__(**kwargs)
        if assign_by_circumhbbox and not isinstance(self.anchor_matcher, Matcher):
            raise ValueError(
                "R3Det: assign_by_circumhbbox=True needs anchor_matcher to be a Matcher, got "
                f"{type(self.anchor_matcher).__name__}"
            )
        self.assign_by_circumhbbox = assign_by_circumhbbox
        num_stages = len(refine_heads)
        if num_stages == 0 or not (
            len(refine_modules) == len(refine_matchers) == len(stage_loss_weights) == num_stages
        ):
            raise ValueError(
                "R3Det: refine_modules, refine_heads, refine_matchers and stage_loss_weights "
                "need one entry per refinement stage (at least one), got "
                f"{len(refine_modules)}, {num_stages}, {len(refine_matchers)} and "
                f"{len(stage_loss_weights)}"
            )
        strides = list(self.anchor_generator.strides)
        for i, (frm, head) in enumerate(zip(refine_modules, refine_heads)):
            if head.num_classes != self.num_classes:
                raise ValueError(
                    f"R3Det: refine_heads[{i}].num_classes={head.num_classes} but "
                    f"num_classes={self.num_classes}"
                )
            if head.box_dim != 5 or head.bbox_pred.out_channels != 5:
                raise ValueError(
                    f"R3Det: refine_heads[{i}] must predict one box (num_anchors=1, box_dim=5, "
                    f"no angle branch), got {head.bbox_pred.out_channels} delta channels"
                )
            if list(frm.strides) != strides:
                raise ValueError(
                    f"R3Det: refine_modules[{i}].strides={frm.strides} differ from "
                    f"anchor_generator.strides={strides}"
                )
        self.refine_modules = nn.ModuleList(refine_modules)
        self.refine_heads = nn.ModuleList(refine_heads)
        self.refine_matchers = list(refine_matchers)
        self.stage_loss_weights = [float(w) for w in stage_loss_weights]
        self.refine_loss_normalizers = [self.loss_normalizer] * num_stages
        self._anchors_per_cell = self.head.bbox_pred.out_channels // self.head.box_dim

    def forward(self, batched_inputs: list[dict]):
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)
        feats = [features[f] for f in self.head_in_features]
        anchors = [a.tensor for a in self.anchor_generator(feats)]
        logits, deltas, _ = self.head(feats)
        pred_logits = [flatten_levels(x, self.num_classes) for x in logits]
        pred_deltas = [flatten_levels(x, 5) for x in deltas]
        no_angles = [x.new_zeros(x.shape[:2] + (0,)) for x in pred_deltas]
        losses: dict[str, torch.Tensor] = {}
        if self.training:
            gt = gt_instances(batched_inputs, self.device)
            gt_labels, gt_boxes = self.label_anchors(anchors, gt)
            losses.update(
                self.losses(
                    torch.cat(anchors), pred_logits, gt_labels, pred_deltas, no_angles, gt_boxes
                )
            )
        boxes = self.best_boxes(anchors, pred_logits, pred_deltas)
        for stage, (frm, head) in enumerate(zip(self.refine_modules, self.refine_heads)):
            logits, deltas, _ = head(frm(feats, boxes))
            pred_logits = [flatten_levels(x, self.num_classes) for x in logits]
            pred_deltas = [flatten_levels(x, 5) for x in deltas]
            if self.training:
                losses.update(self.refine_losses(stage, boxes, pred_logits, pred_deltas, gt))
            if stage + 1 < len(self.refine_heads):
                boxes = [self.refine_boxes(d, b) for d, b in zip(pred_deltas, boxes)]
        if self.training:
            return losses
        results = [
            # the last stage's boxes are its anchors: they differ from image to image
            self.inference(
                [b[i] for b in boxes],
                [x[i : i + 1] for x in pred_logits],
                [x[i : i + 1] for x in pred_deltas],
                [x[i : i + 1] for x in no_angles],
                [size],
            )[0]
            for i, size in enumerate(images.image_sizes)
        ]
        return postprocess_batch(results, batched_inputs)

    @torch.no_grad()
    def label_anchors(self, anchors: list[torch.Tensor], gt_instances: list[Instances]):
        """Per image: class label of each first-stage anchor (K background, -1 ignored) ``[A]``
        and its matched rotated ground-truth box ``[A, 5]``; with ``assign_by_circumhbbox`` the
        anchors are matched against the ground truths' enclosing horizontal boxes."""
        if not self.assign_by_circumhbbox:
            return super().label_anchors(anchors, gt_instances)
        matcher = self.anchor_matcher
        assert isinstance(matcher, Matcher)  # checked by the constructor
        all_anchors = torch.cat(anchors)
        labels_out, boxes_out = [], []
        for inst in gt_instances:
            enclosing = hbox_to_rbox(rbox_to_hbox(inst.gt_boxes.tensor))
            matched_idxs, match_labels = matcher.match_boxes(enclosing, all_anchors)
            labels, boxes = labels_from_matches(inst, matched_idxs, match_labels, self.num_classes)
            labels_out.append(labels)
            boxes_out.append(boxes)
        return labels_out, boxes_out

    @torch.no_grad()
    def best_boxes(
        self,
        anchors: list[torch.Tensor],
        pred_logits: list[torch.Tensor],
        pred_deltas: list[torch.Tensor],
    ) -> list[torch.Tensor]:
        """The first stage's refined box of every location: the anchor of highest class score
        (over its classes) among the location's anchors, decoded with its deltas.

        Args:
            anchors: per level ``[L_l * A, 5]`` (A anchors per location).
            pred_logits: per level ``[N, L_l * A, K]``.
            pred_deltas: per level ``[N, L_l * A, 5]``.

        Returns:
            per level ``[N, L_l, 5]`` boxes (detached).
        """
        a = self._anchors_per_cell
        out = []
        for anc, logit, delta in zip(anchors, pred_logits, pred_deltas):
            n = logit.shape[0]
            best = logit.reshape(n, -1, a, self.num_classes).amax(dim=3).argmax(dim=2)  # [N, L]
            index = best[:, :, None, None].expand(-1, -1, 1, 5)
            best_delta = delta.reshape(n, -1, a, 5).gather(2, index)
            best_anchor = anc.reshape(1, -1, a, 5).expand(n, -1, -1, -1).gather(2, index)
            decoded = self.box2box_transform.apply_deltas(
                best_delta.reshape(-1, 5), best_anchor.reshape(-1, 5)
            )
            out.append(decoded.view(n, -1, 5).detach())
        return out

    @torch.no_grad()
    def refine_boxes(self, deltas: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """A stage's output boxes of one level: ``deltas`` applied to its input ``boxes``, both
        ``[N, L, 5]`` -> ``[N, L, 5]`` (detached)."""
        decoded = self.box2box_transform.apply_deltas(deltas.reshape(-1, 5), boxes.reshape(-1, 5))
        return decoded.view(boxes.shape).detach()

    @torch.no_grad()
    def label_boxes(
        self, matcher: Matcher, boxes: torch.Tensor, gt: Instances
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One image's class label of each box (K background, -1 ignored) ``[P]`` and its matched
        ground-truth box ``[P, 5]``; ``boxes`` ``[P, 5]``."""
        matched_idxs, match_labels = matcher.match_boxes(gt.gt_boxes.tensor, boxes)
        return labels_from_matches(gt, matched_idxs, match_labels, self.num_classes)

    def refine_losses(
        self,
        stage: int,
        boxes: list[torch.Tensor],
        pred_logits: list[torch.Tensor],
        pred_deltas: list[torch.Tensor],
        gt: list[Instances],
    ) -> dict[str, torch.Tensor]:
        """Focal loss over non-ignored locations and box regression over foreground ones of
        refinement stage ``stage``, from its input ``boxes`` (per level ``[N, L_l, 5]``), each
        divided by the stage's moving average of the foreground count and weighted by its
        ``stage_loss_weights`` entry."""
        src = torch.cat(boxes, dim=1)  # [N, L, 5]
        labelled = [
            self.label_boxes(self.refine_matchers[stage], src[i], inst) for i, inst in enumerate(gt)
        ]
        labels = torch.stack([x[0] for x in labelled])  # [N, L]
        matched = torch.stack([x[1] for x in labelled])  # [N, L, 5]
        pos = (labels >= 0) & (labels != self.num_classes)
        normalizer = moving_loss_normalizer(
            self.refine_loss_normalizers[stage],
            int(pos.sum().item()),
            self.loss_normalizer_momentum,
        )
        self.refine_loss_normalizers[stage] = normalizer
        loss_cls = focal_loss_sum(
            torch.cat(pred_logits, dim=1), labels, self.focal_loss_alpha, self.focal_loss_gamma
        )
        img, loc = pos.nonzero(as_tuple=True)
        loss_box = box_regression_loss(
            self.box_reg_loss_type,
            self.box2box_transform,
            torch.cat(pred_deltas, dim=1)[img, loc],
            src[img, loc],
            matched[img, loc],
            self.smooth_l1_beta,
        )
        weight = self.stage_loss_weights[stage] / normalizer
        return {
            f"loss_refine{stage}_cls": weight * loss_cls,
            f"loss_refine{stage}_box_reg": weight * self.box_reg_loss_weight * loss_box,
        }

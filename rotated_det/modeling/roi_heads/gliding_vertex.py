"""Box predictor of Gliding Vertex (Xu et al., TPAMI 2020): classification, bounding-box deltas,
vertex glides and obliquity from the features of horizontal RoIs."""

import torch
from torch import nn
from torch.nn import functional as F

from rotated_det.layers.shape_spec import ShapeSpec
from rotated_det.structures import Instances, rbox_to_hbox

from ..box_coders.gliding_vertex import GlidingVertexCoder
from ..losses.smooth_l1_loss import smooth_l1_loss
from .rotated_fast_rcnn import _split_per_image, fast_rcnn_inference_rotated

__all__ = ["GlidingVertexOutputLayers"]

_LOSS_NAMES = ("loss_cls", "loss_box_reg", "loss_glide", "loss_obliquity")


class GlidingVertexOutputLayers(nn.Module):
    """Per RoI: class scores, and one (class-agnostic) set of 9 coder values: 4 bounding-box
    deltas, 4 glides and the obliquity (those 5 through a sigmoid), decoded to rotated boxes by
    a GlidingVertexCoder.

    Args:
        input_shape: the box head's output shape (channels, or channels x h x w).
        box2box_transform: GlidingVertexCoder.
        num_classes: K foreground classes (the background is class K).
        test_score_thresh, test_nms_thresh, test_topk_per_image: inference, see
            ``fast_rcnn_inference_rotated``.
        smooth_l1_beta: ``{"loss_box_reg": ..., "loss_glide": ..., "loss_obliquity": ...}``
            betas of the smooth L1 losses (MMRotate: 1, 1/3, 1/3).
        loss_weight: a float (all terms) or a dict by loss name (MMRotate: the obliquity 16,
            the others 1).

    ``forward`` maps ``[R, ...]`` features to scores ``[R, K + 1]`` and coder values ``[R, 9]``.
    Losses: cross-entropy over the sampled RoIs (mean), and the summed smooth L1 losses of the
    foreground RoIs' values divided by the number of sampled RoIs.
    """

    def __init__(
        self,
        input_shape: ShapeSpec | int,
        *,
        box2box_transform: GlidingVertexCoder,
        num_classes: int,
        test_score_thresh: float = 0.05,
        test_nms_thresh: float = 0.1,
        test_topk_per_image: int = 2000,
        smooth_l1_beta: dict[str, float] | None = None,
        loss_weight: float | dict[str, float] = 1.0,
    ) -> None:
        super().__init__()
        if isinstance(input_shape, int):
            input_shape = ShapeSpec(channels=input_shape)
        if input_shape.channels is None:
            raise ValueError(
                "GlidingVertexOutputLayers: input_shape must give the box head's output "
                f"channels, got {input_shape}"
            )
        if num_classes < 1:
            raise ValueError(
                f"GlidingVertexOutputLayers: num_classes must be >= 1, got {num_classes}"
            )
        if not isinstance(box2box_transform, GlidingVertexCoder):
            raise TypeError(
                "GlidingVertexOutputLayers: box2box_transform must be a GlidingVertexCoder, got "
                f"{type(box2box_transform).__name__}"
            )
        in_dim = input_shape.channels * (input_shape.height or 1) * (input_shape.width or 1)
        self.num_classes = num_classes
        self.cls_score = nn.Linear(in_dim, num_classes + 1)
        self.bbox_pred = nn.Linear(in_dim, 4)
        self.glide_pred = nn.Linear(in_dim, 4)
        self.obliquity_pred = nn.Linear(in_dim, 1)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        for layer in (self.glide_pred, self.obliquity_pred):
            nn.init.normal_(layer.weight, std=0.001)
        for layer in (self.cls_score, self.bbox_pred, self.glide_pred, self.obliquity_pred):
            nn.init.zeros_(layer.bias)
        self.box2box_transform = box2box_transform
        self.test_score_thresh = test_score_thresh
        self.test_nms_thresh = test_nms_thresh
        self.test_topk_per_image = test_topk_per_image
        betas = {"loss_box_reg": 1.0, "loss_glide": 1.0 / 3, "loss_obliquity": 1.0 / 3}
        unknown = set(smooth_l1_beta or {}) - set(betas)
        if unknown:
            raise ValueError(
                f"GlidingVertexOutputLayers: smooth_l1_beta keys must be among {sorted(betas)}, "
                f"got {sorted(unknown)}"
            )
        betas.update(smooth_l1_beta or {})
        self.smooth_l1_beta = betas
        if isinstance(loss_weight, (int, float)):
            loss_weight = {name: float(loss_weight) for name in _LOSS_NAMES}
        unknown = set(loss_weight) - set(_LOSS_NAMES)
        if unknown:
            raise ValueError(
                f"GlidingVertexOutputLayers: loss_weight keys must be among {_LOSS_NAMES}, got "
                f"{sorted(unknown)}"
            )
        self.loss_weight = dict(loss_weight)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.flatten(x, start_dim=1)
        values = torch.cat(
            [
                self.bbox_pred(x),
                torch.sigmoid(self.glide_pred(x)),
                torch.sigmoid(self.obliquity_pred(x)),
            ],
            dim=1,
        )
        return self.cls_score(x), values

    def losses(self, predictions, proposals: list[Instances]) -> dict[str, torch.Tensor]:
        """
        Args:
            predictions: ``(scores [R, K + 1], values [R, 9])`` for the concatenated RoIs.
            proposals: per image, with ``proposal_boxes`` (angle-0 RotatedBoxes), ``gt_classes``
                (K for background) and ``gt_boxes`` (rotated).
        """
        scores, values = predictions
        gt_classes = torch.cat([p.gt_classes for p in proposals])
        num_rois = gt_classes.numel()
        if num_rois == 0:
            zero = scores.sum() * 0.0 + values.sum() * 0.0
            return {name: zero for name in _LOSS_NAMES}
        losses = {"loss_cls": F.cross_entropy(scores, gt_classes, reduction="mean")}
        fg = torch.nonzero((gt_classes >= 0) & (gt_classes < self.num_classes), as_tuple=True)[0]
        proposal_boxes = torch.cat([p.proposal_boxes.tensor for p in proposals])[fg]
        gt_boxes = torch.cat([p.gt_boxes.tensor for p in proposals])[fg]
        target = self.box2box_transform.get_deltas(rbox_to_hbox(proposal_boxes), gt_boxes)
        pred = values[fg].float()  # float32 losses also under autocast
        for name, cols in (
            ("loss_box_reg", slice(0, 4)),
            ("loss_glide", slice(4, 8)),
            ("loss_obliquity", slice(8, 9)),
        ):
            loss = smooth_l1_loss(
                pred[:, cols],
                target[:, cols],
                self.smooth_l1_beta[name],
                reduction="sum",
            )
            losses[name] = loss / num_rois
        return {k: v * self.loss_weight.get(k, 1.0) for k, v in losses.items()}

    def predict_boxes(self, predictions, proposals: list[Instances]) -> list[torch.Tensor]:
        """Decoded rotated boxes per image: ``[R_i, 5]``."""
        _, values = predictions
        if not proposals:
            return []
        boxes = torch.cat([p.proposal_boxes.tensor for p in proposals])
        decoded = self.box2box_transform.apply_deltas(values, rbox_to_hbox(boxes))
        return _split_per_image(decoded, proposals)

    def predict_probs(self, predictions, proposals: list[Instances]) -> list[torch.Tensor]:
        """Softmax class probabilities per image: ``[R_i, K + 1]``, float32."""
        scores, _ = predictions
        return _split_per_image(F.softmax(scores.float(), dim=-1), proposals)

    def inference(self, predictions, proposals: list[Instances]):
        """Detections per image (see ``fast_rcnn_inference_rotated``)."""
        return fast_rcnn_inference_rotated(
            self.predict_boxes(predictions, proposals),
            self.predict_probs(predictions, proposals),
            [p.image_size for p in proposals],
            self.test_score_thresh,
            self.test_nms_thresh,
            self.test_topk_per_image,
        )

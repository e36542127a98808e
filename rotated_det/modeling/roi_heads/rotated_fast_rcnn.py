"""Box predictor of the rotated RoI head and its inference (score threshold, per-class NMS)."""

import torch
from torch import nn
from torch.nn import functional as F

from rotated_det.layers import batched_nms_rotated
from rotated_det.layers.shape_spec import ShapeSpec
from rotated_det.structures import Instances, RotatedBoxes

from ..box_regression import Box2BoxTransformRotated
from ..losses.box_regression_loss import box_regression_loss, check_box_reg_loss_type

__all__ = ["RotatedFastRCNNOutputLayers", "RotatedRoIPredictor", "fast_rcnn_inference_rotated"]


def fast_rcnn_inference_rotated(
    boxes: list[torch.Tensor],
    scores: list[torch.Tensor],
    image_shapes: list[tuple[int, int]],
    score_thresh: float,
    nms_thresh: float,
    topk_per_image: int,
) -> tuple[list[Instances], list[torch.Tensor]]:
    """Per image: threshold scores, per-class rotated NMS, keep the ``topk_per_image`` best.

    Args:
        boxes: per image ``[R, K * 5]`` (class-specific) or ``[R, 5]`` boxes.
        scores: per image ``[R, K + 1]`` class probabilities (last column: background).
        image_shapes: ``(h, w)`` per image; boxes are clipped to it.
        score_thresh: keep (box, class) pairs with probability above this.
        nms_thresh: rotated-IoU threshold, applied per class.
        topk_per_image: maximum detections per image (< 0: no limit).

    Returns:
        per image Instances (``pred_boxes`` RotatedBoxes, ``scores``, ``pred_classes``) sorted by
        decreasing score, and per image the index of the source RoI of each detection.
    """
    results, kept = [], []
    for b, s, shape in zip(boxes, scores, image_shapes):
        valid = torch.isfinite(b).all(dim=1) & torch.isfinite(s).all(dim=1)
        # indexed unconditionally: a Python branch on the mask would freeze into a trace
        b, s = b[valid], s[valid]
        roi_index = torch.nonzero(valid, as_tuple=True)[0]
        s = s[:, :-1]
        num_classes = s.shape[1]
        num_rois = b.shape[0]
        boxes_per_roi = b.shape[1] // 5
        rb = RotatedBoxes(b.reshape(-1, 5))
        rb.clip(shape)
        b = rb.tensor.reshape(num_rois, boxes_per_roi, 5)
        mask = s > score_thresh
        r, k = torch.nonzero(mask, as_tuple=True)
        sel_boxes = b[r, k] if b.shape[1] == num_classes else b[r, 0]
        sel_scores = s[r, k]
        keep = batched_nms_rotated(sel_boxes, sel_scores, k, nms_thresh)
        if topk_per_image >= 0:
            keep = keep[:topk_per_image]
        res = Instances(shape)
        res.pred_boxes = RotatedBoxes(sel_boxes[keep])
        res.scores = sel_scores[keep]
        res.pred_classes = k[keep]
        results.append(res)
        kept.append(roi_index[r[keep]])
    return results, kept


def _split_per_image(x: torch.Tensor, proposals: list[Instances]) -> list[torch.Tensor]:
    """Split the rows of ``x`` by the number of proposals of each image. Counts are read from
    shapes (``len()`` must return a Python int, which freezes into a trace and cannot hold
    torch.export's data-dependent sizes); one image needs no split at all."""
    if len(proposals) == 1:
        return [x]
    return list(x.split([p.proposal_boxes.tensor.shape[0] for p in proposals]))


class RotatedRoIPredictor(nn.Module):
    """Classification and rotated box regression from per-RoI features, without inference
    settings: the predictor of a stage whose boxes become the next stage's RoIs (RoI
    Transformer's RRoI learner). RotatedFastRCNNOutputLayers adds the detection settings.

    Args:
        input_shape: the box head's output shape (channels, or channels x h x w).
        box2box_transform: Box2BoxTransformRotated (weights typically (10, 10, 5, 5, 1)).
        num_classes: K foreground classes (the background is class K).
        cls_agnostic_bbox_reg: one box for all classes instead of one per class.
        box_reg_loss_type: "smooth_l1", "l1", "kld" or "gwd".
        smooth_l1_beta: beta of the smooth L1 loss (0: L1).
        loss_weight: float or ``{"loss_cls": ..., "loss_box_reg": ...}``.

    ``forward`` maps ``[R, ...]`` features to scores ``[R, K + 1]`` and deltas ``[R, K * 5]``
    (``[R, 5]`` class-agnostic).
    """

    def __init__(
        self,
        input_shape: ShapeSpec | int,
        *,
        box2box_transform: Box2BoxTransformRotated,
        num_classes: int,
        cls_agnostic_bbox_reg: bool = False,
        box_reg_loss_type: str = "smooth_l1",
        smooth_l1_beta: float = 0.0,
        loss_weight: float | dict[str, float] = 1.0,
    ) -> None:
        super().__init__()
        if isinstance(input_shape, int):
            input_shape = ShapeSpec(channels=input_shape)
        if input_shape.channels is None:
            raise ValueError(
                f"{type(self).__name__}: input_shape must give the box head's output "
                f"channels, got {input_shape}"
            )
        if num_classes < 1:
            raise ValueError(f"{type(self).__name__}: num_classes must be >= 1, got {num_classes}")
        box_dim = len(box2box_transform.weights)
        if box_dim != 5:
            raise ValueError(
                f"{type(self).__name__} needs a rotated box coder with 5 weights, got "
                f"{box_dim}: {box2box_transform.weights}"
            )
        in_dim = input_shape.channels * (input_shape.height or 1) * (input_shape.width or 1)
        self.num_classes = num_classes
        self.cls_score = nn.Linear(in_dim, num_classes + 1)
        num_boxes = 1 if cls_agnostic_bbox_reg else num_classes
        self.bbox_pred = nn.Linear(in_dim, num_boxes * box_dim)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)
        self.box2box_transform = box2box_transform
        self.box_reg_loss_type = check_box_reg_loss_type(box_reg_loss_type, type(self).__name__)
        self.smooth_l1_beta = smooth_l1_beta
        if isinstance(loss_weight, (int, float)):
            loss_weight = {"loss_cls": loss_weight, "loss_box_reg": loss_weight}
        self.loss_weight = dict(loss_weight)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.flatten(x, start_dim=1)
        return self.cls_score(x), self.bbox_pred(x)

    def losses(self, predictions, proposals: list[Instances]) -> dict[str, torch.Tensor]:
        """
        Args:
            predictions: ``(scores [R, K + 1], deltas [R, K * 5])`` for the concatenated RoIs.
            proposals: per image, with ``proposal_boxes``, ``gt_classes`` (K for background) and
                ``gt_boxes``.

        Returns:
            ``loss_cls`` (mean cross-entropy) and ``loss_box_reg`` (summed over foreground,
            divided by the number of RoIs).
        """
        scores, deltas = predictions
        gt_classes = torch.cat([p.gt_classes for p in proposals])
        num_rois = gt_classes.numel()
        if num_rois == 0:
            zero = scores.sum() * 0.0 + deltas.sum() * 0.0
            return {"loss_cls": zero, "loss_box_reg": zero}
        loss_cls = F.cross_entropy(scores, gt_classes, reduction="mean")
        fg = torch.nonzero((gt_classes >= 0) & (gt_classes < self.num_classes), as_tuple=True)[0]
        proposal_boxes = torch.cat([p.proposal_boxes.tensor for p in proposals])
        gt_boxes = torch.cat([p.gt_boxes.tensor for p in proposals])
        if deltas.shape[1] == 5:
            fg_deltas = deltas[fg]
        else:
            fg_deltas = deltas.view(num_rois, -1, 5)[fg, gt_classes[fg]]
        loss_box = box_regression_loss(
            self.box_reg_loss_type,
            self.box2box_transform,
            fg_deltas,
            proposal_boxes[fg],
            gt_boxes[fg],
            self.smooth_l1_beta,
        ) / max(num_rois, 1)
        return {
            "loss_cls": loss_cls * self.loss_weight.get("loss_cls", 1.0),
            "loss_box_reg": loss_box * self.loss_weight.get("loss_box_reg", 1.0),
        }

    def predict_boxes(self, predictions, proposals: list[Instances]) -> list[torch.Tensor]:
        """Decoded boxes per image: ``[R_i, K * 5]`` (or ``[R_i, 5]``)."""
        _, deltas = predictions
        if not proposals:
            return []
        boxes = torch.cat([p.proposal_boxes.tensor for p in proposals])
        decoded = self.box2box_transform.apply_deltas(deltas, boxes)
        return _split_per_image(decoded, proposals)

    def predict_probs(self, predictions, proposals: list[Instances]) -> list[torch.Tensor]:
        """Softmax class probabilities per image: ``[R_i, K + 1]``, float32 (also under
        autocast: half-precision scores would tie and could not be converted to numpy)."""
        scores, _ = predictions
        return _split_per_image(F.softmax(scores.float(), dim=-1), proposals)


class RotatedFastRCNNOutputLayers(RotatedRoIPredictor):
    """Classification and rotated box regression from per-RoI features, and detections.

    Args:
        input_shape, box2box_transform, num_classes, cls_agnostic_bbox_reg, box_reg_loss_type,
            smooth_l1_beta, loss_weight: see RotatedRoIPredictor.
        test_score_thresh, test_nms_thresh, test_topk_per_image: inference, see
            ``fast_rcnn_inference_rotated``.
    """

    def __init__(
        self,
        input_shape: ShapeSpec | int,
        *,
        box2box_transform: Box2BoxTransformRotated,
        num_classes: int,
        test_score_thresh: float = 0.05,
        test_nms_thresh: float = 0.5,
        test_topk_per_image: int = 100,
        cls_agnostic_bbox_reg: bool = False,
        box_reg_loss_type: str = "smooth_l1",
        smooth_l1_beta: float = 0.0,
        loss_weight: float | dict[str, float] = 1.0,
    ) -> None:
        super().__init__(
            input_shape,
            box2box_transform=box2box_transform,
            num_classes=num_classes,
            cls_agnostic_bbox_reg=cls_agnostic_bbox_reg,
            box_reg_loss_type=box_reg_loss_type,
            smooth_l1_beta=smooth_l1_beta,
            loss_weight=loss_weight,
        )
        self.test_score_thresh = test_score_thresh
        self.test_nms_thresh = test_nms_thresh
        self.test_topk_per_image = test_topk_per_image

    def inference(self, predictions, proposals: list[Instances]):
        """Detections per image (see ``fast_rcnn_inference_rotated``)."""
        boxes = self.predict_boxes(predictions, proposals)
        scores = self.predict_probs(predictions, proposals)
        image_shapes = [p.image_size for p in proposals]
        return fast_rcnn_inference_rotated(
            boxes,
            scores,
            image_shapes,
            self.test_score_thresh,
            self.test_nms_thresh,
            self.test_topk_per_image,
        )

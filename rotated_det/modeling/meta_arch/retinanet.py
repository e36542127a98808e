"""Rotated RetinaNet: a one-stage detector with rotated anchors and focal loss."""

import math

import torch
from torch import nn
from torch.nn import functional as F

from rotated_det.layers import batched_nms_rotated
from rotated_det.layers.batch_norm import get_norm
from rotated_det.structures import Instances, RotatedBoxes

from ..anchor_generator import RotatedAnchorGenerator
from ..backbone.backbone import Backbone
from ..box_regression import Box2BoxTransformRotated
from ..losses.box_regression_loss import box_regression_loss, check_box_reg_loss_type
from ..losses.focal_loss import sigmoid_focal_loss
from ..matcher import Matcher
from ..shape_utils import min_size
from .preprocessing import DetectorBase, gt_instances, postprocess_batch

__all__ = ["RotatedRetinaNetHead", "RotatedRetinaNet"]


class RotatedRetinaNetHead(nn.Module):
    """Classification and box subnets shared across levels.

    Args:
        in_channels: channels of every input level.
        num_classes: K.
        num_anchors: anchors per cell A.
        conv_dims: channels of the 3x3 convs of each subnet (4 x 256 in the paper).
        norm: normalization after each conv ("" for none, "GN", ...).
        prior_prob: initial foreground probability of every anchor (sets the logit bias).
        box_dim: 5 for rotated deltas.

    Per level ``[N, C, H, W]`` -> logits ``[N, A * K, H, W]`` and deltas ``[N, A * 5, H, W]``.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        num_anchors: int,
        conv_dims: tuple[int, ...] | list[int] = (256, 256, 256, 256),
        norm: str = "",
        prior_prob: float = 0.01,
        box_dim: int = 5,
    ) -> None:
        super().__init__()
        cls_layers: list[nn.Module] = []
        box_layers: list[nn.Module] = []
        cur = in_channels
        for d in conv_dims:
            for layers in (cls_layers, box_layers):
                layers.append(nn.Conv2d(cur, d, 3, padding=1, bias=not norm))
                n = get_norm(norm, d)
                if n is not None:
                    layers.append(n)
                layers.append(nn.ReLU())
            cur = d
        self.cls_subnet = nn.Sequential(*cls_layers)
        self.bbox_subnet = nn.Sequential(*box_layers)
        self.cls_score = nn.Conv2d(cur, num_anchors * num_classes, 3, padding=1)
        self.bbox_pred = nn.Conv2d(cur, num_anchors * box_dim, 3, padding=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if self.cls_score.bias is not None:
            nn.init.constant_(self.cls_score.bias, -math.log((1 - prior_prob) / prior_prob))
        self.num_classes = num_classes
        self.box_dim = box_dim

    def forward(self, features: list[torch.Tensor]):
        logits, deltas = [], []
        for x in features:
            logits.append(self.cls_score(self.cls_subnet(x)))
            deltas.append(self.bbox_pred(self.bbox_subnet(x)))
        return logits, deltas


def _to_nhwa(x: torch.Tensor, k: int) -> torch.Tensor:
    """``[N, A * k, H, W]`` -> ``[N, H * W * A, k]`` (the anchor order)."""
    n, _, h, w = x.shape
    return x.view(n, -1, k, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, k)


class RotatedRetinaNet(DetectorBase):
    """Rotated RetinaNet.

    Args:
        backbone: Backbone (FPN P3-P7).
        head: RotatedRetinaNetHead.
        head_in_features: feature names fed to the head, e.g. ["p3", ..., "p7"].
        anchor_generator: RotatedAnchorGenerator.
        box2box_transform: Box2BoxTransformRotated.
        anchor_matcher: Matcher (typically thresholds [0.4, 0.5], labels [0, -1, 1]).
        num_classes: K.
        focal_loss_alpha, focal_loss_gamma: focal loss parameters.
        box_reg_loss_type: "smooth_l1", "l1", "kld" or "gwd".
        smooth_l1_beta: beta of the smooth L1 loss.
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
        anchor_matcher: Matcher,
        num_classes: int,
        focal_loss_alpha: float = 0.25,
        focal_loss_gamma: float = 2.0,
        box_reg_loss_type: str = "smooth_l1",
        smooth_l1_beta: float = 0.1,
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
        self.head = head
        self.head_in_features = list(head_in_features)
        self.anchor_generator = anchor_generator
        self.box2box_transform = box2box_transform
        self.anchor_matcher = anchor_matcher
        self.num_classes = num_classes
        self.focal_loss_alpha = focal_loss_alpha
        self.focal_loss_gamma = focal_loss_gamma
        self.box_reg_loss_type = check_box_reg_loss_type(box_reg_loss_type, "RotatedRetinaNet")
        self.smooth_l1_beta = smooth_l1_beta
        self.test_score_thresh = test_score_thresh
        self.test_topk_candidates = test_topk_candidates
        self.test_nms_thresh = test_nms_thresh
        self.max_detections_per_image = max_detections_per_image
        self.loss_normalizer_momentum = loss_normalizer_momentum
        self.loss_normalizer = 100.0  # initial guess of foreground anchors per batch

    def forward(self, batched_inputs: list[dict]):
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)
        feats = [features[f] for f in self.head_in_features]
        anchors = [a.tensor for a in self.anchor_generator(feats)]
        logits, deltas = self.head(feats)
        pred_logits = [_to_nhwa(x, self.num_classes) for x in logits]
        pred_deltas = [_to_nhwa(x, 5) for x in deltas]
        if self.training:
            gt = gt_instances(batched_inputs, self.device)
            all_anchors = torch.cat(anchors)
            gt_labels, gt_boxes = self.label_anchors(all_anchors, gt)
            return self.losses(all_anchors, pred_logits, gt_labels, pred_deltas, gt_boxes)
        results = self.inference(anchors, pred_logits, pred_deltas, images.image_sizes)
        return postprocess_batch(results, batched_inputs)

    @torch.no_grad()
    def label_anchors(self, anchors: torch.Tensor, gt_instances: list[Instances]):
        """Per image: class label of each anchor (K background, -1 ignored) ``[A]`` and the
        matched ground-truth box ``[A, 5]``."""
        labels_out, boxes_out = [], []
        for inst in gt_instances:
            gt = inst.gt_boxes.tensor
            matched_idxs, match_labels = self.anchor_matcher.match_boxes(gt, anchors)
            if gt.shape[0] > 0:
                labels = inst.gt_classes[matched_idxs].clone()
                labels[match_labels == 0] = self.num_classes
                labels[match_labels == -1] = -1
                boxes = gt[matched_idxs]
            else:
                labels = torch.full_like(matched_idxs, self.num_classes)
                boxes = anchors.new_zeros((anchors.shape[0], 5))
            labels_out.append(labels)
            boxes_out.append(boxes)
        return labels_out, boxes_out

    def losses(self, anchors, pred_logits, gt_labels, pred_deltas, gt_boxes):
        """Focal loss over non-ignored anchors and box regression over foreground anchors, both
        divided by the moving average of the foreground count."""
        labels = torch.stack(gt_labels)  # [N, A]
        valid = labels >= 0
        pos = valid & (labels != self.num_classes)
        num_pos = pos.sum().item()
        m = self.loss_normalizer_momentum
        self.loss_normalizer = m * self.loss_normalizer + (1 - m) * max(num_pos, 1)
        logits = torch.cat(pred_logits, dim=1)
        onehot = F.one_hot(labels[valid], num_classes=self.num_classes + 1)[:, :-1]
        loss_cls = sigmoid_focal_loss(
            logits[valid],
            onehot.to(logits.dtype),
            self.focal_loss_alpha,
            self.focal_loss_gamma,
            reduction="sum",
        )
        deltas = torch.cat(pred_deltas, dim=1)
        img, anc = pos.nonzero(as_tuple=True)
        loss_box = box_regression_loss(
            self.box_reg_loss_type,
            self.box2box_transform,
            deltas[img, anc],
            anchors[anc],
            torch.stack(gt_boxes)[img, anc],
            self.smooth_l1_beta,
        )
        return {
            "loss_cls": loss_cls / self.loss_normalizer,
            "loss_box_reg": loss_box / self.loss_normalizer,
        }

    @torch.no_grad()
    def inference(self, anchors, pred_logits, pred_deltas, image_sizes) -> list[Instances]:
        """Per image: per level the best ``test_topk_candidates`` (anchor, class) pairs above the
        score threshold, decoded, then per-class rotated NMS and the top detections."""
        results = []
        for i, size in enumerate(image_sizes):
            boxes_all, scores_all, classes_all = [], [], []
            for anc, logit, delta in zip(anchors, pred_logits, pred_deltas):
                probs = logit[i].float().sigmoid().flatten()  # float32 also under autocast
                keep = probs > self.test_score_thresh
                scores = probs[keep]
                idx = torch.nonzero(keep, as_tuple=True)[0]
                k = min_size(idx.shape[0], self.test_topk_candidates)
                scores, order = scores.topk(k)
                idx = idx[order]
                anchor_idx = idx // self.num_classes
                classes = idx % self.num_classes
                decoded = self.box2box_transform.apply_deltas(delta[i][anchor_idx], anc[anchor_idx])
                boxes_all.append(decoded)
                scores_all.append(scores)
                classes_all.append(classes)
            boxes = RotatedBoxes(torch.cat(boxes_all))
            scores = torch.cat(scores_all)
            classes = torch.cat(classes_all)
            boxes.clip(size)
            keep = batched_nms_rotated(boxes.tensor, scores, classes, self.test_nms_thresh)
            keep = keep[: self.max_detections_per_image]
            res = Instances(size)
            res.pred_boxes = boxes[keep]
            res.scores = scores[keep]
            res.pred_classes = classes[keep]
            results.append(res)
        return results

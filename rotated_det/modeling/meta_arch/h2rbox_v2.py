"""H2RBox-v2: a rotated detector trained from horizontal boxes only (Yu et al., "H2RBox-v2:
Incorporating Symmetry for Boosting Horizontal Box Supervised Oriented Object Detection",
NeurIPS 2023; MMRotate's ``H2RBoxV2Detector`` and ``H2RBoxV2Head``).

The network is a Rotated FCOS with a phase-shifting angle coder (:class:`RotatedFCOS`, whose
inference it uses unchanged). Training sees every image three times, in one batch:

1. the original image, with its horizontal ground-truth boxes;
2. the image turned counter-clockwise by a random angle ``r`` in ``view_range`` about the centre
   of the padded batch (corners filled by ``rotate_padding``), with the horizontal boxes turned
   by ``r`` (rotated rectangles of angle ``r``);
3. the image flipped top to bottom, with the flipped (still horizontal) boxes.

Losses, over the three views:

- classification (focal) and centerness as Rotated FCOS, with points assigned to the view's
  boxes;
- the weakly supervised box loss: the IoU of each target with the box that encloses the
  predicted rotated box in the target's frame (:func:`circum_iou_loss`); the predicted angle
  is detached there, so the sides and centre learn from the horizontal boxes and the angle learns
  only from
- the self-supervised symmetry losses (:func:`symmetry_losses`): per object, the angle decoded
  from the mean angle code of its positive points in each view must satisfy
  ``a_rot = a_orig + r`` and ``a_flip = -a_orig`` (modulo 180 degrees, the snap loss). An
  object counts when it has positive points in all three views.

Why this finds orientations: a predictor that satisfies both consistencies for every image is
equivariant to rotations and flips. An object symmetric about an axis at angle ``s`` looks the
same after a flip as after a turn by ``-2 s`` (a reflection about that axis is a flip followed by a
turn), so the prediction ``a`` must satisfy ``-a = a - 2 s`` modulo 180: ``a = s`` or ``s + 90``,
the symmetry axis or the axis across it. Either is one box once the sides are fitted to the
horizontal box. Objects without an axis, such as round storage tanks, have no defined angle: list
their classes in ``square_classes`` (MMRotate's ``rotation_agnostic_classes``): they take no part
in the symmetry losses, and their boxes are predicted at angle 0 (the horizontal box itself),
optionally scaled by ``square_class_scales`` at inference (MMRotate shrinks DOTA's baseball
diamonds by 0.85).

Ground truth: every gt box is first replaced by its enclosing horizontal box ``(cx, cy, W, H, 0)``
(:func:`horizontal_gt_boxes`). Horizontal labels given as rotated boxes of angle 0 (or 90, sides
swapped) are unchanged by this; rotated labels, e.g. the synthetic dataset's, become the
horizontal boxes an annotator would have drawn, so a model trained on a rotated dataset learns
from horizontal boxes only, and can be scored against the rotated ones. Augmentations that turn
images by angles other than multiples of 90 degrees must not be applied to horizontal labels
(the turned box is no longer the object's enclosing box); flips and quarter turns are fine.

Differences from MMRotate, all small: one random turn per image (MMRotate draws one per batch);
``view_range`` in degrees (MMRotate's ``(0.25, 0.75)`` times pi is ``(45, 135)``); the symmetry
losses are averaged over the objects they apply to (MMRotate counts square-class objects in the
average with a zero loss); square-class targets of the turned view are snapped to the nearest
quarter turn about their own centre (MMRotate turns them about the point). MMRotate's centre crop
of the views (``crop_size``) equals the training image size in its DOTA and HRSC configs (no
crop) and is not implemented.
"""

from collections.abc import Sequence

import torch
from torch.nn import functional as F

from rotated_det.structures import Instances, RotatedBoxes, cos_sin_degrees

from ..angle_coders import AngleCoder
from ..assigners import FCOS_REGRESS_RANGES, RotatedCenterSamplingAssigner
from ..backbone.backbone import Backbone
from ..box_coders import DistanceAnglePointCoder
from ..dense_heads.fcos_head import RotatedFCOSHead
from ..losses.circum_iou_loss import circum_iou_loss
from ..losses.symmetry_loss import symmetry_losses
from ..point_generator import PointGenerator
from .fcos import ROTATED_BOX_LOSSES, RotatedFCOS, _iou_mode
from .preprocessing import gt_instances

__all__ = [
    "H2RBoxV2",
    "horizontal_gt_boxes",
    "flip_boxes_vertically",
    "rotate_boxes",
    "rotate_images",
]

ROTATE_PADDINGS = ("reflection", "zeros", "border")


def horizontal_gt_boxes(boxes: torch.Tensor) -> torch.Tensor:
    """``[G, 5]`` rotated boxes -> ``[G, 5]`` their enclosing horizontal boxes
    ``(cx, cy, |cos a| w + |sin a| h, |sin a| w + |cos a| h, 0)`` (exact for angles that are
    multiples of 90 degrees: an angle-0 box is returned as it is)."""
    cos, sin = cos_sin_degrees(boxes[:, 4])
    cos, sin = cos.abs(), sin.abs()
    w, h = boxes[:, 2], boxes[:, 3]
    return torch.stack(
        [boxes[:, 0], boxes[:, 1], cos * w + sin * h, sin * w + cos * h, torch.zeros_like(w)],
        dim=1,
    )


def flip_boxes_vertically(boxes: torch.Tensor, height: int) -> torch.Tensor:
    """``[G, 5]`` boxes of an image ``height`` pixels tall -> the boxes of that image flipped top
    to bottom (``y -> height - y``, angle ``a -> -a``)."""
    out = boxes.clone()
    out[:, 1] = height - boxes[:, 1]
    out[:, 4] = -boxes[:, 4]
    return out


def rotate_boxes(
    boxes: torch.Tensor, angle: torch.Tensor, image_size: tuple[int, int]
) -> torch.Tensor:
    """``[G, 5]`` boxes of an image of ``image_size`` (h, w) -> the boxes of that image turned
    counter-clockwise on screen by ``angle`` degrees (a 0-dim tensor) about its centre
    ``(w / 2, h / 2)`` (:func:`rotate_images`): centres turned, angles ``a -> a + angle``."""
    h, w = image_size
    cos, sin = cos_sin_degrees(angle)
    dx, dy = boxes[:, 0] - w / 2, boxes[:, 1] - h / 2
    out = boxes.clone()
    # counter-clockwise on screen with y down: (1, 0) -> (cos, -sin), (0, 1) -> (sin, cos)
    out[:, 0] = w / 2 + cos * dx + sin * dy
    out[:, 1] = h / 2 - sin * dx + cos * dy
    out[:, 4] = boxes[:, 4] + angle
    return out


def rotate_images(
    images: torch.Tensor, angles: torch.Tensor, padding_mode: str = "reflection"
) -> torch.Tensor:
    """Each image of ``[N, C, H, W]`` turned counter-clockwise on screen by its angle of
    ``angles`` ``[N]`` (degrees) about the image centre ``(W / 2, H / 2)`` (pixel ``(i, j)``
    covers ``[j, j + 1] x [i, i + 1]``), by bilinear sampling; the corners that come from outside
    the image are filled by ``padding_mode`` ("reflection": mirrored image content, MMRotate's
    choice; "zeros": 0, which is the mean pixel for normalised images; "border": the nearest edge
    pixel). The same turn maps box coordinates by :func:`rotate_boxes`."""
    if padding_mode not in ROTATE_PADDINGS:
        raise ValueError(f"padding_mode must be one of {ROTATE_PADDINGS}, got {padding_mode!r}")
    n, _, h, w = images.shape
    cos, sin = cos_sin_degrees(angles.to(images.dtype))
    # Output pixel p' samples the input at c + R^T (p' - c); in grid_sample's normalised
    # coordinates (x_n = 2 x / W - 1) a pixel offset (dx, dy) is (2 dx / W, 2 dy / H).
    theta = torch.zeros(n, 2, 3, dtype=images.dtype, device=images.device)
    theta[:, 0, 0] = cos
    theta[:, 0, 1] = -sin * (h / w)
    theta[:, 1, 0] = sin * (w / h)
    theta[:, 1, 1] = cos
    grid = F.affine_grid(theta, [n, images.shape[1], h, w], align_corners=False)
    return F.grid_sample(
        images, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False
    )


class H2RBoxV2(RotatedFCOS):
    """H2RBox-v2 (module docstring): Rotated FCOS trained from horizontal boxes through
    symmetry.

    Args:
        backbone, head, head_in_features, point_generator, assigner, regress_ranges, box_coder,
        num_classes, focal_loss_alpha, focal_loss_gamma, test_score_thresh,
        test_topk_candidates, test_nms_thresh, max_detections_per_image, pixel_mean, pixel_std,
        input_format: as :class:`RotatedFCOS`.
        angle_coder: an AngleCoder whose ``decode`` is differentiable (the symmetry losses
            train through it): PSCCoder (MMRotate: single frequency, 3 steps, ``thr_mod=0``) or
            RegressionAngleCoder; not CSL (its decode is an arg-max).
        box_loss_type: the IoU loss of the circumscribed box: "iou" (1 - IoU), "log_iou"
            (-log IoU, MMRotate's) or "giou".
        view_range: ``(low, high)`` degrees: the rotated view turns each image
            counter-clockwise by an angle drawn uniformly from it (MMRotate: 0.25 pi to
            0.75 pi = 45 to 135). Angles near 0 or 180 teach nothing (the views are alike).
        rotate_padding: fill of the rotated view's corners, see :func:`rotate_images`.
        square_classes: classes without an orientation (round or square-like objects, e.g.
            DOTA's baseball-diamond 1, storage-tank 9, roundabout 11): no symmetry loss, angle 0.
        square_class_scales: one factor per ``square_classes`` entry applied to the sides of its
            detections (MMRotate: 0.85 for baseball-diamond); default all 1.
        rotation_loss_weight, flip_loss_weight: weights of the rotation and flip consistency
            losses (MMRotate: 1.0 and 0.05).
        symmetry_beta: smooth L1 threshold of the symmetry losses, radians (MMRotate: 0.1).
        snap_loss: take the symmetry differences modulo 180 degrees (the paper's snap loss).

    Training losses: ``loss_cls``, ``loss_box_reg`` (circumscribed IoU), ``loss_centerness``,
    ``loss_symmetry_rot`` and ``loss_symmetry_flip``.
    """

    # Buffers (registered in __init__), declared for the type checker.
    is_square_class: torch.Tensor
    class_box_scale: torch.Tensor

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
        view_range: tuple[float, float] | Sequence[float] = (45.0, 135.0),
        rotate_padding: str = "reflection",
        square_classes: Sequence[int] = (),
        square_class_scales: Sequence[float] | None = None,
        rotation_loss_weight: float = 1.0,
        flip_loss_weight: float = 0.05,
        symmetry_beta: float = 0.1,
        snap_loss: bool = True,
        focal_loss_alpha: float = 0.25,
        focal_loss_gamma: float = 2.0,
        box_loss_type: str = "log_iou",
        test_score_thresh: float = 0.05,
        test_topk_candidates: int = 1000,
        test_nms_thresh: float = 0.1,
        max_detections_per_image: int = 100,
        pixel_mean: tuple[float, ...] = (103.530, 116.280, 123.675),
        pixel_std: tuple[float, ...] = (1.0, 1.0, 1.0),
        input_format: str = "BGR",
    ) -> None:
        if box_loss_type not in ROTATED_BOX_LOSSES:
            raise ValueError(
                f"H2RBoxV2: box_loss_type must be one of {ROTATED_BOX_LOSSES} (the IoU loss of "
                f"the circumscribed box), got {box_loss_type!r}"
            )
        super().__init__(
            backbone=backbone,
            head=head,
            head_in_features=head_in_features,
            point_generator=point_generator,
            assigner=assigner,
            regress_ranges=regress_ranges,
            box_coder=box_coder,
            angle_coder=angle_coder,
            num_classes=num_classes,
            focal_loss_alpha=focal_loss_alpha,
            focal_loss_gamma=focal_loss_gamma,
            box_loss_type=box_loss_type,
            angle_loss_weight=0.0,  # no angle labels: the angle learns from the symmetry losses
            test_score_thresh=test_score_thresh,
            test_topk_candidates=test_topk_candidates,
            test_nms_thresh=test_nms_thresh,
            max_detections_per_image=max_detections_per_image,
            pixel_mean=pixel_mean,
            pixel_std=pixel_std,
            input_format=input_format,
        )
        low, high = (float(v) for v in view_range)
        if not low <= high:
            raise ValueError(f"H2RBoxV2: view_range must be (low, high), got {tuple(view_range)}")
        if rotate_padding not in ROTATE_PADDINGS:
            raise ValueError(
                f"H2RBoxV2: rotate_padding must be one of {ROTATE_PADDINGS}, got {rotate_padding!r}"
            )
        square = [int(c) for c in square_classes]
        bad = [c for c in square if not 0 <= c < num_classes]
        if bad:
            raise ValueError(
                f"H2RBoxV2: square_classes {bad} are not class indices in [0, {num_classes})"
            )
        scales = [1.0] * len(square) if square_class_scales is None else list(square_class_scales)
        if len(scales) != len(square) or any(not s > 0 for s in scales):
            raise ValueError(
                f"H2RBoxV2: square_class_scales must hold one factor > 0 per square class "
                f"({square}), got {square_class_scales}"
            )
        if min(rotation_loss_weight, flip_loss_weight, symmetry_beta) < 0:
            raise ValueError(
                "H2RBoxV2: rotation_loss_weight, flip_loss_weight and symmetry_beta must be "
                f">= 0, got {rotation_loss_weight}, {flip_loss_weight}, {symmetry_beta}"
            )
        self.view_range = (low, high)
        self.rotate_padding = rotate_padding
        self.square_classes = tuple(square)
        self.rotation_loss_weight = float(rotation_loss_weight)
        self.flip_loss_weight = float(flip_loss_weight)
        self.symmetry_beta = float(symmetry_beta)
        self.snap_loss = bool(snap_loss)
        is_square = torch.zeros(num_classes, dtype=torch.bool)
        box_scale = torch.ones(num_classes)
        for c, s in zip(square, scales):
            is_square[c] = True
            box_scale[c] = float(s)
        # settings, not weights: kept out of checkpoints, like pixel_mean
        self.register_buffer("is_square_class", is_square, False)
        self.register_buffer("class_box_scale", box_scale, False)

    def forward(self, batched_inputs: list[dict]):
        if not self.training:
            return super().forward(batched_inputs)
        images = self.preprocess_image(batched_inputs).tensor
        gt = gt_instances(batched_inputs, self.device)
        rotation = torch.empty(images.shape[0], device=images.device).uniform_(*self.view_range)
        views, view_gt = self.make_views(images, gt, rotation)
        points, pred_logits, pred_distances, pred_angles, pred_centerness = self.head_outputs(views)
        labels, gt_boxes, assigned = self.label_points(points, view_gt)
        losses = self.point_losses(
            points, labels, gt_boxes, pred_logits, pred_distances, pred_angles, pred_centerness
        )
        losses.update(self.symmetry_loss_terms(labels, assigned, pred_angles, view_gt, rotation))
        return losses

    def make_views(
        self, images: torch.Tensor, gt: list[Instances], rotation: torch.Tensor
    ) -> tuple[torch.Tensor, list[Instances]]:
        """The training batch of the three views (module docstring) of a normalised, padded
        batch ``[N, C, H, W]``: images ``[3N, C, H, W]`` (originals, turned by ``rotation``
        ``[N]`` degrees, flipped top to bottom) and their 3N ground truths (the enclosing
        horizontal boxes of ``gt``, turned, flipped; classes kept)."""
        n, _, h, w = images.shape
        views = torch.cat(
            [images, rotate_images(images, rotation, self.rotate_padding), images.flip(2)]
        )
        horizontal = [horizontal_gt_boxes(inst.gt_boxes.tensor) for inst in gt]
        boxes = (
            horizontal
            + [rotate_boxes(b, r, (h, w)) for b, r in zip(horizontal, rotation)]
            + [flip_boxes_vertically(b, h) for b in horizontal]
        )
        classes = [inst.gt_classes for inst in gt] * 3
        view_gt = [
            Instances((h, w), gt_boxes=RotatedBoxes(b), gt_classes=c)
            for b, c in zip(boxes, classes)
        ]
        return views, view_gt

    def box_losses(
        self,
        points: torch.Tensor,
        labels: torch.Tensor,
        distances: torch.Tensor,
        angle_codes: torch.Tensor,
        target_distances: torch.Tensor,
        target_angles: torch.Tensor,
    ) -> torch.Tensor:
        """The circumscribed-box IoU loss ``[F]`` (module docstring) with the predicted angle
        detached; square classes are predicted at angle 0 against their target snapped to the
        nearest quarter turn."""
        pred_angles = self.angle_coder.decode(angle_codes).detach()
        targets = self.box_coder.decode(points, target_distances, target_angles)
        if self.square_classes:
            square = self.is_square_class[labels]
            pred_angles = torch.where(square, torch.zeros_like(pred_angles), pred_angles)
            snapped = 90.0 * torch.round(targets[:, 4] / 90.0)
            targets = torch.cat(
                [targets[:, :4], torch.where(square, snapped, targets[:, 4])[:, None]], dim=1
            )
        preds = self.box_coder.decode(points, distances, pred_angles)
        return circum_iou_loss(preds, targets, mode=_iou_mode(self.box_loss_type))

    def symmetry_loss_terms(
        self,
        labels: torch.Tensor,
        assigned: torch.Tensor,
        pred_angles: list[torch.Tensor],
        view_gt: list[Instances],
        rotation: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """The weighted rotation and flip consistency losses, averaged over the objects with
        positive points in all three views that are not of a square class.

        Args:
            labels: ``[3N, P]`` class of each view's points (K: background).
            assigned: ``[3N, P]`` index of each point's box in its view's ground truth.
            pred_angles: per level ``[3N, P_l, E]`` angle codes.
            view_gt: the 3N ground truths of :meth:`make_views` (the same objects, in the same
                order, in each view).
            rotation: ``[N]`` degrees, the turn of each image's rotated view.
        """
        n = rotation.shape[0]
        counts = torch.tensor([len(inst) for inst in view_gt[:n]], device=labels.device)
        total = int(counts.sum().item())
        codes = torch.cat(pred_angles, dim=1)  # [3N, P, E]
        b, p = (labels != self.num_classes).nonzero(as_tuple=True)
        # one slot per (view, object): objects numbered across the N images
        first = torch.cumsum(counts, 0) - counts
        slot = (b // n) * total + first[b % n] + assigned[b, p]
        pos_codes = codes[b, p].float()
        sums = pos_codes.new_zeros((3 * total, codes.shape[2])).index_add_(0, slot, pos_codes)
        hits = torch.bincount(slot, minlength=3 * total).view(3, total)
        classes = torch.cat([inst.gt_classes for inst in view_gt[:n]])
        valid = (hits > 0).all(dim=0) & ~self.is_square_class[classes]
        if not bool(valid.any()):
            zero = pos_codes.sum() * 0.0  # keeps the graph (and DDP) connected
            return {"loss_symmetry_rot": zero, "loss_symmetry_flip": zero}
        mean_codes = sums.view(3, total, -1)[:, valid] / hits[:, valid, None]  # [3, M, E]
        m = mean_codes.shape[1]
        angles = self.angle_coder.decode(mean_codes.reshape(3 * m, -1)).view(3, m)
        object_rotation = torch.repeat_interleave(rotation, counts)[valid]
        loss_rot, loss_flip = symmetry_losses(
            angles[0], angles[1], angles[2], object_rotation, self.symmetry_beta, self.snap_loss
        )
        return {
            "loss_symmetry_rot": self.rotation_loss_weight * loss_rot.mean(),
            "loss_symmetry_flip": self.flip_loss_weight * loss_flip.mean(),
        }

    def decode_boxes(
        self,
        points: torch.Tensor,
        distances: torch.Tensor,
        angle_codes: torch.Tensor,
        classes: torch.Tensor,
    ) -> torch.Tensor:
        """As :meth:`RotatedFCOS.decode_boxes`, with square classes at angle 0 and scaled by
        their ``square_class_scales``."""
        angles = self.angle_coder.decode(angle_codes)
        if not self.square_classes:
            return self.box_coder.decode(points, distances, angles)
        angles = torch.where(self.is_square_class[classes], torch.zeros_like(angles), angles)
        boxes = self.box_coder.decode(points, distances, angles)
        scale = self.class_box_scale[classes][:, None]
        return torch.cat([boxes[:, :2], boxes[:, 2:4] * scale, boxes[:, 4:]], dim=1)

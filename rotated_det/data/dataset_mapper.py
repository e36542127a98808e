"""``DatasetMapper``: one dataset dict -> one model input (image tensor + rotated ground truth)."""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence

import numpy as np
import torch

from rotated_det.data import detection_utils as utils
from rotated_det.data.transforms import AugInput, Augmentation, AugmentationList
from rotated_det.structures import normalize_rbox_angles

__all__ = ["DatasetMapper"]

logger = logging.getLogger(__name__)


class DatasetMapper:
    """Read the image of a dataset dict, augment image and rotated boxes, build the model input.

    Output dict::

        {"image": uint8 tensor [C, H, W] (after augmentation), "height", "width" (of the
         original image, for the model to rescale predictions), "file_name", "image_id",
         "instances": Instances(gt_boxes=RotatedBoxes [N, 5], gt_classes int64 [N])  # training}

    Boxes are transformed exactly (see :mod:`rotated_det.data.transforms`). After augmentation,
    boxes leaving the image are clipped (or dropped when less than ``min_visible_fraction`` is
    visible) and boxes with a side shorter than ``min_box_size`` px are dropped; both are counted
    in :attr:`stats` and logged.
    """

    def __init__(
        self,
        is_train: bool = True,
        *,
        augmentations: Sequence[Augmentation] = (),
        image_format: str = "BGR",
        min_box_size: float = 1.0,
        min_visible_fraction: float = 0.5,
        clip_tolerance: float = 1.0,
        angle_version: str | None = None,
        filter_difficult: bool = False,
        with_difficult: bool = False,
        log_period: int = 500,
    ):
        """
        Args:
            is_train: build ``instances`` from the annotations; if False, annotations are
                removed (the evaluator reads ground truth from the dataset catalog).
            augmentations: applied in order to image and boxes.
            image_format: "BGR" (default), "RGB" or "L".
            min_box_size: boxes with ``w`` or ``h`` below this (pixels, after augmentation) are
                dropped.
            min_visible_fraction: see :func:`detection_utils.clip_rotated_boxes`.
            clip_tolerance: pixels a box may exceed the image before it is clipped.
            angle_version: if given ("le90", "le135", "oc"), normalise gt angles with
                :func:`rotated_det.structures.normalize_rbox_angles`; else angles are wrapped to
                ``[-180, 180)``.
            filter_difficult: drop objects marked difficult (counted).
            with_difficult: add an int64 ``gt_difficult`` field to the instances.
            log_period: log the drop counters every this many images.
        """
        if image_format not in utils.SUPPORTED_IMAGE_FORMATS:
            raise ValueError(f"image_format must be one of {utils.SUPPORTED_IMAGE_FORMATS}")
        self.is_train = is_train
        self.augmentations = AugmentationList(augmentations)
        self.image_format = image_format
        self.min_box_size = min_box_size
        self.min_visible_fraction = min_visible_fraction
        self.clip_tolerance = clip_tolerance
        self.angle_version = angle_version
        self.filter_difficult = filter_difficult
        self.with_difficult = with_difficult
        self.log_period = log_period
        self.stats = {"images": 0, "degenerate": 0, "outside": 0, "clipped": 0, "difficult": 0}

    def __repr__(self) -> str:
        return (
            f"DatasetMapper(is_train={self.is_train}, augmentations={self.augmentations}, "
            f"image_format={self.image_format!r}, min_box_size={self.min_box_size}, "
            f"min_visible_fraction={self.min_visible_fraction})"
        )

    def __call__(self, dataset_dict: dict) -> dict:
        dataset_dict = copy.copy(dataset_dict)
        image = utils.read_image(dataset_dict["file_name"], self.image_format)
        utils.check_image_size(dataset_dict, image)
        orig_h, orig_w = image.shape[:2]
        annos = dataset_dict.pop("annotations", None)
        boxes, classes, diff = None, None, None
        if self.is_train and annos is not None:
            boxes, classes, diff = utils.annotations_to_arrays(annos)
            if self.filter_difficult and len(boxes):
                keep = diff == 0
                self.stats["difficult"] += int((~keep).sum())
                boxes, classes, diff = boxes[keep], classes[keep], diff[keep]
        aug_input = AugInput(image, boxes=boxes)
        self.augmentations(aug_input)
        image = aug_input.image
        if image.ndim == 2:
            image = image[:, :, None]
        h, w = image.shape[:2]
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        dataset_dict.setdefault("height", orig_h)
        dataset_dict.setdefault("width", orig_w)
        if boxes is not None:
            boxes, keep, n_clip = utils.clip_rotated_boxes(
                aug_input.boxes, (h, w), self.min_visible_fraction, self.clip_tolerance
            )
            classes, diff = classes[keep], diff[keep]
            self.stats["outside"] += int((~keep).sum())
            self.stats["clipped"] += n_clip
            big = (boxes[:, 2] >= self.min_box_size) & (boxes[:, 3] >= self.min_box_size)
            self.stats["degenerate"] += int((~big).sum())
            boxes, classes, diff = boxes[big], classes[big], diff[big]
            if self.angle_version is not None:
                boxes = np.asarray(normalize_rbox_angles(boxes, self.angle_version))
            else:
                boxes = boxes.copy()
                boxes[:, 4] = (boxes[:, 4] + 180.0) % 360.0 - 180.0
            dataset_dict["instances"] = utils.arrays_to_instances(
                (h, w), boxes, classes, diff if self.with_difficult else None
            )
        self.stats["images"] += 1
        if self.log_period and self.stats["images"] % self.log_period == 0:
            self.log_stats()
        return dataset_dict

    def log_stats(self) -> None:
        s = self.stats
        if s["degenerate"] or s["outside"] or s["difficult"] or s["clipped"]:
            logger.info(
                f"DatasetMapper (this process) after {s['images']} images: dropped "
                f"{s['degenerate']} degenerate boxes (side < {self.min_box_size} px), "
                f"{s['outside']} boxes mostly outside the image, {s['difficult']} difficult; "
                f"clipped {s['clipped']} boxes at the border"
            )

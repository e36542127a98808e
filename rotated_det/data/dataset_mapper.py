"""``DatasetMapper``: one dataset dict -> one model input (image tensor + rotated ground truth)."""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence

import numpy as np
import torch

from rotated_det.data import detection_utils as utils
from rotated_det.data.cached_mixup import CachedMixUp
from rotated_det.data.cached_mosaic import CachedMosaic
from rotated_det.data.image_mixing import LabeledImage
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
    :func:`~rotated_det.data.detection_utils.filter_rotated_boxes` clips boxes leaving the image
    (or drops them, reason "outside", when less than ``min_visible_fraction`` is visible) and drops
    boxes with a side shorter than ``min_box_size`` px (reason "degenerate"). Both are counted in
    :attr:`stats` and logged after the first 100 images and every ``log_period`` images, as a
    warning when more than ``max_drop_fraction`` of the boxes seen were dropped. Boxes that were
    inside the image as loaded and that an augmentation moved out (a crop) are counted apart
    (``moved_out``) and not in that share: a 320 px crop of 512 px patches drops about half of the
    boxes by design.

    Training images can also be mixed with other images (RTMDet's strong augmentation):
    ``mosaic`` (a :class:`~rotated_det.data.CachedMosaic`) combines the image as read with three
    recent ones before the augmentations, ``mixup`` (a :class:`~rotated_det.data.CachedMixUp`)
    blends the augmented and filtered image with a recent one. Objects their window rule leaves
    out count as ``moved_out``. Both keep caches of recent images, per process;
    :attr:`history_length` tells the training loader how many preceding images determine them,
    so that it can rebuild them exactly on resume.

    :meth:`check_dataset` runs the same filter over a whole dataset before training
    (:func:`~rotated_det.data.build_detection_train_loader` calls it): a dataset whose boxes would
    all be dropped is an error, one with more than ``max_drop_fraction`` dropped a warning.
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
        max_drop_fraction: float = 0.05,
        mosaic: CachedMosaic | None = None,
        mixup: CachedMixUp | None = None,
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
            log_period: log the drop counters every this many images (and after the first
                100).
            max_drop_fraction: warn when more than this share of the boxes (outside or
                degenerate; dropping difficult boxes is asked for, not counted) is dropped.
            mosaic: combine each training image with three recent ones before the
                augmentations (training only).
            mixup: blend each augmented training image with a recent one (training only).
        """
        if not 0.0 <= max_drop_fraction <= 1.0:
            raise ValueError(f"max_drop_fraction must lie in [0, 1], got {max_drop_fraction}")
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
        self.max_drop_fraction = max_drop_fraction
        self.mosaic = mosaic
        self.mixup = mixup
        self.stats = _zero_stats()

    @property
    def history_length(self) -> int:
        """How many preceding images (mapped by this object, in order) determine its state: the
        sizes of the mosaic and mixup caches added (the mixup cache holds images mixed with the
        mosaic cache of their time); 0 without them."""
        return sum(m.max_cached_images for m in (self.mosaic, self.mixup) if m is not None)

    def reset_history(self) -> None:
        """Empty the mosaic and mixup caches."""
        for m in (self.mosaic, self.mixup):
            if m is not None:
                m.reset()

    def __repr__(self) -> str:
        return (
            f"DatasetMapper(is_train={self.is_train}, augmentations={self.augmentations}, "
            f"image_format={self.image_format!r}, min_box_size={self.min_box_size}, "
            f"min_visible_fraction={self.min_visible_fraction}"
            + (f", mosaic={self.mosaic}" if self.mosaic is not None else "")
            + (f", mixup={self.mixup}" if self.mixup is not None else "")
            + ")"
        )

    def __call__(self, dataset_dict: dict) -> dict:
        dataset_dict = copy.copy(dataset_dict)
        image = utils.read_image(dataset_dict["file_name"], self.image_format)
        utils.check_image_size(dataset_dict, image)
        orig_h, orig_w = image.shape[:2]
        annos = dataset_dict.pop("annotations", None)
        boxes: np.ndarray | None = None
        classes = diff = np.zeros(0, np.int64)  # read only where boxes is not None
        if self.is_train and annos is not None:
            boxes, classes, diff = utils.annotations_to_arrays(annos)
            self.stats["boxes"] += len(boxes)
            if self.filter_difficult and len(boxes):
                keep = diff == 0
                self.stats["difficult"] += int((~keep).sum())
                boxes, classes, diff = boxes[keep], classes[keep], diff[keep]
        if self.mosaic is not None and boxes is not None:
            if image.ndim == 2:
                image = image[:, :, None]
            mosaic, n_out = self.mosaic(LabeledImage(image, boxes, classes, diff))
            image, boxes = mosaic.image, mosaic.boxes
            classes, diff = mosaic.classes, mosaic.difficult
            self.stats["moved_out"] += n_out
        in_h, in_w = image.shape[:2]  # the size entering the augmentations
        aug_input = AugInput(image, boxes=boxes, classes=classes)
        self.augmentations(aug_input)
        image = aug_input.image
        if image.ndim == 2:
            image = image[:, :, None]
        h, w = image.shape[:2]
        dataset_dict.setdefault("height", orig_h)
        dataset_dict.setdefault("width", orig_w)
        if boxes is not None and aug_input.boxes is not None:
            original = boxes
            boxes, reason, n_clip = self._filter(aug_input.boxes, (h, w))
            keep = reason == 0
            classes, diff = classes[keep], diff[keep]
            self._count(reason, n_clip, self.stats)
            # Boxes the augmentation moved out (a crop) are expected, not a problem of the data:
            # counted apart from boxes that were already outside the image as loaded.
            outside = np.nonzero(reason == 1)[0]
            if len(outside):
                _, as_loaded, _ = self._filter(original[outside], (in_h, in_w))
                moved_out = int((as_loaded == 0).sum())
                self.stats["outside"] -= moved_out
                self.stats["moved_out"] += moved_out
            if self.mixup is not None:
                mixed, n_out = self.mixup(LabeledImage(image, boxes, classes, diff))
                self.stats["moved_out"] += n_out
                # the objects mixed in were counted when their own image was mapped: their
                # degenerate pieces are dropped here without being counted again
                image = mixed.image
                boxes, reason, _ = self._filter(mixed.boxes, (h, w))
                keep = reason == 0
                classes, diff = mixed.classes[keep], mixed.difficult[keep]
            if self.angle_version is not None:
                boxes = np.asarray(normalize_rbox_angles(boxes, self.angle_version))
            else:
                boxes = boxes.copy()
                boxes[:, 4] = (boxes[:, 4] + 180.0) % 360.0 - 180.0
            dataset_dict["instances"] = utils.arrays_to_instances(
                (h, w), boxes, classes, diff if self.with_difficult else None
            )
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        self.stats["images"] += 1
        n = self.stats["images"]
        if self.log_period and (n % self.log_period == 0 or n == min(_FIRST_LOG, self.log_period)):
            self.log_stats()
        return dataset_dict

    def _filter(self, boxes: np.ndarray, image_size: tuple) -> tuple[np.ndarray, np.ndarray, int]:
        return utils.filter_rotated_boxes(
            boxes, image_size, self.min_box_size, self.min_visible_fraction, self.clip_tolerance
        )

    @staticmethod
    def _count(reason: np.ndarray, n_clip: int, stats: dict) -> None:
        per_code = np.bincount(reason, minlength=len(utils.DROP_REASONS) + 1)
        for code, name in enumerate(utils.DROP_REASONS, start=1):
            stats[name] += int(per_code[code])
        stats["clipped"] += n_clip

    def _drop_share(self, s: dict) -> float:
        return (s["outside"] + s["degenerate"]) / max(s["boxes"], 1)

    def _summary(self, s: dict) -> str:
        """``s`` (counters like :attr:`stats`) in words."""
        dropped = s["outside"] + s["degenerate"]
        text = (
            f"dropped {dropped} of {s['boxes']} boxes ({100 * self._drop_share(s):.1f}%): "
            f"{s['outside']} mostly outside the image (visible < {self.min_visible_fraction}), "
            f"{s['degenerate']} degenerate (side < {self.min_box_size} px)"
        )
        if s["moved_out"]:
            text += (
                f"; {s['moved_out']} moved out of the image by the augmentations (a crop: "
                "expected, not counted in the share)"
            )
        if self.filter_difficult:
            text += f"; {s['difficult']} difficult dropped (filter_difficult=True)"
        return text + f"; clipped {s['clipped']} boxes at the border"

    def log_stats(self) -> None:
        """Log :attr:`stats` (this process's counters): info, or a warning when more than
        ``max_drop_fraction`` of the boxes were dropped."""
        s = self.stats
        if not (
            s["degenerate"] or s["outside"] or s["difficult"] or s["clipped"] or s["moved_out"]
        ):
            return
        loud = self._drop_share(s) > self.max_drop_fraction
        logger.log(
            logging.WARNING if loud else logging.INFO,
            f"DatasetMapper (this process) after {s['images']} images: {self._summary(s)}"
            + (f" -- more than max_drop_fraction={self.max_drop_fraction}" if loud else ""),
        )

    def check_dataset(self, dataset_dicts: Sequence[dict], name: str = "the dataset") -> dict:
        """Run this mapper's box filter over the boxes of ``dataset_dicts`` as loaded (without
        augmentation), vectorised over the whole dataset, before training starts.

        Augmentations that move boxes (crops, rotations without expansion) may drop more boxes
        than counted here, and resizing changes which boxes fall below ``min_box_size``; the
        periodic log of :attr:`stats` reports what is dropped during training.

        Args:
            dataset_dicts: standard dataset dicts with ``height``, ``width``, ``annotations``.
                Images without ``height``/``width`` are not checked (their boxes count as kept).
            name: what to call the dataset in messages.
        Returns:
            counters like :attr:`stats` (``images``, ``boxes``, ``difficult``, ``outside``,
            ``degenerate``, ``clipped``).
        Raises:
            ValueError: if the dataset has annotations but no box would reach the model (every
                box dropped, or none at all): training would run with zero box losses.
        """
        counts = _zero_stats()
        counts["images"] = len(dataset_dicts)
        if not self.is_train or not any("annotations" in d for d in dataset_dicts):
            return counts  # nothing is trained on boxes: nothing to check
        per_image = [d.get("annotations") or () for d in dataset_dicts]
        annos = [a for image_annos in per_image for a in image_annos]
        boxes, _, diff = utils.annotations_to_arrays(annos)
        counts["boxes"] = len(boxes)
        image_of_box = np.repeat(np.arange(len(per_image)), [len(a) for a in per_image])
        size = np.array(
            [(d.get("height", np.nan), d.get("width", np.nan)) for d in dataset_dicts],
            dtype=np.float64,
        ).reshape(-1, 2)[image_of_box]
        check = np.isfinite(size).all(1)
        if self.filter_difficult:
            counts["difficult"] = int((diff != 0).sum())
            check &= diff == 0
        idx = np.nonzero(check)[0]
        _, reason, n_clip = self._filter(boxes[idx], (size[idx, 0], size[idx, 1]))
        self._count(reason, n_clip, counts)
        kept = counts["boxes"] - counts["difficult"] - counts["outside"] - counts["degenerate"]
        summary = f"{name} ({len(dataset_dicts)} images, before augmentation): "
        summary += self._summary(counts)
        if kept == 0:
            hint = ""
            outside = idx[reason == 1]
            if len(outside):
                d = dataset_dicts[int(image_of_box[outside[0]])]
                hint = (
                    f". First box outside its image: {boxes[outside[0]].tolist()} (XYWHA) in "
                    f"{d.get('file_name', '?')} ({d['width']}x{d['height']} px, WxH); are the "
                    "labels in the coordinates their loader expects (e.g. pixels where the "
                    "format wants normalised coordinates)?"
                )
            raise ValueError(
                f"No ground-truth box of {summary} would reach the model: training would run "
                f"with zero box losses{hint}"
            )
        loud = self._drop_share(counts) > self.max_drop_fraction
        if loud:
            logger.warning(
                f"Box check of {summary} -- more than max_drop_fraction={self.max_drop_fraction} "
                "(a DatasetMapper argument)"
            )
        else:
            logger.info(f"Box check of {summary}")
        return counts


_FIRST_LOG = 100  # images after which the mapper first logs its drop counters


def _zero_stats() -> dict:
    return {
        "images": 0,
        "boxes": 0,
        "degenerate": 0,
        "outside": 0,
        "moved_out": 0,
        "clipped": 0,
        "difficult": 0,
    }

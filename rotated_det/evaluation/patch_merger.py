"""Merge detections made on split patches back into their full images, incrementally.

Large aerial images (DOTA) are split into overlapping patches named ``NAME__RATE__X___Y`` (see
:mod:`rotated_det.structures.dota_patch_name`). A box predicted on a patch maps back to the
full image as ``cx' = (cx + X) / RATE``, ``cy' = (cy + Y) / RATE``, ``w' = w / RATE``,
``h' = h / RATE``, angle unchanged. Objects seen by two overlapping patches then appear twice;
class-wise rotated NMS over the full image's detections removes the copies (the DOTA kit merges
with an NMS threshold of 0.1 on polygons).

:class:`PatchMerger` keeps a buffer per full image and never holds every raw detection of a
dataset:

* When the number of patches of each image is known (``expected_patches``), an image is merged and
  moved out of the buffer as soon as its last patch arrives. This is exact: it equals one NMS over
  all of the image's detections.
* When an image's buffer grows past ``compact_size`` detections, the buffer is compacted by NMS
  in place. Greedy NMS in two rounds can differ from one NMS over everything: a box B that
  suppressed a neighbour C in the first round may itself be suppressed later by a higher-scored
  box A that arrives afterwards; one NMS over all three would keep C when A does not overlap it.
  ``compact_size`` should therefore be well above the number of detections an image keeps after
  merging; the default (200,000) is reached only by huge images with a very low score threshold.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from rotated_det.structures.dota_patch_name import parse_patch_name
from rotated_det.utils.file_io import IMAGE_EXTENSIONS

__all__ = ["MergedDetections", "PatchMerger", "patch_boxes_to_image", "strip_image_extension"]


def strip_image_extension(path: str) -> str:
    """Base name of ``path`` without an image file extension. Only known image extensions are
    removed: a patch name such as ``P0706__1.0__0___824`` has a dot that is not an extension."""
    base = os.path.basename(str(path).replace("\\", "/"))
    root, ext = os.path.splitext(base)
    return root if ext.lower() in IMAGE_EXTENSIONS else base


@dataclass
class MergedDetections:
    """Detections of one full image, sorted by decreasing score.

    Attributes:
        boxes: float32 [K, 5] (cx, cy, w, h, angle in degrees) in full-image pixels.
        scores: float32 [K].
        classes: int64 [K].
    """

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @staticmethod
    def empty() -> MergedDetections:
        return MergedDetections(
            np.zeros((0, 5), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
        )


def patch_boxes_to_image(boxes, rate: float, x: float, y: float) -> np.ndarray:
    """Map rotated boxes [N, 5] from a patch with offset ``(x, y)`` (pixels in the image resized
    by ``rate``) back to full-image pixels. Returns float32 [N, 5]."""
    if isinstance(boxes, torch.Tensor):
        boxes = boxes.detach().cpu().numpy()
    out = np.array(boxes, dtype=np.float32).reshape(-1, 5)
    out[:, 0] += x
    out[:, 1] += y
    out[:, :4] /= rate
    return out


def _classwise_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float):
    """Class-wise rotated NMS: the compiled ``nms_rotated`` on each class's boxes, kept indices
    merged by decreasing score (ties: lower index first). Same result as
    ``batched_nms_rotated``; with many classes per image, one call per class is faster on CPU
    than one batched call (see dev/bench_eval.py)."""
    from rotated_det.layers import nms_rotated

    order = np.argsort(classes, kind="stable")
    bounds = np.flatnonzero(np.diff(classes[order])) + 1
    tb, ts = torch.from_numpy(boxes), torch.from_numpy(scores)
    kept = []
    for idx in np.split(order, bounds):
        if len(idx) == 1:
            kept.append(idx)
            continue
        ti = torch.from_numpy(idx)
        kept.append(idx[nms_rotated(tb[ti], ts[ti], iou).numpy()])
    keep = np.concatenate(kept) if kept else np.zeros(0, np.int64)
    return keep[np.lexsort((keep, -scores[keep]))]


class _ImageBuffer:
    __slots__ = ("boxes", "scores", "classes", "rows", "patches", "limit")

    def __init__(self, limit: int):
        self.boxes: list[np.ndarray] = []
        self.scores: list[np.ndarray] = []
        self.classes: list[np.ndarray] = []
        self.rows = 0
        self.patches = 0
        self.limit = limit


class PatchMerger:
    """Collects patch detections and merges them per full image with class-wise rotated NMS.

    Example::

        merger = PatchMerger(iou_threshold=0.1, expected_patches={"P0706": 4})
        for name, inst in patch_predictions:  # e.g. "P0706__1.0__0___824", Instances
            merger.add(name, inst.pred_boxes.tensor, inst.scores, inst.pred_classes)
            for image_name, dets in merger.pop_finished().items():
                ...  # dets: MergedDetections in full-image pixels
        for image_name, dets in merger.finish().items():
            ...  # images whose patch count was not known or not reached

    Args:
        iou_threshold: IoU above which NMS removes the lower-scored box of the same class.
        expected_patches: number of patches of each full image (e.g. counted from the patch
            dataset's file names). An image is merged and released when its count is reached.
        compact_size: an image's buffer is compacted by NMS when it holds more detections.
        score_threshold: detections scoring lower are dropped when added.
        max_dets_per_image: keep at most this many detections per image after merging (None: all).
        parse_name: ``patch_name -> (image_name, rate, x, y)``; default
            :func:`rotated_det.structures.dota_patch_name.parse_patch_name`.
        nms: ``(boxes float32 [N,5], scores [N], classes int64 [N], iou) -> kept indices`` sorted
            by decreasing score; default: the compiled ``nms_rotated`` per class (the result of
            ``batched_nms_rotated``).
    """

    def __init__(
        self,
        iou_threshold: float = 0.1,
        *,
        expected_patches: Mapping[str, int] | None = None,
        compact_size: int = 200_000,
        score_threshold: float = 0.0,
        max_dets_per_image: int | None = None,
        parse_name: Callable[[str], tuple[str, float, int, int]] | None = None,
        nms: Callable | None = None,
    ):
        if parse_name is None:
            parse_name = parse_patch_name
        if compact_size < 1:
            raise ValueError(f"PatchMerger: compact_size must be >= 1, got {compact_size}")
        self.iou_threshold = float(iou_threshold)
        self.expected_patches = dict(expected_patches) if expected_patches is not None else None
        self.compact_size = int(compact_size)
        self.score_threshold = float(score_threshold)
        self.max_dets_per_image = max_dets_per_image
        self._parse_name = parse_name
        self._nms = nms if nms is not None else _classwise_nms
        self._buffers: dict[str, _ImageBuffer] = {}
        self._finished: dict[str, MergedDetections] = {}
        self._done_images: set[str] = set()
        self.num_patches = 0
        self.num_compactions = 0

    # -- public API --------------------------------------------------------------------------
    def add(self, patch_name: str, boxes, scores, classes) -> str:
        """Add the detections of one patch.

        Args:
            patch_name: ``NAME__RATE__X___Y`` (directory and extension are ignored).
            boxes: float [N, 5] rotated boxes in patch pixels (numpy or torch).
            scores: float [N].
            classes: int [N].

        Returns:
            The full image's name.
        """
        image_name, rate, x, y = self._parse_name(strip_image_extension(patch_name))
        if image_name in self._done_images:
            raise RuntimeError(
                f"PatchMerger: patch '{patch_name}' arrived after image '{image_name}' was "
                f"already merged (it has more patches than expected_patches says)"
            )
        scores = _to_numpy(scores, np.float32).reshape(-1)
        classes = _to_numpy(classes, np.int64).reshape(-1)
        boxes = patch_boxes_to_image(boxes, rate, x, y)
        if not (len(boxes) == len(scores) == len(classes)):
            raise ValueError(
                f"PatchMerger.add('{patch_name}'): boxes, scores and classes have "
                f"{len(boxes)}, {len(scores)}, {len(classes)} rows"
            )
        if self.score_threshold > 0:
            keep = scores >= self.score_threshold
            boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
        buf = self._buffers.get(image_name)
        if buf is None:
            buf = self._buffers[image_name] = _ImageBuffer(self.compact_size)
        buf.boxes.append(boxes)
        buf.scores.append(scores)
        buf.classes.append(classes)
        buf.rows += len(scores)
        buf.patches += 1
        self.num_patches += 1
        expected = self.expected_patches.get(image_name) if self.expected_patches else None
        if expected is not None and buf.patches >= expected:
            self._finished[image_name] = self._merge(self._buffers.pop(image_name), final=True)
            self._done_images.add(image_name)
        elif buf.rows > buf.limit:
            self._merge(buf, final=False)
        return image_name

    def pop_finished(self) -> dict[str, MergedDetections]:
        """Images merged since the last call (their last expected patch arrived)."""
        out, self._finished = self._finished, {}
        return out

    def finish(self) -> dict[str, MergedDetections]:
        """Merge and return every image still buffered, plus those finished and not yet popped.
        The merger is empty afterwards."""
        out = self.pop_finished()
        for name in list(self._buffers):
            out[name] = self._merge(self._buffers.pop(name), final=True)
            self._done_images.add(name)
        return out

    @property
    def num_buffered_detections(self) -> int:
        """Raw (not yet merged) detections held right now."""
        return sum(b.rows for b in self._buffers.values())

    # -- internals ---------------------------------------------------------------------------
    def _merge(self, buf: _ImageBuffer, final: bool) -> MergedDetections:
        if buf.rows == 0:
            merged = MergedDetections.empty()
        else:
            boxes = np.concatenate(buf.boxes) if len(buf.boxes) > 1 else buf.boxes[0]
            scores = np.concatenate(buf.scores) if len(buf.scores) > 1 else buf.scores[0]
            classes = np.concatenate(buf.classes) if len(buf.classes) > 1 else buf.classes[0]
            keep = self._nms(boxes, scores, classes, self.iou_threshold)
            if final and self.max_dets_per_image is not None:
                keep = keep[: self.max_dets_per_image]
            merged = MergedDetections(boxes[keep], scores[keep], classes[keep])
        if not final:
            self.num_compactions += 1
            buf.boxes, buf.scores, buf.classes = [merged.boxes], [merged.scores], [merged.classes]
            buf.rows = len(merged)
            # If NMS could not shrink the buffer much, raise this image's limit so that we do not
            # compact again after every patch.
            buf.limit = max(buf.limit, 2 * buf.rows)
        return merged


def _to_numpy(x, dtype) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)

"""Shared parts of the augmentations that mix several images (:class:`CachedMosaic`,
:class:`CachedMixUp`): the labelled image they pass around, their cache of recent images, and the
rule that decides which objects of a source image survive when only a window of it is kept.

The window rule is the DOTA split tool's (:func:`rotated_det.data.dota_split.
assign_objects_to_windows`): an object is kept when at least ``iof_thr`` of its area lies inside
the window; an object wholly inside keeps its box exactly, an object cut by the window border is
replaced by the minimum-area rectangle of its visible part.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from rotated_det.data.dota_split import assign_objects_to_windows
from rotated_det.structures import poly_to_rbox, rbox_to_poly

__all__ = ["LabeledImage", "ImageCache", "objects_in_window"]


@dataclass
class LabeledImage:
    """An image and its objects, as the mapper holds them between reading and batching.

    Attributes:
        image: ``H x W x C`` numpy image (uint8 as read, or float).
        boxes: ``[N, 5]`` float64 rotated boxes ``(cx, cy, w, h, angle)``, pixels and degrees
            (XYWHA_ABS, the project convention).
        classes: ``[N]`` int64 category ids.
        difficult: ``[N]`` int64 difficult flags (0 / 1).
    """

    image: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray
    difficult: np.ndarray

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 5)
        self.classes = np.asarray(self.classes, dtype=np.int64).reshape(-1)
        self.difficult = np.asarray(self.difficult, dtype=np.int64).reshape(-1)
        if not (len(self.boxes) == len(self.classes) == len(self.difficult)):
            raise ValueError(
                f"LabeledImage: boxes ({len(self.boxes)}), classes ({len(self.classes)}) and "
                f"difficult ({len(self.difficult)}) must have the same length"
            )
        if self.image.ndim != 3:
            raise ValueError(f"LabeledImage needs an H x W x C image, got {self.image.shape}")

    def select(self, keep: np.ndarray) -> LabeledImage:
        """The same image with the objects ``keep`` (bool mask or indices) only."""
        return LabeledImage(self.image, self.boxes[keep], self.classes[keep], self.difficult[keep])


class ImageCache:
    """The last ``max_size`` labelled images pushed, oldest dropped first.

    First in, first out (MMDetection's caches can also drop a random entry): the content is then a
    function of the last ``max_size`` images only, which lets the training loader rebuild it
    exactly on resume by mapping those images again (see ``TrainBatchStream``).
    """

    def __init__(self, max_size: int):
        if int(max_size) != max_size or max_size < 1:
            raise ValueError(f"max_cached_images must be a positive integer, got {max_size!r}")
        self.max_size = int(max_size)
        self._items: deque[LabeledImage] = deque(maxlen=self.max_size)

    def __getstate__(self) -> dict:
        # A copy sent to a data loader worker (pickled) starts empty.
        return {"max_size": self.max_size, "_items": deque(maxlen=self.max_size)}

    def push(self, item: LabeledImage) -> None:
        self._items.append(item)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i: int) -> LabeledImage:
        return self._items[i]

    def draw(self, n: int) -> list[LabeledImage]:
        """``n`` entries drawn uniformly with replacement (numpy's global generator, which the
        training loader seeds per image)."""
        idx = np.random.randint(0, len(self._items), size=n)
        return [self._items[int(i)] for i in idx]


def objects_in_window(
    boxes: np.ndarray,
    window: tuple[float, float, float, float],
    iof_thr: float,
    image_size: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """The objects of an image that a window of it keeps, by the split tool's rule.

    Args:
        boxes: ``[N, 5]`` rotated boxes in the image's pixels.
        window: ``(x0, y0, x1, y1)`` pixels of the image.
        iof_thr: minimum fraction of an object's area inside the window.
        image_size: ``(height, width)`` of the image; the window is cut to it first, as in the
            split tool (the parts of objects outside their own image do not count).
    Returns:
        ``(index [M] int64, boxes [M, 5])``: kept objects in increasing index order and their
        boxes, still in the image's coordinates: unchanged for objects wholly inside the window,
        the minimum-area rectangle of the visible part (angle version "le90") for cut ones.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
    if len(b) == 0:
        return np.zeros(0, np.int64), b
    polys = rbox_to_poly(b).reshape(-1, 8)
    h, w = image_size
    x0, y0 = max(window[0], 0.0), max(window[1], 0.0)
    x1, y1 = min(window[2], w), min(window[3], h)
    xs, ys = polys[:, 0::2], polys[:, 1::2]
    lo_x, hi_x, lo_y, hi_y = xs.min(1), xs.max(1), ys.min(1), ys.max(1)
    # Objects wholly inside keep their box (the split tool's first test, done here so that only
    # the objects that cross the border go through its clipping and minimum-area rectangles).
    inside = (lo_x >= x0) & (hi_x <= x1) & (lo_y >= y0) & (hi_y <= y1)
    crossing = ~inside & (lo_x < x1) & (hi_x > x0) & (lo_y < y1) & (hi_y > y0)
    keep = np.zeros(len(b), dtype=bool)
    keep[inside] = True
    out = b.copy()
    cross_idx = np.nonzero(crossing)[0]
    if len(cross_idx):
        found = assign_objects_to_windows(
            polys[cross_idx], np.asarray([window], dtype=np.float64), iof_thr, image_size
        )
        kept = cross_idx[found.obj_idx]
        keep[kept] = True
        cut = found.clipped
        out[kept[~cut]] = b[kept[~cut]]
        if cut.any():
            out[kept[cut]] = poly_to_rbox(found.polys[cut])
    idx = np.nonzero(keep)[0].astype(np.int64)
    return idx, out[idx]

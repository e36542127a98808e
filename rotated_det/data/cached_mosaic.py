"""``CachedMosaic``: four images in one, the second to fourth drawn from a cache of recent images
(YOLOv4's mosaic as MMDetection's ``CachedMosaic`` does it, for rotated boxes)."""

from __future__ import annotations

import numpy as np

from rotated_det.data.image_mixing import ImageCache, LabeledImage, objects_in_window
from rotated_det.data.transforms import ResizeTransform

__all__ = ["CachedMosaic"]


class CachedMosaic:
    """Put an image and three images from a cache of recent ones on a ``2H x 2W`` canvas.

    Each call first pushes its input into the cache. Unless the cache holds more than 4 images
    (the first images of a run) or a draw fails ``prob``, the input is returned unchanged.
    Otherwise:

    1. a mosaic centre ``(xc, yc)`` is drawn uniformly in ``[W/2, 3W/2] x [H/2, 3H/2]``;
    2. each of the four images (the input, then three drawn from the cache with replacement) is
       scaled, keeping its aspect ratio, to fit ``H x W`` and placed in one quadrant around the
       centre, touching it: the input at the top left, then top right, bottom left, bottom right;
       what does not fit on the canvas is cut off, the rest of the canvas is ``pad_value``;
    3. each image's objects follow the DOTA split tool's rule for the part of it that is visible
       (:func:`rotated_det.data.image_mixing.objects_in_window`): kept when at least ``iof_thr``
       of their area is visible, unchanged when wholly visible, the minimum-area rectangle of the
       visible part when cut.

    Boxes are rotated boxes in pixels (XYWHA_ABS); box ``i`` of a tile moves with its pixels
    exactly (a uniform scale, then a translation).

    Args:
        image_size: ``(H, W)`` of one quadrant (an int: square); the output is ``2H x 2W``.
        max_cached_images: cache size (first in, first out; see :class:`ImageCache`).
        prob: probability of a mosaic once the cache is full enough.
        pad_value: canvas value where no image lands (MMDetection: 114).
        iof_thr: visibility threshold of cut objects (the split tool's default, 0.7).
    """

    def __init__(
        self,
        image_size: int | tuple[int, int] = 1024,
        max_cached_images: int = 40,
        prob: float = 1.0,
        pad_value: float = 114.0,
        iof_thr: float = 0.7,
    ):
        if isinstance(image_size, int):
            image_size = (image_size, image_size)
        if len(image_size) != 2 or min(image_size) <= 0:
            raise ValueError(f"CachedMosaic: image_size must be (H, W) > 0, got {image_size!r}")
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"CachedMosaic: prob must lie in [0, 1], got {prob}")
        if not 0.0 < iof_thr <= 1.0:
            raise ValueError(f"CachedMosaic: iof_thr must lie in (0, 1], got {iof_thr}")
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.max_cached_images = int(max_cached_images)
        self.prob = prob
        self.pad_value = pad_value
        self.iof_thr = iof_thr
        self.cache = ImageCache(max_cached_images)

    def __repr__(self) -> str:
        return (
            f"CachedMosaic(image_size={self.image_size}, max_cached_images="
            f"{self.max_cached_images}, prob={self.prob}, pad_value={self.pad_value}, "
            f"iof_thr={self.iof_thr})"
        )

    def __call__(self, sample: LabeledImage) -> tuple[LabeledImage, int]:
        """Returns ``(mosaic or the input itself, number of objects left out by the window
        rule)``."""
        self.cache.push(sample)
        if len(self.cache) <= 4:
            return sample, 0
        if np.random.uniform(0, 1) > self.prob:
            return sample, 0
        tiles = [sample, *self.cache.draw(3)]
        return self.combine(tiles, self._draw_center())

    def _draw_center(self) -> tuple[float, float]:
        h, w = self.image_size
        xc = float(np.random.uniform(0.5 * w, 1.5 * w))
        yc = float(np.random.uniform(0.5 * h, 1.5 * h))
        return xc, yc

    def combine(
        self, tiles: list[LabeledImage], center: tuple[float, float]
    ) -> tuple[LabeledImage, int]:
        """The mosaic of four ``tiles`` (top left, top right, bottom left, bottom right) around
        ``center = (xc, yc)`` (pixels of the ``2H x 2W`` canvas; rounded down to whole pixels).
        Returns the mosaic and the number of objects left out."""
        if len(tiles) != 4:
            raise ValueError(f"CachedMosaic.combine needs 4 tiles, got {len(tiles)}")
        h, w = self.image_size
        xc, yc = int(center[0]), int(center[1])
        channels = {t.image.shape[2] for t in tiles}
        if len(channels) != 1:
            raise ValueError(f"CachedMosaic: the tiles have different channel counts {channels}")
        canvas = np.full((2 * h, 2 * w, channels.pop()), self.pad_value, dtype=tiles[0].image.dtype)
        boxes, classes, difficult = [], [], []
        dropped = 0
        for quadrant, tile in enumerate(tiles):
            th, tw = tile.image.shape[:2]
            scale = min(h / th, w / tw)
            nh, nw = max(1, int(th * scale)), max(1, int(tw * scale))
            resize = ResizeTransform(th, tw, nh, nw)
            image = resize.apply_image(tile.image)
            if image.ndim == 2:
                image = image[:, :, None]
            # canvas region (x0, y0, x1, y1) and the part (sx0, sy0) of the scaled tile it shows
            left, top = quadrant in (0, 2), quadrant in (0, 1)
            x0, x1 = (max(xc - nw, 0), xc) if left else (xc, min(xc + nw, 2 * w))
            y0, y1 = (max(yc - nh, 0), yc) if top else (yc, min(yc + nh, 2 * h))
            sx0 = nw - (x1 - x0) if left else 0
            sy0 = nh - (y1 - y0) if top else 0
            canvas[y0:y1, x0:x1] = image[sy0 : sy0 + (y1 - y0), sx0 : sx0 + (x1 - x0)]
            window = (sx0, sy0, sx0 + (x1 - x0), sy0 + (y1 - y0))
            keep, kept_boxes = objects_in_window(
                resize.apply_rotated_box(tile.boxes), window, self.iof_thr, (nh, nw)
            )
            kept_boxes[:, 0] += x0 - sx0
            kept_boxes[:, 1] += y0 - sy0
            boxes.append(kept_boxes)
            classes.append(tile.classes[keep])
            difficult.append(tile.difficult[keep])
            dropped += len(tile.boxes) - len(keep)
        out = LabeledImage(
            canvas, np.concatenate(boxes), np.concatenate(classes), np.concatenate(difficult)
        )
        return out, dropped

    def reset(self) -> None:
        """Empty the cache."""
        self.cache.clear()

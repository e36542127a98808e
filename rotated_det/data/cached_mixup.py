"""``CachedMixUp``: blend an image with one drawn from a cache of recent images (Zhang et al.'s
mixup for detection, as MMDetection's ``CachedMixUp`` does it, for rotated boxes)."""

from __future__ import annotations

import cv2
import numpy as np

from rotated_det.data.image_mixing import ImageCache, LabeledImage, objects_in_window
from rotated_det.data.transforms import HFlipTransform, ResizeTransform

__all__ = ["CachedMixUp"]


class CachedMixUp:
    """Blend an image half and half with another one from a cache of recent images.

    Each call first pushes its input into the cache. Unless the cache holds more than one image
    and a draw passes ``prob``, the input is returned unchanged; it is also returned unchanged
    when the drawn image has no objects. Otherwise, with the input of size ``H0 x W0``:

    1. the drawn image is scaled, keeping its aspect ratio, to fit ``image_size``, times a
       factor drawn uniformly in ``ratio_range``, and flipped left-right with probability
       ``flip_prob``; call its size ``h x w``;
    2. a window of ``H0 x W0`` is laid over it at an offset drawn uniformly in
       ``[0, max(w - W0, 0)] x [0, max(h - H0, 0)]``; where the window leaves the drawn image
       (it is smaller than the input) the value is ``pad_value``;
    3. output pixels = ``0.5 * input + 0.5 * window`` (rounded to the nearest integer for
       integer images); output objects = the input's, then those of the drawn image that the
       window keeps by the DOTA split tool's rule (:func:`rotated_det.data.image_mixing.
       objects_in_window`), moved into the window's coordinates.

    Args:
        image_size: ``(H, W)`` the drawn image is fitted to (an int: square).
        ratio_range: ``(min, max)`` extra scale factor (RTMDet: ``(1.0, 1.0)``).
        flip_prob: probability of a left-right flip of the drawn image.
        max_cached_images: cache size (first in, first out; see :class:`ImageCache`).
        prob: probability of a mixup once the cache holds two images.
        pad_value: value where the window leaves the drawn image (MMDetection: 114).
        iof_thr: visibility threshold of objects cut by the window (the split tool's 0.7).
    """

    def __init__(
        self,
        image_size: int | tuple[int, int] = 1024,
        ratio_range: tuple[float, float] = (0.5, 1.5),
        flip_prob: float = 0.5,
        max_cached_images: int = 20,
        prob: float = 1.0,
        pad_value: float = 114.0,
        iof_thr: float = 0.7,
    ):
        if isinstance(image_size, int):
            image_size = (image_size, image_size)
        if len(image_size) != 2 or min(image_size) <= 0:
            raise ValueError(f"CachedMixUp: image_size must be (H, W) > 0, got {image_size!r}")
        if len(ratio_range) != 2 or not 0 < ratio_range[0] <= ratio_range[1]:
            raise ValueError(
                f"CachedMixUp: ratio_range must be (min, max) with 0 < min <= max, got "
                f"{ratio_range!r}"
            )
        for name, p in (("prob", prob), ("flip_prob", flip_prob)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"CachedMixUp: {name} must lie in [0, 1], got {p}")
        if not 0.0 < iof_thr <= 1.0:
            raise ValueError(f"CachedMixUp: iof_thr must lie in (0, 1], got {iof_thr}")
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.ratio_range = (float(ratio_range[0]), float(ratio_range[1]))
        self.flip_prob = flip_prob
        self.max_cached_images = int(max_cached_images)
        self.prob = prob
        self.pad_value = pad_value
        self.iof_thr = iof_thr
        self.cache = ImageCache(max_cached_images)

    def __repr__(self) -> str:
        return (
            f"CachedMixUp(image_size={self.image_size}, ratio_range={self.ratio_range}, "
            f"flip_prob={self.flip_prob}, max_cached_images={self.max_cached_images}, "
            f"prob={self.prob}, pad_value={self.pad_value}, iof_thr={self.iof_thr})"
        )

    def __call__(self, sample: LabeledImage) -> tuple[LabeledImage, int]:
        """Returns ``(blend or the input itself, number of objects of the drawn image left out
        by the window rule)``."""
        self.cache.push(sample)
        if len(self.cache) <= 1 or np.random.uniform(0, 1) > self.prob:
            return sample, 0
        other = self.cache.draw(1)[0]
        if len(other.boxes) == 0:
            return sample, 0
        scale = float(np.random.uniform(*self.ratio_range))
        flip = bool(np.random.uniform(0, 1) < self.flip_prob)
        h0, w0 = sample.image.shape[:2]
        oh, ow = other.image.shape[:2]
        fit = min(self.image_size[0] / oh, self.image_size[1] / ow) * scale
        nh, nw = max(1, int(oh * fit)), max(1, int(ow * fit))
        x_off = int(np.random.randint(0, max(nw - w0, 0) + 1))
        y_off = int(np.random.randint(0, max(nh - h0, 0) + 1))
        return self.blend(sample, other, (nh, nw), flip, (x_off, y_off))

    def blend(
        self,
        sample: LabeledImage,
        other: LabeledImage,
        size: tuple[int, int],
        flip: bool,
        offset: tuple[int, int],
    ) -> tuple[LabeledImage, int]:
        """``sample`` blended with ``other`` resized to ``size = (h, w)``, flipped left-right if
        ``flip``, seen through a window of ``sample``'s size at ``offset = (x, y)`` (pixels of
        the resized image). Returns the blend and the number of objects of ``other`` left out."""
        if other.image.shape[2] != sample.image.shape[2]:
            raise ValueError(
                f"CachedMixUp: images with {sample.image.shape[2]} and {other.image.shape[2]} "
                "channels cannot be blended"
            )
        h0, w0 = sample.image.shape[:2]
        nh, nw = size
        x_off, y_off = offset
        resize = ResizeTransform(other.image.shape[0], other.image.shape[1], nh, nw)
        image = resize.apply_image(other.image)
        boxes = resize.apply_rotated_box(other.boxes)
        if flip:
            hflip = HFlipTransform(nw)
            image = hflip.apply_image(image)
            boxes = hflip.apply_rotated_box(boxes)
        if image.ndim == 2:
            image = image[:, :, None]
        dtype = sample.image.dtype
        window = np.full((h0, w0, image.shape[2]), self.pad_value, dtype=dtype)
        part = image[y_off : y_off + h0, x_off : x_off + w0]
        window[: part.shape[0], : part.shape[1]] = part
        if dtype == np.uint8:  # OpenCV: one pass, rounds half to even and saturates
            mixed = cv2.addWeighted(sample.image, 0.5, window, 0.5, 0.0).reshape(window.shape)
        else:
            mixed = 0.5 * sample.image.astype(np.float64) + 0.5 * window
            if np.issubdtype(dtype, np.integer):
                info = np.iinfo(dtype)
                mixed = np.clip(np.rint(mixed), info.min, info.max)
        keep, kept = objects_in_window(
            boxes, (x_off, y_off, x_off + w0, y_off + h0), self.iof_thr, (nh, nw)
        )
        kept[:, 0] -= x_off
        kept[:, 1] -= y_off
        out = LabeledImage(
            mixed.astype(dtype, copy=False),
            np.concatenate([sample.boxes, kept]),
            np.concatenate([sample.classes, other.classes[keep]]),
            np.concatenate([sample.difficult, other.difficult[keep]]),
        )
        return out, len(other.boxes) - len(keep)

    def reset(self) -> None:
        """Empty the cache."""
        self.cache.clear()

"""Concrete augmentations (Detectron2 names where Detectron2 has the concept)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import cv2
import numpy as np
from fvcore.transforms.transform import NoOpTransform, Transform

from .augmentation import AugInput, Augmentation
from .transform import (
    ColorTransform,
    CropTransform,
    DiagonalFlipTransform,
    HFlipTransform,
    ResizeTransform,
    Rot90Transform,
    RotationTransform,
    VFlipTransform,
)

__all__ = [
    "ResizeShortestEdge",
    "ResizeScale",
    "Resize",
    "RandomFlip",
    "RandomRot90",
    "RandomRotation",
    "RandomCrop",
    "RandomBrightness",
    "RandomContrast",
    "RandomSaturation",
    "ColorJitter",
]


class Resize(Augmentation):
    """Resize to a fixed ``(h, w)`` (an int gives a square)."""

    def __init__(self, shape: int | tuple[int, int], interp: int = cv2.INTER_LINEAR):
        if isinstance(shape, int):
            shape = (shape, shape)
        self.shape = tuple(shape)
        self.interp = interp

    def get_transform(self, image: np.ndarray) -> Transform:
        h, w = image.shape[:2]
        return ResizeTransform(h, w, self.shape[0], self.shape[1], self.interp)


class ResizeShortestEdge(Augmentation):
    """Scale the image (keeping its aspect ratio) so that its shorter side is a length drawn
    from ``short_edge_length`` ("choice": one of the values; "range": uniform in [min, max]),
    unless the longer side would then exceed ``max_size``."""

    def __init__(
        self,
        short_edge_length: int | Sequence[int],
        max_size: int = sys.maxsize,
        sample_style: str = "range",
        interp: int = cv2.INTER_LINEAR,
    ):
        if sample_style not in ("range", "choice"):
            raise ValueError(f"sample_style must be 'range' or 'choice', got {sample_style!r}")
        if isinstance(short_edge_length, int):
            short_edge_length = (short_edge_length, short_edge_length)
        if sample_style == "range" and len(short_edge_length) != 2:
            raise ValueError(
                f"sample_style='range' needs (min, max) short edge lengths, got {short_edge_length}"
            )
        self.short_edge_length = tuple(short_edge_length)
        self.max_size = max_size
        self.sample_style = sample_style
        self.interp = interp

    @staticmethod
    def get_output_shape(h: int, w: int, short_edge: int, max_size: int) -> tuple[int, int]:
        scale = short_edge / min(h, w)
        nh, nw = h * scale, w * scale
        if max(nh, nw) > max_size:
            s = max_size / max(nh, nw)
            nh, nw = nh * s, nw * s
        return int(nh + 0.5), int(nw + 0.5)

    def get_transform(self, image: np.ndarray) -> Transform:
        h, w = image.shape[:2]
        if self.sample_style == "range":
            size = int(np.random.randint(self.short_edge_length[0], self.short_edge_length[1] + 1))
        else:
            size = int(np.random.choice(self.short_edge_length))
        if size == 0:
            return NoOpTransform()
        nh, nw = self.get_output_shape(h, w, size, self.max_size)
        return ResizeTransform(h, w, nh, nw, self.interp)


class ResizeScale(Augmentation):
    """Large-scale jitter (Detectron2's ``ResizeScale``; MMDetection's ``RandomResize`` with
    ``keep_ratio``): draw ``s`` uniformly in ``[min_scale, max_scale]`` and scale the image,
    keeping its aspect ratio, to the largest size that fits ``s * (target_height, target_width)``.
    Rounded to whole pixels, so the x and y factors may differ by a fraction of a pixel."""

    def __init__(
        self,
        min_scale: float,
        max_scale: float,
        target_height: int,
        target_width: int,
        interp: int = cv2.INTER_LINEAR,
    ):
        if not 0 < min_scale <= max_scale:
            raise ValueError(
                f"ResizeScale needs 0 < min_scale <= max_scale, got {min_scale}, {max_scale}"
            )
        if target_height <= 0 or target_width <= 0:
            raise ValueError(
                f"ResizeScale: target_height/target_width must be > 0, got "
                f"{target_height}, {target_width}"
            )
        self.min_scale = min_scale
        self.max_scale = max_scale
        self.target_height = target_height
        self.target_width = target_width
        self.interp = interp

    def get_transform(self, image: np.ndarray) -> Transform:
        h, w = image.shape[:2]
        s = float(np.random.uniform(self.min_scale, self.max_scale))
        scale = min(s * self.target_height / h, s * self.target_width / w)
        nh, nw = max(1, int(h * scale + 0.5)), max(1, int(w * scale + 0.5))
        return ResizeTransform(h, w, nh, nw, self.interp)


class RandomFlip(Augmentation):
    """Flip with probability ``prob``; exactly one of ``horizontal``, ``vertical``, ``diagonal``
    (both axes) must be True."""

    def __init__(
        self,
        prob: float = 0.5,
        *,
        horizontal: bool = True,
        vertical: bool = False,
        diagonal: bool = False,
    ):
        if horizontal + vertical + diagonal != 1:
            raise ValueError("RandomFlip: set exactly one of horizontal, vertical, diagonal")
        self.prob = prob
        self.horizontal = horizontal
        self.vertical = vertical
        self.diagonal = diagonal

    def get_transform(self, image: np.ndarray) -> Transform:
        h, w = image.shape[:2]
        if self._rand_range() >= self.prob:
            return NoOpTransform()
        if self.horizontal:
            return HFlipTransform(w)
        if self.vertical:
            return VFlipTransform(h)
        return DiagonalFlipTransform(h, w)


class RandomRot90(Augmentation):
    """With probability ``prob``, rotate by ``k * 90`` degrees, ``k`` drawn from ``ks``."""

    def __init__(self, prob: float = 0.5, ks: Sequence[int] = (1, 2, 3)):
        self.prob = prob
        self.ks = tuple(ks)

    def get_transform(self, image: np.ndarray) -> Transform:
        h, w = image.shape[:2]
        if self._rand_range() >= self.prob:
            return NoOpTransform()
        return Rot90Transform(h, w, int(np.random.choice(self.ks)))


class RandomRotation(Augmentation):
    """Rotate by an angle (degrees, counter-clockwise) drawn from ``angle``: ``[min, max]`` with
    ``sample_style="range"``, a list of values with "choice". Applied with probability ``prob``.

    With ``expand=True`` (default, as in Detectron2) the output grows to hold the whole rotated
    image; with ``expand=False`` it keeps the input size and the corners are cut. Boxes are
    rotated exactly; those leaving the image are clipped or dropped later by the mapper
    (``DatasetMapper(min_visible_fraction=...)``).

    ``rect_classes`` (MMRotate's ``rect_obj_labels``): category ids of objects whose labels are
    axis-aligned by convention because their shape has no orientation (DOTA's storage tank and
    roundabout: round). An image that holds any of them is rotated by an angle drawn from
    ``(90, 180, -90, -180)`` instead (when it is rotated at all, still with probability
    ``prob``), so that their boxes stay axis-aligned. The classes are read from the
    :class:`AugInput` (``classes``), which the dataset mapper fills.
    """

    RECT_ANGLES = (90.0, 180.0, -90.0, -180.0)

    def __init__(
        self,
        angle: float | Sequence[float] = (-180.0, 180.0),
        expand: bool = True,
        center: tuple[float, float] | None = None,
        sample_style: str = "range",
        prob: float = 1.0,
        interp: int = cv2.INTER_LINEAR,
        border_value: float = 0,
        rect_classes: Sequence[int] = (),
    ):
        if sample_style not in ("range", "choice"):
            raise ValueError(f"sample_style must be 'range' or 'choice', got {sample_style!r}")
        if isinstance(angle, (int, float)):
            angle = (angle, angle)
        self.angle = tuple(angle)
        self.expand = expand
        self.center = center
        self.sample_style = sample_style
        self.prob = prob
        self.interp = interp
        self.border_value = border_value
        self.rect_classes = tuple(int(c) for c in rect_classes)

    def __call__(self, aug_input: AugInput) -> Transform:
        holds_rect = False
        if self.rect_classes:
            if aug_input.classes is None:
                raise ValueError(
                    "RandomRotation(rect_classes=...) needs the category ids of the boxes: pass "
                    "AugInput(image, boxes=..., classes=...) (DatasetMapper does)"
                )
            holds_rect = bool(np.isin(np.asarray(aug_input.classes), self.rect_classes).any())
        tfm = self.get_transform(aug_input.image, quarter_turns_only=holds_rect)
        aug_input.transform(tfm)
        return tfm

    def get_transform(self, image: np.ndarray, quarter_turns_only: bool = False) -> Transform:
        """The rotation of ``image``; by a multiple of 90 degrees only if ``quarter_turns_only``
        (the draw of whether to rotate comes first, with the same random numbers either way)."""
        h, w = image.shape[:2]
        if self._rand_range() >= self.prob:
            return NoOpTransform()
        if self.sample_style == "range":
            a = float(np.random.uniform(self.angle[0], self.angle[1]))
        else:
            a = float(np.random.choice(self.angle))
        if quarter_turns_only:
            a = float(np.random.choice(self.RECT_ANGLES))
        if a % 360 == 0:
            return NoOpTransform()
        return RotationTransform(
            h,
            w,
            a,
            expand=self.expand,
            center=self.center,
            interp=self.interp,
            border_value=self.border_value,
        )


class RandomCrop(Augmentation):
    """Crop a random window. ``crop_type``:

    - "relative": ``(H * crop_size[0], W * crop_size[1])``;
    - "relative_range": uniform in ``[crop_size[i], 1]`` of each side;
    - "absolute": ``crop_size`` pixels ``(h, w)`` (at most the image);
    - "absolute_range": ``h`` in ``[crop_size[0], crop_size[1]]``, same range for ``w``.
    """

    def __init__(self, crop_type: str, crop_size: Sequence[float]):
        if crop_type not in ("relative", "relative_range", "absolute", "absolute_range"):
            raise ValueError(f"Unknown crop_type {crop_type!r}")
        self.crop_type = crop_type
        self.crop_size = tuple(crop_size)

    def get_crop_size(self, h: int, w: int) -> tuple[int, int]:
        t, cs = self.crop_type, self.crop_size
        if t == "relative":
            return int(h * cs[0] + 0.5), int(w * cs[1] + 0.5)
        if t == "relative_range":
            r = np.asarray(cs, dtype=np.float64)
            ch, cw = r + np.random.rand(2) * (1 - r)
            return int(h * ch + 0.5), int(w * cw + 0.5)
        if t == "absolute":
            return min(int(cs[0]), h), min(int(cs[1]), w)
        lo, hi = int(cs[0]), int(cs[1])
        ch = np.random.randint(min(h, lo), min(h, hi) + 1)
        cw = np.random.randint(min(w, lo), min(w, hi) + 1)
        return int(ch), int(cw)

    def get_transform(self, image: np.ndarray) -> Transform:
        h, w = image.shape[:2]
        ch, cw = self.get_crop_size(h, w)
        y0 = np.random.randint(h - ch + 1)
        x0 = np.random.randint(w - cw + 1)
        return CropTransform(int(x0), int(y0), cw, ch, w, h)


def _blend(img: np.ndarray, other, alpha: float) -> np.ndarray:
    out = img.astype(np.float32) * alpha + np.asarray(other, dtype=np.float32) * (1 - alpha)
    if img.dtype == np.uint8:
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return out.astype(img.dtype)


class RandomBrightness(Augmentation):
    """Multiply intensities by a factor uniform in ``[intensity_min, intensity_max]``."""

    def __init__(self, intensity_min: float, intensity_max: float):
        self.intensity_min = intensity_min
        self.intensity_max = intensity_max

    def get_transform(self, image: np.ndarray) -> Transform:
        a = float(np.random.uniform(self.intensity_min, self.intensity_max))
        return ColorTransform(lambda img: _blend(img, 0.0, a))


class RandomContrast(Augmentation):
    """Blend with the image's mean intensity by a factor uniform in the given range."""

    def __init__(self, intensity_min: float, intensity_max: float):
        self.intensity_min = intensity_min
        self.intensity_max = intensity_max

    def get_transform(self, image: np.ndarray) -> Transform:
        a = float(np.random.uniform(self.intensity_min, self.intensity_max))
        mean = float(image.mean())
        return ColorTransform(lambda img: _blend(img, mean, a))


class RandomSaturation(Augmentation):
    """Blend a 3-channel image with its grayscale by a factor uniform in the given range
    (channel order does not matter much: BGR and RGB weights are symmetric enough)."""

    def __init__(self, intensity_min: float, intensity_max: float, image_format: str = "BGR"):
        self.intensity_min = intensity_min
        self.intensity_max = intensity_max
        self.image_format = image_format

    def get_transform(self, image: np.ndarray) -> Transform:
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"RandomSaturation needs an HxWx3 image, got {image.shape}")
        a = float(np.random.uniform(self.intensity_min, self.intensity_max))
        wts = np.array([0.114, 0.587, 0.299], np.float32)
        if self.image_format == "RGB":
            wts = wts[::-1].copy()

        def op(img):
            gray = (img.astype(np.float32) @ wts)[..., None]
            return _blend(img, gray, a)

        return ColorTransform(op)


class ColorJitter(Augmentation):
    """Brightness, contrast and saturation jitter in random order; each factor is uniform in
    ``[1 - x, 1 + x]`` (``x = 0`` disables it)."""

    def __init__(
        self,
        brightness: float = 0.2,
        contrast: float = 0.2,
        saturation: float = 0.2,
        image_format: str = "BGR",
    ):
        self.brightness = brightness
        self.contrast = contrast
        self.saturation = saturation
        self.image_format = image_format

    def get_transform(self, image: np.ndarray) -> Transform:
        augs: list[Augmentation] = []
        if self.brightness:
            augs.append(RandomBrightness(1 - self.brightness, 1 + self.brightness))
        if self.contrast:
            augs.append(RandomContrast(1 - self.contrast, 1 + self.contrast))
        if self.saturation and image.ndim == 3 and image.shape[2] == 3:
            augs.append(
                RandomSaturation(1 - self.saturation, 1 + self.saturation, self.image_format)
            )
        order = np.random.permutation(len(augs))
        ops = []
        img = image
        for i in order:
            t = augs[i].get_transform(img)
            img = t.apply_image(img)
            ops.append(t.op)

        def op(x):
            for f in ops:
                x = f(x)
            return x

        return ColorTransform(op)

"""Augmentations: (possibly random) policies that look at an input and return a Transform.

An :class:`Augmentation` implements ``get_transform(image) -> Transform``; the returned transform
is deterministic and is applied to the image, its rotated boxes, and can be inverted (test-time
augmentation). :class:`AugInput` carries the image and boxes through a list of augmentations.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from fvcore.transforms.transform import Transform, TransformList

__all__ = ["Augmentation", "AugInput", "AugmentationList", "apply_augmentations"]


class Augmentation:
    """Base class. Subclasses implement :meth:`get_transform` and may use :meth:`_rand_range`."""

    def get_transform(self, image: np.ndarray) -> Transform:
        raise NotImplementedError

    def __call__(self, aug_input: AugInput) -> Transform:
        tfm = self.get_transform(aug_input.image)
        if not isinstance(tfm, (Transform, TransformList)):
            raise TypeError(
                f"{type(self).__name__}.get_transform must return a Transform, got {type(tfm)}"
            )
        aug_input.transform(tfm)
        return tfm

    @staticmethod
    def _rand_range(low: float = 1.0, high: float | None = None, size=None):
        if high is None:
            low, high = 0, low
        return np.random.uniform(low, high, size)

    def __repr__(self) -> str:
        import inspect

        params = inspect.signature(type(self).__init__).parameters
        args = []
        for name in params:
            if name in ("self", "args", "kwargs") or not hasattr(self, name):
                continue
            args.append(f"{name}={getattr(self, name)!r}")
        return f"{type(self).__name__}({', '.join(args)})"


class AugInput:
    """Image (``H x W x C`` uint8/float numpy), optional rotated boxes ``[N, 5]`` and their
    optional category ids ``[N]`` (read by augmentations that depend on the classes present, e.g.
    ``RandomRotation(rect_classes=...)``; transforms move boxes, never classes)."""

    def __init__(
        self,
        image: np.ndarray,
        *,
        boxes: np.ndarray | None = None,
        classes: np.ndarray | None = None,
    ):
        if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
            raise ValueError(f"AugInput needs an HxW or HxWxC numpy image, got {type(image)}")
        self.image = image
        self.boxes = boxes
        self.classes = classes

    def transform(self, tfm: Transform) -> None:
        self.image = tfm.apply_image(self.image)
        if self.boxes is not None:
            self.boxes = tfm.apply_rotated_box(self.boxes)

    def apply_augmentations(self, augmentations: Sequence[Augmentation]) -> TransformList:
        return AugmentationList(augmentations)(self)


class AugmentationList(Augmentation):
    """Apply augmentations in order; returns the :class:`TransformList` of what was done."""

    def __init__(self, augs: Sequence[Augmentation]):
        super().__init__()
        self.augs = list(augs)

    def __call__(self, aug_input: AugInput) -> TransformList:
        tfms = [aug(aug_input) for aug in self.augs]
        return TransformList(tfms)

    def __repr__(self) -> str:
        return f"AugmentationList[{', '.join(map(repr, self.augs))}]"


def apply_augmentations(augmentations: Sequence[Augmentation], image: np.ndarray):
    """Returns ``(augmented image, TransformList)``."""
    inp = AugInput(image)
    tfms = AugmentationList(augmentations)(inp)
    return inp.image, tfms

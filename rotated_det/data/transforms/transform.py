"""Deterministic geometric and photometric transforms of images, points and rotated boxes.

All transforms follow fvcore's :class:`~fvcore.transforms.Transform` interface
(``apply_image``, ``apply_coords``, ``inverse``) and add ``apply_rotated_box``.

Coordinates are continuous pixel coordinates: pixel ``(i, j)`` (column i, row j) covers
``[i, i+1] x [j, j+1]``, so an ``H x W`` image spans ``[0, W] x [0, H]`` and a horizontal flip is
exactly ``x -> W - x``. Rotated boxes are ``[N, 5]`` ``(cx, cy, w, h, angle_deg)`` arrays in the
project convention (counter-clockwise positive on screen, w-axis along ``(cos a, -sin a)``).

Box transforms are exact for every transform that maps rectangles to rectangles: flips, rotations
by any angle, crops, padding and uniform resizing. A resize with different x and y factors maps a
rotated rectangle to a parallelogram; ``ResizeTransform.apply_rotated_box`` then returns the
rectangle with the parallelogram's area and principal axes (:func:`affine_rotated_boxes`), which
is exact when the box angle is a multiple of 90 degrees.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np
from fvcore.transforms.transform import NoOpTransform, Transform, TransformList

__all__ = [
    "Transform",
    "TransformList",
    "NoOpTransform",
    "HFlipTransform",
    "VFlipTransform",
    "DiagonalFlipTransform",
    "Rot90Transform",
    "RotationTransform",
    "ResizeTransform",
    "CropTransform",
    "PadTransform",
    "ColorTransform",
    "affine_rotated_boxes",
]


def affine_rotated_boxes(boxes: np.ndarray, A: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Map rotated boxes through ``p -> A @ p + t`` (continuous coordinates).

    The centre is mapped exactly. The image of a rectangle under a general affine map is a
    parallelogram; it is replaced by the rectangle with the same second moments (hence the same
    area and principal axes). For similarity transforms (rotation, reflection, uniform scale) and
    for axis-aligned scalings of axis-aligned boxes this is the exact image.

    Args:
        boxes: ``[N, 5]``.
        A: ``[2, 2]``; t: ``[2]``.
    Returns:
        ``[N, 5]`` float64 boxes, angle in ``[-180, 180)``; the output w side is the one closest
        in direction to the image of the input w side.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
    A = np.asarray(A, dtype=np.float64)
    out = np.empty_like(b)
    out[:, :2] = b[:, :2] @ A.T + np.asarray(t, dtype=np.float64)
    a = np.radians(b[:, 4])
    u = np.stack([np.cos(a), -np.sin(a)], axis=1) @ A.T  # image of the unit w-axis
    v = np.stack([np.sin(a), np.cos(a)], axis=1) @ A.T
    wu, hv = u * b[:, 2:3], v * b[:, 3:4]
    # second-moment matrix (up to a constant factor) of the parallelogram spanned by wu, hv
    sxx = wu[:, 0] ** 2 + hv[:, 0] ** 2
    syy = wu[:, 1] ** 2 + hv[:, 1] ** 2
    sxy = wu[:, 0] * wu[:, 1] + hv[:, 0] * hv[:, 1]
    mean, diff = (sxx + syy) / 2, np.hypot((sxx - syy) / 2, sxy)
    lam1, lam2 = mean + diff, np.maximum(mean - diff, 0.0)
    theta = 0.5 * np.arctan2(2 * sxy, sxx - syy)
    e1 = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    e2 = np.stack([-e1[:, 1], e1[:, 0]], axis=1)
    un = u / np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-300)
    use_e1 = np.abs((un * e1).sum(1)) >= np.abs((un * e2).sum(1))
    direction = np.where(use_e1[:, None], e1, e2)
    w_new = np.sqrt(np.where(use_e1, lam1, lam2))
    h_new = np.sqrt(np.where(use_e1, lam2, lam1))
    # isotropic moments (a square under a similarity): any axis works, keep the image of w
    iso = diff <= 1e-12 * np.maximum(mean, 1e-300)
    direction = np.where(iso[:, None], un, direction)
    direction = np.where(((direction * u).sum(1) < 0)[:, None], -direction, direction)
    out[:, 2], out[:, 3] = w_new, h_new
    ang = np.degrees(np.arctan2(-direction[:, 1], direction[:, 0]))
    out[:, 4] = (ang + 180.0) % 360.0 - 180.0
    return out


def _as_boxes(boxes) -> np.ndarray:
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 5)


class HFlipTransform(Transform):
    """Horizontal flip of an image of width ``width``: ``x -> width - x``."""

    def __init__(self, width: int):
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return img[:, ::-1]  # a view: the mapper makes the final contiguous copy

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords = np.array(coords, dtype=np.float64)
        coords[:, 0] = self.width - coords[:, 0]
        return coords

    def apply_rotated_box(self, boxes: np.ndarray) -> np.ndarray:
        b = _as_boxes(boxes).copy()
        b[:, 0] = self.width - b[:, 0]
        b[:, 4] = -b[:, 4]
        return b

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self.apply_image(segmentation)

    def inverse(self) -> Transform:
        return self


class VFlipTransform(Transform):
    """Vertical flip of an image of height ``height``: ``y -> height - y``."""

    def __init__(self, height: int):
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return img[::-1]

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords = np.array(coords, dtype=np.float64)
        coords[:, 1] = self.height - coords[:, 1]
        return coords

    def apply_rotated_box(self, boxes: np.ndarray) -> np.ndarray:
        b = _as_boxes(boxes).copy()
        b[:, 1] = self.height - b[:, 1]
        b[:, 4] = -b[:, 4]
        return b

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self.apply_image(segmentation)

    def inverse(self) -> Transform:
        return self


class DiagonalFlipTransform(Transform):
    """Flip along both axes (MMRotate's "diagonal" flip, a 180 degree rotation):
    ``(x, y) -> (width - x, height - y)``; box angles are unchanged."""

    def __init__(self, height: int, width: int):
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return img[::-1, ::-1]

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords = np.array(coords, dtype=np.float64)
        coords[:, 0] = self.width - coords[:, 0]
        coords[:, 1] = self.height - coords[:, 1]
        return coords

    def apply_rotated_box(self, boxes: np.ndarray) -> np.ndarray:
        b = _as_boxes(boxes).copy()
        b[:, 0] = self.width - b[:, 0]
        b[:, 1] = self.height - b[:, 1]
        return b

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self.apply_image(segmentation)

    def inverse(self) -> Transform:
        return self


class Rot90Transform(Transform):
    """Rotate an ``h x w`` image counter-clockwise (on screen) by ``k * 90`` degrees.

    For ``k = 1`` the output is ``w x h`` and ``(x, y) -> (y, w - x)``; box angles grow by 90.
    """

    def __init__(self, h: int, w: int, k: int):
        super().__init__()
        k = int(k) % 4
        self._set_attributes(locals())

    def _affine(self):
        c, s = [(1, 0), (0, 1), (-1, 0), (0, -1)][self.k]
        A = np.array([[c, s], [-s, c]], dtype=np.float64)
        # Translation that maps the rotated image back onto [0, W'] x [0, H'].
        corners = np.array([[0, 0], [self.w, 0], [0, self.h], [self.w, self.h]], np.float64)
        t = -(corners @ A.T).min(axis=0)
        return A, t

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return np.rot90(img, self.k, axes=(0, 1))

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        A, t = self._affine()
        return np.asarray(coords, dtype=np.float64) @ A.T + t

    def apply_rotated_box(self, boxes: np.ndarray) -> np.ndarray:
        A, t = self._affine()
        b = _as_boxes(boxes)
        out = b.copy()
        out[:, :2] = b[:, :2] @ A.T + t
        out[:, 4] = (b[:, 4] + 90.0 * self.k + 180.0) % 360.0 - 180.0
        return out

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self.apply_image(segmentation)

    def inverse(self) -> Transform:
        nh, nw = (self.h, self.w) if self.k % 2 == 0 else (self.w, self.h)
        return Rot90Transform(nh, nw, (4 - self.k) % 4)


class RotationTransform(Transform):
    """Rotate an ``h x w`` image counter-clockwise (on screen) by ``angle`` degrees about
    ``center`` (continuous coordinates, default the image centre).

    With ``expand=True`` the output is large enough to hold the whole rotated image and the
    rotation centre moves to the centre of the output; otherwise the output is ``h x w`` and
    corners are cut. Uncovered pixels get ``border_value``. Box angles grow by ``angle``.
    """

    def __init__(
        self,
        h: int,
        w: int,
        angle: float,
        expand: bool = True,
        center: tuple[float, float] | None = None,
        interp: int = cv2.INTER_LINEAR,
        border_value: float | tuple = 0,
    ):
        super().__init__()
        rad = math.radians(angle)
        c, s = math.cos(rad), math.sin(rad)
        if expand:
            bound_w = int(math.ceil(abs(w * c) + abs(h * s) - 1e-6))
            bound_h = int(math.ceil(abs(w * s) + abs(h * c) - 1e-6))
        else:
            bound_w, bound_h = w, h
        if center is None:
            center = (w / 2.0, h / 2.0)
        self._set_attributes(locals())
        A = np.array([[c, s], [-s, c]], dtype=np.float64)
        src_c = np.asarray(center, dtype=np.float64)
        dst_c = np.array([bound_w / 2.0, bound_h / 2.0]) if expand else src_c
        self.A = A
        self.t = dst_c - A @ src_c

    def _cv2_matrix(self) -> np.ndarray:
        # cv2 works on pixel indices whose centres sit at +0.5 in continuous coordinates.
        t_idx = self.A @ np.array([0.5, 0.5]) + self.t - 0.5
        return np.concatenate([self.A, t_idx[:, None]], axis=1)

    def apply_image(self, img: np.ndarray, interp: int | None = None) -> np.ndarray:
        if self.angle % 360 == 0 and (self.bound_h, self.bound_w) == img.shape[:2]:
            return img
        bv = self.border_value
        if isinstance(bv, (int, float)) and img.ndim == 3:
            bv = (bv,) * min(img.shape[2], 4)
        return cv2.warpAffine(
            np.ascontiguousarray(img),
            self._cv2_matrix(),
            (self.bound_w, self.bound_h),
            flags=self.interp if interp is None else interp,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=bv,
        )

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return np.asarray(coords, dtype=np.float64) @ self.A.T + self.t

    def apply_rotated_box(self, boxes: np.ndarray) -> np.ndarray:
        b = _as_boxes(boxes)
        out = b.copy()
        out[:, :2] = b[:, :2] @ self.A.T + self.t
        out[:, 4] = (b[:, 4] + self.angle + 180.0) % 360.0 - 180.0
        return out

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self.apply_image(segmentation, interp=cv2.INTER_NEAREST)

    def inverse(self) -> Transform:
        """Rotation back by ``-angle`` onto the original ``h x w`` frame."""
        return _AffineTransform(
            self.A.T,
            -self.A.T @ self.t,
            self.h,
            self.w,
            self.interp,
            self.border_value,
            -self.angle,
        )


class _AffineTransform(Transform):
    """``p -> A p + t`` with a rotation matrix ``A`` (inverse of :class:`RotationTransform`)."""

    def __init__(self, A, t, h, w, interp, border_value, angle):
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        t_idx = self.A @ np.array([0.5, 0.5]) + self.t - 0.5
        M = np.concatenate([self.A, t_idx[:, None]], axis=1)
        bv = self.border_value
        if isinstance(bv, (int, float)) and img.ndim == 3:
            bv = (bv,) * min(img.shape[2], 4)
        return cv2.warpAffine(
            np.ascontiguousarray(img),
            M,
            (self.w, self.h),
            flags=self.interp,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=bv,
        )

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return np.asarray(coords, dtype=np.float64) @ self.A.T + self.t

    def apply_rotated_box(self, boxes: np.ndarray) -> np.ndarray:
        b = _as_boxes(boxes)
        out = b.copy()
        out[:, :2] = b[:, :2] @ self.A.T + self.t
        out[:, 4] = (b[:, 4] + self.angle + 180.0) % 360.0 - 180.0
        return out


class ResizeTransform(Transform):
    """Resize ``h x w`` to ``new_h x new_w``: ``x -> x * new_w / w``, ``y -> y * new_h / h``."""

    def __init__(self, h: int, w: int, new_h: int, new_w: int, interp: int = cv2.INTER_LINEAR):
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray, interp: int | None = None) -> np.ndarray:
        assert img.shape[:2] == (self.h, self.w), (
            f"ResizeTransform expects an image of {(self.h, self.w)}, got {img.shape[:2]}"
        )
        if (self.new_h, self.new_w) == (self.h, self.w):
            return img
        out = cv2.resize(
            np.ascontiguousarray(img),
            (self.new_w, self.new_h),
            interpolation=self.interp if interp is None else interp,
        )
        if img.ndim == 3 and out.ndim == 2:
            out = out[:, :, None]
        return out

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords = np.array(coords, dtype=np.float64)
        coords[:, 0] *= self.new_w / self.w
        coords[:, 1] *= self.new_h / self.h
        return coords

    def apply_rotated_box(self, boxes: np.ndarray) -> np.ndarray:
        sx, sy = self.new_w / self.w, self.new_h / self.h
        b = _as_boxes(boxes)
        if sx == sy:
            out = b.copy()
            out[:, :4] *= sx
            return out
        return affine_rotated_boxes(b, np.diag([sx, sy]), np.zeros(2))

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self.apply_image(segmentation, interp=cv2.INTER_NEAREST)

    def inverse(self) -> Transform:
        return ResizeTransform(self.new_h, self.new_w, self.h, self.w, self.interp)


class CropTransform(Transform):
    """Crop ``[y0 : y0 + h, x0 : x0 + w]``: ``(x, y) -> (x - x0, y - y0)``.

    ``orig_h``/``orig_w`` (the input size) are needed only for :meth:`inverse`.
    """

    def __init__(
        self, x0: int, y0: int, w: int, h: int, orig_w: int | None = None, orig_h: int | None = None
    ):
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return img[self.y0 : self.y0 + self.h, self.x0 : self.x0 + self.w]

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords = np.array(coords, dtype=np.float64)
        coords[:, 0] -= self.x0
        coords[:, 1] -= self.y0
        return coords

    def apply_rotated_box(self, boxes: np.ndarray) -> np.ndarray:
        b = _as_boxes(boxes).copy()
        b[:, 0] -= self.x0
        b[:, 1] -= self.y0
        return b

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self.apply_image(segmentation)

    def inverse(self) -> Transform:
        if self.orig_w is None or self.orig_h is None:
            raise NotImplementedError("CropTransform.inverse needs orig_w and orig_h")
        return PadTransform(
            self.x0,
            self.y0,
            self.orig_w - self.x0 - self.w,
            self.orig_h - self.y0 - self.h,
            self.w,
            self.h,
        )


class PadTransform(Transform):
    """Pad ``x0`` / ``y0`` pixels on the left / top and ``x1`` / ``y1`` on the right / bottom
    with ``pad_value``: ``(x, y) -> (x + x0, y + y0)``."""

    def __init__(
        self,
        x0: int,
        y0: int,
        x1: int,
        y1: int,
        orig_w: int | None = None,
        orig_h: int | None = None,
        pad_value: float = 0,
    ):
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        pad = [(self.y0, self.y1), (self.x0, self.x1)] + [(0, 0)] * (img.ndim - 2)
        return np.pad(img, pad, mode="constant", constant_values=self.pad_value)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords = np.array(coords, dtype=np.float64)
        coords[:, 0] += self.x0
        coords[:, 1] += self.y0
        return coords

    def apply_rotated_box(self, boxes: np.ndarray) -> np.ndarray:
        b = _as_boxes(boxes).copy()
        b[:, 0] += self.x0
        b[:, 1] += self.y0
        return b

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self.apply_image(segmentation)

    def inverse(self) -> Transform:
        w = self.orig_w if self.orig_w is not None else None
        h = self.orig_h if self.orig_h is not None else None
        if w is None or h is None:
            raise NotImplementedError("PadTransform.inverse needs orig_w and orig_h")
        return CropTransform(self.x0, self.y0, w, h, w + self.x0 + self.x1, h + self.y0 + self.y1)


class ColorTransform(Transform):
    """Photometric change ``op(image) -> image`` of the same shape; geometry is unchanged.

    Its inverse is the identity on geometry (pixel values are not restored), which is what
    test-time augmentation needs to map predictions back.
    """

    def __init__(self, op: Callable[[np.ndarray], np.ndarray]):
        if not callable(op):
            raise ValueError("ColorTransform needs a callable op")
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return self.op(img)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords

    def apply_rotated_box(self, boxes: np.ndarray) -> np.ndarray:
        return boxes

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return segmentation

    def inverse(self) -> Transform:
        return NoOpTransform()


def _noop_rotated_box(tfm, boxes):
    return boxes


NoOpTransform.register_type("rotated_box", _noop_rotated_box)

"""Horizontal boxes: ``BoxMode`` (box formats and conversions), ``Boxes`` and their pairwise IoU."""

import math
from collections.abc import Iterator, Sequence
from enum import IntEnum
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import torch

__all__ = [
    "BoxMode",
    "Boxes",
    "pairwise_intersection",
    "pairwise_iou",
    "pairwise_ioa",
    "pairwise_point_box_distance",
    "matched_pairwise_iou",
]

# A box or boxes as BoxMode.convert takes them: 4 or 5 numbers, or an [N, 4] / [N, 5] array.
RawBoxType = list[float] | tuple[float, ...] | torch.Tensor | npt.NDArray[Any]
RawBoxT = TypeVar("RawBoxT", list[float], tuple[float, ...], torch.Tensor, npt.NDArray[Any])


class BoxMode(IntEnum):
    """
    How a box is written down. Values are stable (they are stored in dataset dicts).
    """

    XYXY_ABS = 0
    """(x0, y0, x1, y1) in absolute pixels: top-left and bottom-right corners."""
    XYWH_ABS = 1
    """(x0, y0, w, h) in absolute pixels: top-left corner and size."""
    XYXY_REL = 2
    """(x0, y0, x1, y1) relative to the image size, in [0, 1]. Not supported by ``convert``."""
    XYWH_REL = 3
    """(x0, y0, w, h) relative to the image size, in [0, 1]. Not supported by ``convert``."""
    XYWHA_ABS = 4
    """
    (cx, cy, w, h, a) in absolute pixels: a rotated box, ``a`` in degrees, counter-clockwise
    positive on screen (image y axis down). See ``rotated_box_conversions`` for the convention.
    """

    @staticmethod
    def convert(box: RawBoxT, from_mode: "BoxMode", to_mode: "BoxMode") -> RawBoxT:
        """
        Convert box(es) from one mode to another.

        Supported: any pair of XYXY_ABS, XYWH_ABS, XYWHA_ABS. A rotated box converts to its
        smallest enclosing horizontal box; a horizontal box converts to a rotated box with
        angle 0 (so XYWHA_ABS -> XYXY_ABS -> XYWHA_ABS is lossy unless the angle is a
        multiple of 180, or of 90 with w == h).

        Args:
            box: a list/tuple of 4 or 5 numbers, or an Nx4 / Nx5 numpy array or torch tensor.
            from_mode, to_mode (BoxMode)
        Returns:
            The converted box(es), of the same type as ``box`` (a tuple in, a tuple out).
        """
        from_mode, to_mode = BoxMode(from_mode), BoxMode(to_mode)
        if from_mode == to_mode:
            return box
        rel = (BoxMode.XYXY_REL, BoxMode.XYWH_REL)
        if from_mode in rel or to_mode in rel:
            raise NotImplementedError(
                f"BoxMode.convert: relative modes are not supported ({from_mode.name} -> "
                f"{to_mode.name}); scale by the image size first"
            )

        original_type = type(box)
        single = isinstance(box, (list, tuple))
        if single:
            if len(box) not in (4, 5):
                raise ValueError(
                    f"BoxMode.convert: a list/tuple box must have 4 or 5 numbers, got {len(box)}"
                )
            arr = torch.tensor(box, dtype=torch.float64)[None]
        elif isinstance(box, np.ndarray):
            arr = torch.from_numpy(np.asarray(box)).clone()
        elif isinstance(box, torch.Tensor):
            arr = box.clone()
        else:
            raise TypeError(f"BoxMode.convert: unsupported box type {original_type.__name__}")

        in_cols = 5 if from_mode == BoxMode.XYWHA_ABS else 4
        if arr.dim() != 2 or arr.shape[-1] != in_cols:
            raise ValueError(
                f"BoxMode.convert: {from_mode.name} boxes must have shape [N, {in_cols}] "
                f"(or be a list of {in_cols} numbers), got {tuple(arr.shape)}"
            )
        dtype = arr.dtype
        if not arr.is_floating_point():
            arr = arr.to(torch.float64)

        xyxy = _to_xyxy(arr, from_mode)
        out = _from_xyxy(xyxy, to_mode)
        # integer boxes stay integer, except rotated results (centres can be half pixels)
        if dtype.is_floating_point or to_mode != BoxMode.XYWHA_ABS:
            out = out.to(dtype)

        if isinstance(box, (list, tuple)):
            return type(box)(out[0].tolist())
        if isinstance(box, np.ndarray):
            return out.numpy()
        return out


def _to_xyxy(arr: torch.Tensor, mode: BoxMode) -> torch.Tensor:
    if mode == BoxMode.XYXY_ABS:
        return arr
    if mode == BoxMode.XYWH_ABS:
        return torch.cat([arr[:, :2], arr[:, :2] + arr[:, 2:4]], dim=1)
    # XYWHA_ABS: enclosing horizontal box, computed in float64 for precision
    a64 = arr.to(torch.float64)
    rad = a64[:, 4] * (math.pi / 180.0)
    c, s = rad.cos().abs(), rad.sin().abs()
    w, h = a64[:, 2], a64[:, 3]
    half_w = 0.5 * (c * w + s * h)
    half_h = 0.5 * (s * w + c * h)
    cx, cy = a64[:, 0], a64[:, 1]
    out = torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=1)
    return out.to(arr.dtype)


def _from_xyxy(xyxy: torch.Tensor, mode: BoxMode) -> torch.Tensor:
    if mode == BoxMode.XYXY_ABS:
        return xyxy
    wh = xyxy[:, 2:4] - xyxy[:, :2]
    if mode == BoxMode.XYWH_ABS:
        return torch.cat([xyxy[:, :2], wh], dim=1)
    # XYWHA_ABS: the same box with angle 0
    center = 0.5 * (xyxy[:, :2] + xyxy[:, 2:4])
    return torch.cat([center, wh, torch.zeros_like(wh[:, :1])], dim=1)


class Boxes:
    """
    A list of N horizontal boxes stored as an Nx4 float32 tensor ``tensor`` of
    (x0, y0, x1, y1) in pixels (BoxMode.XYXY_ABS). Behaves like a tensor for indexing,
    ``len``, ``.to(device)`` and iteration (which yields the rows).
    """

    def __init__(self, tensor: torch.Tensor | npt.NDArray[Any] | Sequence[Any]) -> None:
        """
        Args:
            tensor: Nx4 (x0, y0, x1, y1) tensor, numpy array or nested list; converted to
                float32. Anything with zero elements becomes a 0x4 tensor.
        """
        if not isinstance(tensor, torch.Tensor):
            t = torch.as_tensor(tensor, dtype=torch.float32, device=torch.device("cpu"))
        else:
            t = tensor.to(torch.float32)
        if torch.jit.is_tracing():  # sizes are traced values; the checks would be constants
            self.tensor = t
            return
        if t.numel() == 0:
            t = t.reshape((-1, 4))
        if t.dim() != 2 or t.size(-1) != 4:
            raise ValueError(f"Boxes: expected an Nx4 tensor, got shape {tuple(t.shape)}")
        self.tensor = t

    def clone(self) -> "Boxes":
        return Boxes(self.tensor.clone())

    def to(self, *args: Any, **kwargs: Any) -> "Boxes":
        return Boxes(self.tensor.to(*args, **kwargs))

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def area(self) -> torch.Tensor:
        """[N] areas in square pixels."""
        b = self.tensor
        return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])

    def clip(self, box_size: tuple[int, int]) -> None:
        """
        Clamp the boxes, in place, into the image: x into [0, width], y into [0, height].

        Args:
            box_size: (height, width) of the image.
        """
        if not torch.jit.is_tracing() and not torch.isfinite(self.tensor).all():
            raise ValueError("Boxes.clip: the box tensor contains infinite or NaN values")
        h, w = box_size
        x0 = self.tensor[:, 0].clamp(min=0, max=w)
        y0 = self.tensor[:, 1].clamp(min=0, max=h)
        x1 = self.tensor[:, 2].clamp(min=0, max=w)
        y1 = self.tensor[:, 3].clamp(min=0, max=h)
        self.tensor = torch.stack((x0, y0, x1, y1), dim=-1)

    def nonempty(self, threshold: float = 0.0) -> torch.Tensor:
        """[N] bool: True where both sides are longer than ``threshold`` pixels."""
        b = self.tensor
        return ((b[:, 2] - b[:, 0]) > threshold) & ((b[:, 3] - b[:, 1]) > threshold)

    def __getitem__(self, item: int | slice | torch.Tensor) -> "Boxes":
        """
        ``boxes[3]`` (a Boxes of one box), ``boxes[2:10]``, ``boxes[bool_mask]`` or
        ``boxes[index_tensor]``. The result may share storage with this object.
        """
        if isinstance(item, int):
            return Boxes(self.tensor[item].view(1, -1))
        b = self.tensor[item]
        if b.dim() != 2:
            raise IndexError(f"Indexing Boxes with {item!r} did not give an Nx4 matrix")
        return Boxes(b)

    def __len__(self) -> int:
        return self.tensor.shape[0]

    def __repr__(self) -> str:
        return "Boxes(" + str(self.tensor) + ")"

    def inside_box(self, box_size: tuple[int, int], boundary_threshold: int = 0) -> torch.Tensor:
        """
        [N] bool: True where the box lies inside the image ``box_size = (height, width)``,
        allowed to stick out by up to ``boundary_threshold`` pixels.
        """
        h, w = box_size
        t = boundary_threshold
        b = self.tensor
        return (b[:, 0] >= -t) & (b[:, 1] >= -t) & (b[:, 2] < w + t) & (b[:, 3] < h + t)

    def get_centers(self) -> torch.Tensor:
        """Nx2 (x, y) box centres."""
        return 0.5 * (self.tensor[:, :2] + self.tensor[:, 2:])

    def scale(self, scale_x: float, scale_y: float) -> None:
        """Scale the boxes, in place, by ``scale_x`` horizontally and ``scale_y`` vertically."""
        self.tensor[:, 0::2] *= scale_x
        self.tensor[:, 1::2] *= scale_y

    @classmethod
    def cat(cls, boxes_list: Sequence["Boxes"]) -> "Boxes":
        """Concatenate a list of Boxes into one (an empty list gives an empty Boxes)."""
        if not isinstance(boxes_list, (list, tuple)):
            raise TypeError("Boxes.cat expects a list of Boxes")
        if len(boxes_list) == 0:
            return cls(torch.empty(0))
        if not all(isinstance(b, Boxes) for b in boxes_list):
            raise TypeError("Boxes.cat: every element must be a Boxes")
        return cls(torch.cat([b.tensor for b in boxes_list], dim=0))

    def __iter__(self) -> Iterator[torch.Tensor]:
        """Yield each box as a tensor of shape (4,)."""
        yield from self.tensor


def pairwise_intersection(boxes1: Boxes, boxes2: Boxes) -> torch.Tensor:
    """[N, M] intersection areas of every pair of boxes (XYXY)."""
    b1, b2 = boxes1.tensor, boxes2.tensor
    wh = torch.min(b1[:, None, 2:], b2[None, :, 2:]) - torch.max(b1[:, None, :2], b2[None, :, :2])
    return wh.clamp(min=0).prod(dim=2)


def pairwise_iou(boxes1: Boxes, boxes2: Boxes) -> torch.Tensor:
    """
    [N, M] intersection over union of every pair of horizontal boxes. Pairs that do not overlap
    (including those with an empty box) give 0.
    """
    area1, area2 = boxes1.area(), boxes2.area()
    inter = pairwise_intersection(boxes1, boxes2)
    union = area1[:, None] + area2[None, :] - inter
    return torch.where(inter > 0, inter / torch.where(inter > 0, union, 1.0), 0.0)


def pairwise_ioa(boxes1: Boxes, boxes2: Boxes) -> torch.Tensor:
    """[N, M] intersection over the area of the box of ``boxes2`` (0 where they do not overlap)."""
    area2 = boxes2.area()
    inter = pairwise_intersection(boxes1, boxes2)
    return torch.where(inter > 0, inter / torch.where(inter > 0, area2[None, :], 1.0), 0.0)


def pairwise_point_box_distance(points: torch.Tensor, boxes: Boxes) -> torch.Tensor:
    """
    Distances from N points (Nx2) to the four sides of M boxes: [N, M, 4] of
    (left, top, right, bottom), each positive when the point is inside that side.
    """
    x, y = points.unsqueeze(2).unbind(dim=1)  # each [N, 1]
    x0, y0, x1, y1 = boxes.tensor.unsqueeze(dim=0).unbind(dim=2)  # each [1, M]
    return torch.stack([x - x0, y - y0, x1 - x, y1 - y], dim=2)


def matched_pairwise_iou(boxes1: Boxes, boxes2: Boxes) -> torch.Tensor:
    """[N] IoU of boxes1[i] with boxes2[i]; both must hold N boxes."""
    if len(boxes1) != len(boxes2):
        raise ValueError(
            f"matched_pairwise_iou: boxes must have the same length, got {len(boxes1)} "
            f"and {len(boxes2)}"
        )
    area1, area2 = boxes1.area(), boxes2.area()
    b1, b2 = boxes1.tensor, boxes2.tensor
    lt = torch.max(b1[:, :2], b2[:, :2])
    rb = torch.min(b1[:, 2:], b2[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    return inter / (area1 + area2 - inter)

"""``RotatedBoxes``: a list of rotated boxes, and their pairwise IoU."""

import math

import torch
from torch.fx.experimental.symbolic_shapes import guard_or_false

from .boxes import Boxes
from .rotated_box_conversions import rbox_tensor_to_hbox

__all__ = ["RotatedBoxes", "pairwise_iou", "pairwise_iou_rotated"]


def _wrap_angles(angle: torch.Tensor) -> torch.Tensor:
    """
    Angles in degrees mapped into [-180, 180); those already in range are kept bit-exact, and
    the remainder rounding up to 360 is guarded against.
    """
    r = torch.remainder(angle + 180.0, 360.0) - 180.0
    r = torch.where(r >= 180.0, r - 360.0, r)
    return torch.where((angle >= -180.0) & (angle < 180.0), angle, r)


class RotatedBoxes(Boxes):
    """
    A list of N rotated boxes stored as an Nx5 float32 tensor ``tensor`` of
    (x_center, y_center, width, height, angle) (BoxMode.XYWHA_ABS): pixels, angle in degrees,
    counter-clockwise positive as seen on screen with the image y axis pointing down. The
    box's width side points along (cos a, -sin a) in image coordinates, its height side along
    (sin a, cos a). A box at 90 degrees is the box at 0 degrees turned a quarter turn
    counter-clockwise on screen; (w, h, a), (w, h, a + 180) and (h, w, a +- 90) are the same
    rectangle. See ``rotated_box_conversions`` for polygons and angle versions.

    Behaves like a tensor for indexing, ``len``, ``.to(device)`` and iteration (which yields
    the rows).

    Compiles with ``torch.jit.script`` as Detectron2's does: a scripted function can build
    RotatedBoxes from a tensor and call every method except iteration; in scripted code, indices
    must be tensors (index or bool mask) and ``cat`` is called on an instance
    (``boxes.cat([a, b])``), since TorchScript does not call classmethods on the class.
    """

    def __init__(self, tensor: torch.Tensor):
        """
        Args:
            tensor: Nx5 (cx, cy, w, h, angle) tensor, numpy array or nested list; converted to
                float32. Anything with zero elements becomes a 0x5 tensor.
        """
        if not isinstance(tensor, torch.Tensor):
            tensor = torch.as_tensor(tensor, dtype=torch.float32, device=torch.device("cpu"))
        else:
            tensor = tensor.to(torch.float32)
        # when tracing, sizes are traced values and the checks would be constants
        if not torch.jit.is_tracing():
            # guard_or_false: under torch.export the number of rows may be data-dependent (NMS
            # output); it is then taken as non-empty, and an [N, 5] tensor needs no reshape.
            if torch.jit.is_scripting():
                empty = tensor.numel() == 0
            else:
                empty = guard_or_false(tensor.numel() == 0)
            if empty:
                tensor = tensor.reshape((-1, 5))
            if tensor.dim() != 2 or tensor.size(-1) != 5:
                raise ValueError(
                    f"RotatedBoxes: expected an Nx5 tensor, got shape {list(tensor.shape)}"
                )
        self.tensor = tensor

    def clone(self) -> "RotatedBoxes":
        return RotatedBoxes(self.tensor.clone())

    def to(self, device: torch.device) -> "RotatedBoxes":
        """The boxes on ``device`` (a ``torch.device`` or a string such as ``"cpu"``)."""
        return RotatedBoxes(self.tensor.to(device))

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def __len__(self) -> int:
        return self.tensor.shape[0]

    def area(self) -> torch.Tensor:
        """[N] areas (w * h) in square pixels."""
        return self.tensor[:, 2] * self.tensor[:, 3]

    def normalize_angles(self) -> None:
        """Map the angles, in place, into [-180, 180)."""
        self.tensor[:, 4] = _wrap_angles(self.tensor[:, 4])

    def clip(self, box_size: tuple[int, int], clip_angle_threshold: float = 1.0) -> None:
        """
        Clip, in place, the nearly horizontal boxes to the image; leave the others alone.

        Angles are first normalised into [-180, 180). A box whose angle satisfies
        ``|angle| <= clip_angle_threshold`` (degrees) is treated as the horizontal box
        (cx +- w/2, cy +- h/2), clamped to x in [0, width] and y in [0, height], and written back
        with its angle unchanged; its new w (h) is the smaller of the old w (h) and the clamped
        extent, so a box already inside never grows through rounding. Boxes rotated more than
        the threshold (including those near 180 degrees) are not clipped, since clipping a
        rotated box would not give a rectangle.

        Args:
            box_size: (height, width) of the image.
            clip_angle_threshold: degrees.
        """
        h, w = box_size
        self.normalize_angles()
        # read from a copy: the in-place write below must not touch tensors saved for backward
        t = self.tensor.clone()
        near_horizontal = (t[:, 4].abs() <= clip_angle_threshold)[:, None]
        x0 = (t[:, 0] - t[:, 2] / 2.0).clamp(min=0, max=w)
        y0 = (t[:, 1] - t[:, 3] / 2.0).clamp(min=0, max=h)
        x1 = (t[:, 0] + t[:, 2] / 2.0).clamp(min=0, max=w)
        y1 = (t[:, 1] + t[:, 3] / 2.0).clamp(min=0, max=h)
        clipped = torch.stack(
            [
                (x0 + x1) / 2.0,
                (y0 + y1) / 2.0,
                torch.min(t[:, 2], x1 - x0),
                torch.min(t[:, 3], y1 - y0),
            ],
            dim=1,
        )
        # a mask instead of indexing: no data-dependent shapes, so this traces
        self.tensor[:, :4] = torch.where(near_horizontal, clipped, t[:, :4])

    def nonempty(self, threshold: float = 0.0) -> torch.Tensor:
        """[N] bool: True where both w and h are larger than ``threshold`` pixels."""
        return (self.tensor[:, 2] > threshold) & (self.tensor[:, 3] > threshold)

    # ``item`` stays unannotated: TorchScript then types it as a Tensor (index or mask), while
    # eager code may also pass an int or a slice.
    def __getitem__(self, item) -> "RotatedBoxes":  # type: ignore[no-untyped-def]
        """
        ``boxes[3]`` (a RotatedBoxes of one box), ``boxes[2:10]``, ``boxes[bool_mask]`` or
        ``boxes[index_tensor]``. The result may share storage with this object.
        """
        if isinstance(item, int):
            return RotatedBoxes(self.tensor[item].view(1, -1))
        b = self.tensor[item]
        if b.dim() != 2:
            raise IndexError(f"Indexing RotatedBoxes with {item} did not give an Nx5 matrix")
        return RotatedBoxes(b)

    def __repr__(self) -> str:
        return "RotatedBoxes(" + str(self.tensor) + ")"

    def inside_box(self, box_size: tuple[int, int], boundary_threshold: int = 0) -> torch.Tensor:
        """
        [N] bool: True where the box's enclosing horizontal box lies inside the image
        ``box_size = (height, width)``, allowed to stick out by up to ``boundary_threshold``
        pixels.
        """
        h, w = box_size
        hbox = rbox_tensor_to_hbox(self.tensor)
        b = boundary_threshold
        return (hbox[:, 0] >= -b) & (hbox[:, 1] >= -b) & (hbox[:, 2] < w + b) & (hbox[:, 3] < h + b)

    def get_centers(self) -> torch.Tensor:
        """Nx2 (x, y) box centres."""
        return self.tensor[:, :2]

    def scale(self, scale_x: float, scale_y: float) -> None:
        """
        Scale the boxes, in place, as the image is resized by ``scale_x`` horizontally and
        ``scale_y`` vertically.

        The centre scales exactly. With ``scale_x == scale_y`` the result is exact: w and h scale,
        the angle stays. Otherwise a scaled rectangle becomes a parallelogram, approximated as
        Detectron2 does: w becomes the length of the scaled width vector
        ``w * |(scale_x cos a, -scale_y sin a)|``, h the length of the scaled height vector
        ``h * |(scale_x sin a, scale_y cos a)|``, and the angle follows the scaled height vector:
        ``atan2(scale_x sin a, scale_y cos a)``. Angles come out in (-180, 180].
        """
        t = self.tensor
        t[:, 0] *= scale_x
        t[:, 1] *= scale_y
        rad = t[:, 4] * (math.pi / 180.0)
        c, s = torch.cos(rad), torch.sin(rad)
        t[:, 2] *= torch.sqrt((scale_x * c) ** 2 + (scale_y * s) ** 2)
        t[:, 3] *= torch.sqrt((scale_x * s) ** 2 + (scale_y * c) ** 2)
        t[:, 4] = torch.atan2(scale_x * s, scale_y * c) * (180.0 / math.pi)

    # Joins boxes of its own class only (TorchScript needs the List[RotatedBoxes] type).
    @classmethod
    def cat(cls, boxes_list: list["RotatedBoxes"]) -> "RotatedBoxes":  # type: ignore[override]
        """Concatenate a list of RotatedBoxes into one (an empty list gives an empty one)."""
        if not torch.jit.is_scripting():  # scripted code is typed: the list holds RotatedBoxes
            if not isinstance(boxes_list, (list, tuple)):
                raise TypeError("RotatedBoxes.cat expects a list of RotatedBoxes")
            if not all([isinstance(b, RotatedBoxes) for b in boxes_list]):
                raise TypeError("RotatedBoxes.cat: every element must be a RotatedBoxes")
        if len(boxes_list) == 0:
            return cls(torch.empty(0))
        return cls(torch.cat([b.tensor for b in boxes_list], dim=0))

    # Unannotated: TorchScript reads the annotations of unused methods too, and has no Iterator.
    @torch.jit.unused
    def __iter__(self):  # type: ignore[no-untyped-def]
        """Yield each box as a tensor of shape (5,)."""
        yield from self.tensor


def pairwise_iou(boxes1: RotatedBoxes, boxes2: RotatedBoxes) -> torch.Tensor:
    """
    [N, M] IoU of every pair of rotated boxes (computed by the compiled op
    ``rotated_det.layers.pairwise_iou_rotated``).

    Args:
        boxes1, boxes2: RotatedBoxes (or, in eager code, Nx5 / Mx5 tensors) holding N and M
            boxes.
    """
    if torch.jit.is_scripting():
        # RotatedBoxes hold float32 [N, 5] tensors, all the op needs; scripting this needs the
        # ops loaded (import rotated_det.layers), as any scripted use of them does.
        iou: torch.Tensor = torch.ops.rotated_det.box_iou_rotated(
            boxes1.tensor, boxes2.tensor, 0, False
        )
        return iou
    else:
        return _pairwise_iou_eager(boxes1, boxes2)


def _pairwise_iou_eager(boxes1: Boxes | torch.Tensor, boxes2: Boxes | torch.Tensor) -> torch.Tensor:
    # Imported here so that rotated_det.structures imports without the compiled library.
    from rotated_det.layers import pairwise_iou_rotated as _pairwise_iou_rotated_op

    t1 = boxes1.tensor if isinstance(boxes1, Boxes) else boxes1
    t2 = boxes2.tensor if isinstance(boxes2, Boxes) else boxes2
    return _pairwise_iou_rotated_op(t1, t2)


pairwise_iou_rotated = pairwise_iou

"""Anchor generators: horizontal (XYXY) and rotated (XYWHA) anchors on feature-map grids.

Order of anchors (both generators, as in Detectron2): for each level, anchors are laid out as
``[H_l, W_l, A]`` flattened, i.e. index ``(y * W_l + x) * A + a``; within a cell, ``a`` runs over
sizes (slowest), then aspect ratios, then angles (fastest). An anchor's aspect ratio is h / w and
its area is size**2.
"""

import math
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from rotated_det.structures import Boxes, RotatedBoxes

__all__ = ["DefaultAnchorGenerator", "RotatedAnchorGenerator"]


def _broadcast_params(params, num_features: int, name: str) -> list[list[float]]:
    """Accept a flat list (same for every level) or a list of per-level lists."""
    if not isinstance(params, Sequence) or isinstance(params, str):
        raise TypeError(f"anchor {name} must be a list, got {params!r}")
    if len(params) == 0:
        raise ValueError(f"anchor {name} must not be empty")
    if not isinstance(params[0], Sequence):
        return [list(params)] * num_features
    if len(params) == 1:
        return [list(params[0])] * num_features
    if len(params) != num_features:
        raise ValueError(
            f"anchor {name} has {len(params)} per-level lists but there are {num_features} "
            f"strides (levels)"
        )
    return [list(p) for p in params]


def _grid_centers(
    size: tuple[int, int], stride: int, offset: float, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Centers (x, y) of every cell of a ``[H, W]`` grid, row-major, each ``[H * W]``."""
    h, w = size
    xs = (torch.arange(w, dtype=torch.float32, device=device) + offset) * stride
    ys = (torch.arange(h, dtype=torch.float32, device=device) + offset) * stride
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return xx.reshape(-1), yy.reshape(-1)


class _BufferList(nn.Module):
    """Holds a list of tensors as non-persistent buffers (so ``.to(device)`` moves them)."""

    def __init__(self, tensors: list[torch.Tensor]):
        super().__init__()
        for i, t in enumerate(tensors):
            self.register_buffer(str(i), t, persistent=False)

    def __len__(self) -> int:
        return len(self._buffers)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter(t for t in self._buffers.values() if t is not None)


class _GridAnchorGenerator(nn.Module):
    """Places per-level cell anchors (``cell_anchors``, centred at (0, 0)) on every feature-map
    cell. Subclasses set ``box_dim``, ``box_class`` and build ``cell_anchors``."""

    box_dim: int
    box_class: type
    cell_anchors: _BufferList  # per level [A_l, box_dim] anchors centred at (0, 0)

    def __init__(self, strides: Sequence[int], offset: float):
        super().__init__()
        self.strides = list(strides)
        self.num_features = len(self.strides)
        if not 0.0 <= offset < 1.0:
            raise ValueError(f"anchor offset must be in [0, 1), got {offset}")
        self.offset = offset

    @property
    def num_anchors(self) -> list[int]:
        """Anchors per cell, per level."""
        return [len(c) for c in self.cell_anchors]

    @property
    def num_cell_anchors(self) -> list[int]:
        return self.num_anchors

    def _grid_anchors(self, grid_sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
        out = []
        for size, stride, base in zip(grid_sizes, self.strides, self.cell_anchors):
            x, y = _grid_centers(size, stride, self.offset, base.device)
            zeros = torch.zeros_like(x)
            # XYXY anchors move both corners; (cx, cy, w, h, a) anchors move only the centre.
            shift = [x, y, x, y] if self.box_dim == 4 else [x, y, zeros, zeros, zeros]
            shifts = torch.stack(shift, dim=1)
            out.append((shifts[:, None, :] + base[None, :, :]).reshape(-1, self.box_dim))
        return out

    def forward(self, features: list[torch.Tensor]):
        """``features``: per level ``[N, C, H_l, W_l]``. Returns per level ``box_class`` boxes of
        ``H_l * W_l * A_l`` anchors (the same for every image)."""
        if len(features) != self.num_features:
            raise ValueError(
                f"anchor generator has {self.num_features} strides but got {len(features)} levels"
            )
        grid_sizes = [(f.shape[-2], f.shape[-1]) for f in features]
        return [self.box_class(a) for a in self._grid_anchors(grid_sizes)]


def _cell_sizes(sizes: Sequence[float], aspect_ratios: Sequence[float]):
    """``(w, h)`` of each (size, ratio) pair, size-major: area ``size**2``, ``h / w = ratio``."""
    for size in sizes:
        area = float(size) ** 2
        for ratio in aspect_ratios:
            w = math.sqrt(area / ratio)
            yield w, ratio * w


class DefaultAnchorGenerator(_GridAnchorGenerator):
    """Horizontal anchors ``(x0, y0, x1, y1)`` in pixels.

    Args:
        sizes: per level a list of sizes in pixels (sqrt of the area), or one list for all levels.
        aspect_ratios: per level a list of h / w ratios, or one list for all levels.
        strides: stride of each feature level, in pixels.
        offset: anchor centers are at ``(i + offset) * stride``; 0.0 or 0.5.
    """

    box_dim = 4
    box_class = Boxes

    def __init__(
        self,
        sizes: Sequence,
        aspect_ratios: Sequence,
        strides: Sequence[int],
        offset: float = 0.0,
    ):
        super().__init__(strides, offset)
        sizes = _broadcast_params(sizes, self.num_features, "sizes")
        ratios = _broadcast_params(aspect_ratios, self.num_features, "aspect_ratios")
        self.cell_anchors = _BufferList(
            [self.generate_cell_anchors(s, r) for s, r in zip(sizes, ratios)]
        )

    @staticmethod
    def generate_cell_anchors(
        sizes: Sequence[float], aspect_ratios: Sequence[float]
    ) -> torch.Tensor:
        """Anchors centred at (0, 0): ``[len(sizes) * len(aspect_ratios), 4]`` XYXY."""
        anchors = [
            [-w / 2.0, -h / 2.0, w / 2.0, h / 2.0] for w, h in _cell_sizes(sizes, aspect_ratios)
        ]
        return torch.tensor(anchors, dtype=torch.float32)


class RotatedAnchorGenerator(_GridAnchorGenerator):
    """Rotated anchors ``(cx, cy, w, h, angle)`` in pixels and degrees.

    Args:
        sizes: per level a list of sizes in pixels (sqrt of the area), or one list for all levels.
        aspect_ratios: per level a list of h / w ratios, or one list for all levels.
        strides: stride of each feature level, in pixels.
        angles: per level a list of angles in degrees (counter-clockwise), or one list for all.
        offset: anchor centers are at ``(i + offset) * stride``; 0.0 or 0.5.
    """

    box_dim = 5
    box_class = RotatedBoxes

    def __init__(
        self,
        sizes: Sequence,
        aspect_ratios: Sequence,
        strides: Sequence[int],
        angles: Sequence = (-90, -60, -30, 0, 30, 60, 90),
        offset: float = 0.0,
    ):
        super().__init__(strides, offset)
        sizes = _broadcast_params(sizes, self.num_features, "sizes")
        ratios = _broadcast_params(aspect_ratios, self.num_features, "aspect_ratios")
        angles = _broadcast_params(angles, self.num_features, "angles")
        self.cell_anchors = _BufferList(
            [self.generate_cell_anchors(s, r, a) for s, r, a in zip(sizes, ratios, angles)]
        )

    @staticmethod
    def generate_cell_anchors(
        sizes: Sequence[float], aspect_ratios: Sequence[float], angles: Sequence[float]
    ) -> torch.Tensor:
        """Anchors centred at (0, 0): ``[len(sizes) * len(aspect_ratios) * len(angles), 5]``."""
        anchors = [
            [0.0, 0.0, w, h, float(angle)]
            for w, h in _cell_sizes(sizes, aspect_ratios)
            for angle in angles
        ]
        return torch.tensor(anchors, dtype=torch.float32)

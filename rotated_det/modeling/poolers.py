"""ROIPooler: crop fixed-size features for boxes from the right level of a feature pyramid."""

import math

import torch
from torch import nn
from torch.fx.experimental.symbolic_shapes import guard_or_false

from rotated_det.layers import RiRoIAlignRotated, ROIAlignRotated
from rotated_det.layers.wrappers import cat, nonzero_tuple

__all__ = ["ROIPooler", "assign_boxes_to_levels", "convert_boxes_to_pooler_format"]


def _box_tensor(boxes) -> torch.Tensor:
    return boxes.tensor if hasattr(boxes, "tensor") else boxes


def assign_boxes_to_levels(
    box_lists: list,
    min_level: int,
    max_level: int,
    canonical_box_size: int,
    canonical_level: int,
) -> torch.Tensor:
    """Pyramid level of each box (FPN paper eq. 1), as an index from ``min_level``.

    A box of size ``canonical_box_size`` (sqrt of area, pixels) goes to ``canonical_level``; each
    doubling of size moves one level up. Returns ``[sum of boxes]`` int64 in
    ``[0, max_level - min_level]``.
    """
    sizes = []
    for boxes in box_lists:
        t = _box_tensor(boxes)
        if t.shape[1] == 5:
            area = t[:, 2] * t[:, 3]
        else:
            area = (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1])
        sizes.append(torch.sqrt(area.clamp(min=0)))
    size = cat(sizes)
    level = torch.floor(canonical_level + torch.log2(size / canonical_box_size + 1e-8))
    return (level.clamp(min=min_level, max=max_level) - min_level).to(torch.int64)


def convert_boxes_to_pooler_format(box_lists: list) -> torch.Tensor:
    """Concatenate per-image boxes with their image index in column 0: ``[K, 1 + box_dim]``."""
    rois = []
    for i, boxes in enumerate(box_lists):
        t = _box_tensor(boxes)
        idx = torch.full((t.shape[0], 1), float(i), dtype=t.dtype, device=t.device)
        rois.append(torch.cat([idx, t], dim=1))
    return cat(rois)


_RI_POOLER_TYPES = ("RiRoIAlignRotated", "RiROIAlignRotated")


class ROIPooler(nn.Module):
    """Pool ``output_size`` features per box from a multi-level feature pyramid.

    Args:
        output_size: ``(oh, ow)`` or an int.
        scales: ``1 / stride`` of each level, finest first (e.g. 1/4 ... 1/32).
        sampling_ratio: bilinear samples per bin side (0: adaptive, ceil(roi size / bin)).
        pooler_type: "ROIAlignRotated" (rotated boxes, ``[N, 5]``), "RiRoIAlignRotated" (rotated
            boxes, ReDet's rotation-invariant RoIAlign of regular C_n features; also spelled
            "RiROIAlignRotated") or "ROIAlignV2" (horizontal XYXY boxes, torchvision's aligned
            ROIAlign).
        canonical_box_size, canonical_level: level assignment, see ``assign_boxes_to_levels``.
        num_orientations: for "RiRoIAlignRotated" only (and required there): orientation
            channels per field of the features (ReDet: 8).
    """

    def __init__(
        self,
        output_size,
        scales: list[float],
        sampling_ratio: int,
        pooler_type: str = "ROIAlignRotated",
        canonical_box_size: int = 224,
        canonical_level: int = 4,
        num_orientations: int | None = None,
    ):
        super().__init__()
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        self.output_size = tuple(output_size)
        min_level = -math.log2(scales[0])
        max_level = -math.log2(scales[-1])
        if not (
            math.isclose(min_level, round(min_level)) and math.isclose(max_level, round(max_level))
        ):
            raise ValueError(f"ROIPooler scales must be powers of 1/2, got {scales}")
        self.min_level, self.max_level = int(round(min_level)), int(round(max_level))
        if len(scales) != self.max_level - self.min_level + 1:
            raise ValueError(f"ROIPooler scales must be consecutive powers of 1/2, got {scales}")
        if num_orientations is not None and pooler_type not in _RI_POOLER_TYPES:
            raise ValueError(
                f"ROIPooler: num_orientations is for pooler_type='RiRoIAlignRotated', got "
                f"pooler_type={pooler_type!r}"
            )
        if pooler_type in _RI_POOLER_TYPES:
            if num_orientations is None:
                raise ValueError(
                    "ROIPooler: pooler_type='RiRoIAlignRotated' needs num_orientations (the "
                    "orientation channels per field of the features, e.g. 8)"
                )
            self.box_dim = 5
            self.level_poolers = nn.ModuleList(
                RiRoIAlignRotated(self.output_size, s, sampling_ratio, num_orientations)
                for s in scales
            )
        elif pooler_type == "ROIAlignRotated":
            self.box_dim = 5
            self.level_poolers = nn.ModuleList(
                ROIAlignRotated(self.output_size, spatial_scale=s, sampling_ratio=sampling_ratio)
                for s in scales
            )
        elif pooler_type == "ROIAlignV2":
            from torchvision.ops import RoIAlign

            self.box_dim = 4
            self.level_poolers = nn.ModuleList(
                RoIAlign(
                    self.output_size, spatial_scale=s, sampling_ratio=sampling_ratio, aligned=True
                )
                for s in scales
            )
        else:
            raise ValueError(
                "pooler_type must be 'ROIAlignRotated', 'RiRoIAlignRotated' or 'ROIAlignV2', got "
                f"{pooler_type!r}"
            )
        self.canonical_box_size = canonical_box_size
        self.canonical_level = canonical_level

    def forward(self, x: list[torch.Tensor], box_lists: list) -> torch.Tensor:
        """
        Args:
            x: per level ``[N, C, H_l, W_l]``, finest first.
            box_lists: per image a RotatedBoxes / Boxes (or ``[K_i, box_dim]`` tensor), in input
                image pixels.

        Returns:
            ``[sum K_i, C, oh, ow]`` pooled features, boxes in the order of ``box_lists``.
        """
        if len(x) != len(self.level_poolers):
            raise ValueError(
                f"ROIPooler has {len(self.level_poolers)} levels but got {len(x)} feature maps"
            )
        if len(box_lists) != x[0].shape[0]:
            raise ValueError(
                f"ROIPooler got {len(box_lists)} box lists for a batch of {x[0].shape[0]} images"
            )
        rois = convert_boxes_to_pooler_format(box_lists)
        if rois.shape[1] != self.box_dim + 1:
            raise ValueError(f"ROIPooler expected {self.box_dim}-d boxes, got {rois.shape[1] - 1}")
        if self.box_dim == 5:
            # Rotated RoIs stay at least float32 under autocast (bfloat16 would round their
            # coordinates to 8 significant bits: 4 px steps at 1000 px); ROIAlignRotated widens
            # half features itself.
            rois = rois.to(torch.promote_types(x[0].dtype, torch.float32))
        else:
            rois = rois.to(x[0].dtype)
        num_channels = x[0].shape[1]
        if len(self.level_poolers) == 1:
            return self.level_poolers[0](x[0], rois)
        levels = assign_boxes_to_levels(
            box_lists,
            self.min_level,
            self.max_level,
            self.canonical_box_size,
            self.canonical_level,
        )
        output = x[0].new_zeros((rois.shape[0], num_channels) + self.output_size)
        for level, pooler in enumerate(self.level_poolers):
            inds = nonzero_tuple(levels == level)[0]
            # Skipping an empty level only saves time (its rows stay zero). Not under tracing,
            # where the trace-time emptiness would be frozen into the graph; under torch.export
            # the count is data-dependent and guard_or_false takes it as non-empty.
            if not torch.jit.is_tracing() and guard_or_false(inds.numel() == 0):
                continue
            output.index_put_((inds,), pooler(x[level], rois[inds]))
        return output

"""Gliding-vertex coder (Xu et al., "Gliding Vertex on the Horizontal Bounding Box for
Multi-Oriented Object Detection", TPAMI 2020): a rotated box as its horizontal bounding box, the
glides of its four vertices along the bounding box's sides, and an obliquity factor.

Each vertex of a rotated box touches one side of its bounding box ``(x0, y0, x1, y1)``
(``W = x1 - x0``, ``H = y1 - y0``): the top vertex ``(xt, y0)``, the right ``(x1, yr)``, the bottom
``(xb, y1)`` and the left ``(x0, yl)``. The glides are the fractions of the sides walked clockwise
on screen from a corner to the vertex:

    t = (xt - x0) / W,   r = (yr - y0) / H,   b = (x1 - xb) / W,   l = (y1 - yl) / H

all in [0, 1] (for a rectangle ``b = t`` and ``l = r``). An axis-aligned box has all four glides 0
(its top vertex is taken as the top-left corner, and so on round). The obliquity is the box's area
over its bounding box's, ``w h / (W H)``: 1 for an axis-aligned box, 0.5 for a square at 45
degrees, smaller for thin oblique boxes.

Worked example: the rectangle with corners (0, 10), (20, 0), (26, 12), (6, 22), i.e.
``(13, 11, sqrt(500), sqrt(180), 26.565)`` in le90, has the bounding box (0, 0, 26, 22), glides
``t = 20 / 26``, ``r = 12 / 22``, ``b = (26 - 6) / 26``, ``l = (22 - 10) / 22`` and obliquity
``300 / (26 * 22) = 0.5245``.

Decoding builds the quadrilateral of the four glided vertices; an object whose predicted
obliquity is above ``obliquity_threshold`` (nearly horizontal, where the glides are ill-defined)
keeps its bounding box, any other becomes the minimum-area rotated rectangle enclosing the
quadrilateral.
"""

import torch

from rotated_det.structures import (
    cos_sin_degrees,
    hbox_to_rbox,
    normalize_rbox_angles,
    poly_to_rbox,
)

from ..box_regression import DEFAULT_SCALE_CLAMP, Box2BoxTransform

__all__ = ["GlidingVertexCoder", "gliding_vertex_targets"]

# deltas per box: 4 bounding-box deltas, 4 glides, 1 obliquity
NUM_DELTAS = 9


def gliding_vertex_targets(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bounding boxes, glides and obliquity of rotated boxes (see the module docstring).

    Args:
        boxes: ``[N, 5]`` (cx, cy, w, h, angle in degrees), pixels.

    Returns:
        ``[N, 4]`` XYXY bounding boxes, ``[N, 4]`` glides ``(t, r, b, l)`` in [0, 1] and ``[N]``
        obliquity in (0, 1]. Degenerate boxes (a side of 0) get glides 0 and obliquity 1.
    """
    boxes = boxes.float()
    cx, cy, w, h, a = boxes.unbind(1)
    # exact at multiples of 90 degrees: the two top corners of an axis-aligned box tie exactly
    c, s = cos_sin_degrees(a)
    ux, uy = 0.5 * w * c, -0.5 * w * s
    vx, vy = 0.5 * h * s, 0.5 * h * c
    xs = torch.stack([cx - ux - vx, cx + ux - vx, cx + ux + vx, cx - ux + vx], dim=1)
    ys = torch.stack([cy - uy - vy, cy + uy - vy, cy + uy + vy, cy - uy + vy], dim=1)
    x0, x1 = xs.min(1).values, xs.max(1).values
    y0, y1 = ys.min(1).values, ys.max(1).values
    inf = torch.full_like(xs, float("inf"))
    # Ties (two corners on one side: axis-aligned boxes) go to the corner a clockwise walk from
    # the top-left reaches first, so that all four glides are 0.
    top_x = torch.where(ys == y0[:, None], xs, inf).min(1).values
    right_y = torch.where(xs == x1[:, None], ys, inf).min(1).values
    bottom_x = torch.where(ys == y1[:, None], xs, -inf).max(1).values
    left_y = torch.where(xs == x0[:, None], ys, -inf).max(1).values
    width, height = x1 - x0, y1 - y0
    safe_w, safe_h = width.clamp(min=1e-6), height.clamp(min=1e-6)
    glides = torch.stack(
        [
            (top_x - x0) / safe_w,
            (right_y - y0) / safe_h,
            (x1 - bottom_x) / safe_w,
            (y1 - left_y) / safe_h,
        ],
        dim=1,
    )
    degenerate = (width <= 0) | (height <= 0)
    glides = torch.where(degenerate[:, None], torch.zeros_like(glides), glides.clamp(0.0, 1.0))
    obliquity = torch.where(
        degenerate, torch.ones_like(w), ((w * h) / (safe_w * safe_h)).clamp(0.0, 1.0)
    )
    return torch.stack([x0, y0, x1, y1], dim=1), glides, obliquity


class GlidingVertexCoder:
    """Horizontal proposals -> rotated boxes through bounding-box deltas, glides and obliquity.

    ``get_deltas`` encodes a rotated target against a horizontal proposal as 9 values: the
    Box2BoxTransform deltas ``(dx, dy, dw, dh)`` of the target's bounding box, its 4 glides and
    its obliquity (the last 5 are not relative to the proposal; a predictor outputs them through
    a sigmoid). ``apply_deltas`` inverts it (see the module docstring).

    Args:
        weights: ``(wx, wy, ww, wh)`` of the bounding-box deltas (MMRotate's target stds
            (0.1, 0.1, 0.2, 0.2): (10, 10, 5, 5)).
        obliquity_threshold: decoded boxes of a larger obliquity keep their bounding box
            (MMRotate's ``ratio_thr``, 0.8).
        angle_version: angle convention of the decoded boxes ("le90", "le135" or "oc").
        scale_clamp: upper bound of ``dw``, ``dh`` when decoding.
    """

    def __init__(
        self,
        weights=(10.0, 10.0, 5.0, 5.0),
        obliquity_threshold: float = 0.8,
        angle_version: str = "le90",
        scale_clamp: float = DEFAULT_SCALE_CLAMP,
    ):
        self.hbox_coder = Box2BoxTransform(weights, scale_clamp=scale_clamp)
        if not 0.0 < obliquity_threshold <= 1.0:
            raise ValueError(
                f"GlidingVertexCoder: obliquity_threshold must be in (0, 1], got "
                f"{obliquity_threshold}"
            )
        if angle_version not in ("le90", "le135", "oc"):
            raise ValueError(
                f"GlidingVertexCoder: angle_version must be 'le90', 'le135' or 'oc', got "
                f"{angle_version!r}"
            )
        self.obliquity_threshold = float(obliquity_threshold)
        self.angle_version = angle_version

    @property
    def weights(self) -> tuple[float, ...]:
        """The bounding-box delta weights ``(wx, wy, ww, wh)``."""
        return self.hbox_coder.weights

    def get_deltas(self, proposals: torch.Tensor, target_boxes: torch.Tensor) -> torch.Tensor:
        """``proposals``: ``[N, 4]`` XYXY; ``target_boxes``: ``[N, 5]`` rotated. Returns
        ``[N, 9]``: bounding-box deltas, glides ``(t, r, b, l)``, obliquity."""
        hboxes, glides, obliquity = gliding_vertex_targets(target_boxes)
        deltas = self.hbox_coder.get_deltas(proposals.float(), hboxes)
        return torch.cat([deltas, glides, obliquity[:, None]], dim=1)

    def apply_deltas(self, deltas: torch.Tensor, proposals: torch.Tensor) -> torch.Tensor:
        """``deltas``: ``[N, 9]`` (glides and obliquity in [0, 1]); ``proposals``: ``[N, 4]`` XYXY.
        Returns ``[N, 5]`` rotated boxes in the coder's angle convention."""
        if deltas.dim() != 2 or deltas.shape[1] != NUM_DELTAS:
            raise ValueError(
                f"GlidingVertexCoder.apply_deltas: deltas must be [N, {NUM_DELTAS}], got "
                f"{tuple(deltas.shape)}"
            )
        deltas = deltas.float()
        hboxes = self.hbox_coder.apply_deltas(deltas[:, :4], proposals)
        x0, y0, x1, y1 = hboxes.unbind(1)
        width, height = x1 - x0, y1 - y0
        t, r, b, l = deltas[:, 4:8].clamp(0.0, 1.0).unbind(1)  # noqa: E741
        quads = torch.stack(
            [x0 + t * width, y0, x1, y0 + r * height, x1 - b * width, y1, x0, y1 - l * height],
            dim=1,
        )
        oblique = poly_to_rbox(quads, self.angle_version)
        horizontal = normalize_rbox_angles(hbox_to_rbox(hboxes), self.angle_version)
        keep_horizontal = deltas[:, 8:9] > self.obliquity_threshold
        return torch.where(keep_horizontal, horizontal, oblique)

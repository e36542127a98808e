"""Box coders: turn (source box, target box) pairs into regression deltas and back.

- ``Box2BoxTransform``: horizontal XYXY boxes, deltas ``(dx, dy, dw, dh)``.
- ``Box2BoxTransformRotated``: rotated ``(cx, cy, w, h, angle_deg)`` boxes, deltas
  ``(dx, dy, dw, dh, da)`` with ``da`` in radians (Detectron2's semantics).
- ``MidpointOffsetCoder``: horizontal anchors to rotated boxes through the midpoint-offset
  representation of Oriented R-CNN (Xie et al. 2021), deltas ``(dx, dy, dw, dh, da, db)``.

With weights ``(wx, wy, ww, wh[, wa])`` the deltas are
``dx = wx * (tx - sx) / sw``, ``dy = wy * (ty - sy) / sh``, ``dw = ww * log(tw / sw)``,
``dh = wh * log(th / sh)`` and ``da = wa * radians(wrap(ta - sa))`` where ``wrap`` maps to
[-180, 180). The offsets are measured along the image axes (not the box axes).
"""

import math

import torch

from rotated_det.structures import normalize_rbox_angles, rbox_to_poly

__all__ = [
    "Box2BoxTransform",
    "Box2BoxTransformRotated",
    "MidpointOffsetCoder",
    "DEFAULT_SCALE_CLAMP",
]

# A box may grow at most by this log-factor in one decoding step (1000 / 16).
DEFAULT_SCALE_CLAMP = math.log(1000.0 / 16)


def _check_weights(weights, expected: int, owner: str, hint: str) -> tuple[float, ...]:
    weights = tuple(float(w) for w in weights)
    if len(weights) != expected:
        raise ValueError(
            f"{owner} needs {expected} weights {hint}, got {len(weights)}: {weights}. "
            + (
                "A 4-weight tuple is for horizontal boxes (Box2BoxTransform); rotated boxes "
                "need a 5th weight for the angle, e.g. (10.0, 10.0, 5.0, 5.0, 1.0)."
                if expected == 5 and len(weights) == 4
                else ""
            )
        )
    if any(w <= 0 for w in weights):
        raise ValueError(f"{owner} weights must be positive, got {weights}")
    return weights


class Box2BoxTransform:
    """Coder for horizontal boxes ``(x0, y0, x1, y1)`` in pixels.

    Args:
        weights: ``(wx, wy, ww, wh)`` multipliers of the deltas.
        scale_clamp: upper bound of ``dw`` and ``dh`` when decoding.
    """

    def __init__(self, weights=(1.0, 1.0, 1.0, 1.0), scale_clamp: float = DEFAULT_SCALE_CLAMP):
        self.weights = _check_weights(weights, 4, "Box2BoxTransform", "(wx, wy, ww, wh)")
        self.scale_clamp = scale_clamp

    def get_deltas(self, src_boxes: torch.Tensor, target_boxes: torch.Tensor) -> torch.Tensor:
        """``src_boxes``, ``target_boxes``: ``[N, 4]`` XYXY. Returns ``[N, 4]`` deltas."""
        sw = src_boxes[:, 2] - src_boxes[:, 0]
        sh = src_boxes[:, 3] - src_boxes[:, 1]
        sx = src_boxes[:, 0] + 0.5 * sw
        sy = src_boxes[:, 1] + 0.5 * sh
        tw = target_boxes[:, 2] - target_boxes[:, 0]
        th = target_boxes[:, 3] - target_boxes[:, 1]
        tx = target_boxes[:, 0] + 0.5 * tw
        ty = target_boxes[:, 1] + 0.5 * th
        wx, wy, ww, wh = self.weights
        return torch.stack(
            [
                wx * (tx - sx) / sw,
                wy * (ty - sy) / sh,
                ww * torch.log(tw / sw),
                wh * torch.log(th / sh),
            ],
            dim=1,
        )

    def apply_deltas(self, deltas: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """``deltas``: ``[N, 4 * k]``; ``boxes``: ``[N, 4]``. Returns ``[N, 4 * k]`` XYXY."""
        deltas = deltas.float()
        boxes = boxes.to(deltas.dtype)
        w = (boxes[:, 2] - boxes[:, 0])[:, None]
        h = (boxes[:, 3] - boxes[:, 1])[:, None]
        x = boxes[:, 0:1] + 0.5 * w
        y = boxes[:, 1:2] + 0.5 * h
        wx, wy, ww, wh = self.weights
        dx = deltas[:, 0::4] / wx
        dy = deltas[:, 1::4] / wy
        dw = (deltas[:, 2::4] / ww).clamp(max=self.scale_clamp)
        dh = (deltas[:, 3::4] / wh).clamp(max=self.scale_clamp)
        cx = dx * w + x
        cy = dy * h + y
        half_w = 0.5 * torch.exp(dw) * w
        half_h = 0.5 * torch.exp(dh) * h
        out = torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=2)
        return out.reshape(deltas.shape)


class Box2BoxTransformRotated:
    """Coder for rotated boxes ``(cx, cy, w, h, angle)``: pixels, angle in degrees.

    Args:
        weights: ``(wx, wy, ww, wh, wa)``; ``wa`` multiplies the angle delta in radians.
        scale_clamp: upper bound of ``dw`` and ``dh`` when decoding.
        angle_version: None (Detectron2's behaviour: boxes used as given, angle deltas wrapped
            to [-180, 180) degrees, decoded angles in [-180, 180)) or one of "le90", "le135",
            "oc" (MMRotate's): source and target boxes are first rewritten in that angle
            convention (same rectangles, see ``rotated_det.structures.normalize_rbox_angles``),
            the angle delta is wrapped into the convention's own 180-degree range (a rectangle
            turned by 180 degrees is the same rectangle): [-90, 90) for "le90" and "oc",
            [-45, 135) for "le135" (MMRotate's ``norm_angle``), and decoded boxes are returned in
            the convention. With angle-0 sources (S2A-Net's square anchors) the "le135" delta is
            then the target's angle itself, continuous through 90 degrees: wrapped to [-90, 90)
            instead, an upright object's target would jump from +90 to -90 degrees there, and the
            regression would average the two into a wrong angle for every upright object.
        edge_swap: with an ``angle_version``, encode each target as whichever of its two
            descriptions ``(w, h, a)`` and ``(h, w, a + 90)`` has the angle nearer the source's
            (MMRotate's ``edge_swap``), so the angle delta lies in [-45, 45) degrees. Without it
            a near-square target gets deltas near +-90 degrees from some sources and near 0 from
            others for the same rectangle: regression then averages contradicting targets.
            Example: source ``(0, 0, 10, 10, 80)``, target ``(0, 0, 10, 10, -10)`` (a square,
            le90): without the swap ``da = -90`` degrees, with it the target is read as
            ``(0, 0, 10, 10, 80)`` and ``da = 0``.
        proj_xy: express the centre offset in the source box's own axes (MMRotate's
            ``proj_xy``): ``dx`` along its width direction ``(cos a, -sin a)``, ``dy`` along its
            height direction ``(sin a, cos a)``, instead of along the image axes. The same for
            angle-0 sources; for rotated sources (S2A-Net's refined anchors) a target offset along
            the box's length always appears in ``dx``. Example: source ``(0, 0, 20, 10, 90)``,
            target centre ``(0, -20)`` (20 px up, along the source's width axis): ``dx = 1``,
            ``dy = 0`` (without it ``dx = 0``, ``dy = -2``).
    """

    def __init__(
        self,
        weights=(1.0, 1.0, 1.0, 1.0, 1.0),
        scale_clamp: float = DEFAULT_SCALE_CLAMP,
        angle_version: str | None = None,
        edge_swap: bool = False,
        proj_xy: bool = False,
    ):
        self.weights = _check_weights(weights, 5, "Box2BoxTransformRotated", "(wx, wy, ww, wh, wa)")
        self.scale_clamp = scale_clamp
        if angle_version not in (None, "le90", "le135", "oc"):
            raise ValueError(
                f"angle_version must be None, 'le90', 'le135' or 'oc', got {angle_version!r}"
            )
        if edge_swap and angle_version is None:
            raise ValueError(
                "edge_swap=True needs an angle_version ('le90', 'le135' or 'oc'): Detectron2's "
                "convention (angle_version=None) tells a box from its 90-degree-turned twin"
            )
        self.angle_version = angle_version
        self.edge_swap = edge_swap
        self.proj_xy = proj_xy

    def get_deltas(self, src_boxes: torch.Tensor, target_boxes: torch.Tensor) -> torch.Tensor:
        """``src_boxes``, ``target_boxes``: ``[N, 5]``. Returns ``[N, 5]`` deltas."""
        if self.angle_version is not None:
            src_boxes = normalize_rbox_angles(src_boxes, self.angle_version)
            target_boxes = normalize_rbox_angles(target_boxes, self.angle_version)
        sx, sy, sw, sh, sa = src_boxes.unbind(1)
        tx, ty, tw, th, ta = target_boxes.unbind(1)
        wx, wy, ww, wh, wa = self.weights
        period = 360.0 if self.angle_version is None else 180.0
        low = -45.0 if self.angle_version == "le135" else -period / 2  # delta range's start
        da = torch.remainder(ta - sa - low, period) + low
        if self.edge_swap:
            da_swapped = torch.remainder(ta + 90.0 - sa - low, period) + low
            swap = da_swapped.abs() < da.abs()
            tw, th = torch.where(swap, th, tw), torch.where(swap, tw, th)
            da = torch.where(swap, da_swapped, da)
        ox, oy = tx - sx, ty - sy
        if self.proj_xy:
            rad = torch.deg2rad(sa)
            cos, sin = torch.cos(rad), torch.sin(rad)
            ox, oy = ox * cos - oy * sin, ox * sin + oy * cos
        return torch.stack(
            [
                wx * ox / sw,
                wy * oy / sh,
                ww * torch.log(tw / sw),
                wh * torch.log(th / sh),
                wa * torch.deg2rad(da),
            ],
            dim=1,
        )

    def apply_deltas(self, deltas: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """``deltas``: ``[N, 5 * k]``; ``boxes``: ``[N, 5]``. Returns ``[N, 5 * k]`` boxes."""
        if deltas.shape[1] % 5 != 0:
            raise ValueError(f"rotated deltas must have 5 * k columns, got {tuple(deltas.shape)}")
        deltas = deltas.float()
        boxes = boxes.to(deltas.dtype)
        if self.angle_version is not None:
            boxes = normalize_rbox_angles(boxes, self.angle_version)
        x, y, w, h, a = (boxes[:, i : i + 1] for i in range(5))
        wx, wy, ww, wh, wa = self.weights
        dx = deltas[:, 0::5] / wx
        dy = deltas[:, 1::5] / wy
        dw = (deltas[:, 2::5] / ww).clamp(max=self.scale_clamp)
        dh = (deltas[:, 3::5] / wh).clamp(max=self.scale_clamp)
        da = deltas[:, 4::5] / wa
        angle = torch.rad2deg(da) + a
        angle = torch.remainder(angle + 180.0, 360.0) - 180.0
        ox, oy = dx * w, dy * h
        if self.proj_xy:
            rad = torch.deg2rad(a)
            cos, sin = torch.cos(rad), torch.sin(rad)
            ox, oy = ox * cos + oy * sin, oy * cos - ox * sin
        out = torch.stack(
            [ox + x, oy + y, torch.exp(dw) * w, torch.exp(dh) * h, angle], dim=2
        ).reshape(deltas.shape)
        if self.angle_version is not None:
            out = normalize_rbox_angles(out.reshape(-1, 5), self.angle_version).reshape(
                deltas.shape
            )
        return out


class MidpointOffsetCoder:
    """Midpoint-offset coder of Oriented R-CNN: horizontal anchors -> rotated boxes.

    A rotated box is described by its bounding box ``(x, y, w, h)`` and two offsets: ``alpha``,
    the x offset from ``x`` of the box's top vertex (on the bounding box's top edge), and
    ``beta``, the y offset from ``y`` of its right vertex (on the right edge). The deltas to an
    anchor ``(px, py, pw, ph)`` are ``(wx (x - px) / pw, wy (y - py) / ph, ww log(w / pw),
    wh log(h / ph), wa alpha / w, wb beta / h)``. Decoding builds the parallelogram of the four
    vertices, stretches its half-diagonals to equal length (making it a rectangle) and returns
    that rectangle as ``(cx, cy, w, h, angle_deg)``.

    Args:
        weights: ``(wx, wy, ww, wh, wa, wb)``.
        scale_clamp: upper bound of ``dw``, ``dh`` when decoding.
        angle_version: optional angle convention of the decoded boxes ("le90", "le135", "oc").
    """

    def __init__(
        self,
        weights=(1.0, 1.0, 1.0, 1.0, 2.0, 2.0),
        scale_clamp: float = DEFAULT_SCALE_CLAMP,
        angle_version: str | None = None,
    ):
        self.weights = _check_weights(
            weights, 6, "MidpointOffsetCoder", "(wx, wy, ww, wh, walpha, wbeta)"
        )
        self.scale_clamp = scale_clamp
        self.angle_version = angle_version

    def get_deltas(self, anchors: torch.Tensor, target_boxes: torch.Tensor) -> torch.Tensor:
        """``anchors``: ``[N, 4]`` XYXY; ``target_boxes``: ``[N, 5]`` rotated -> ``[N, 6]``."""
        # [N, 4, 2] cyclic corners, starting at (+w/2, +h/2): where two corners tie for the top
        # vertex, argmin below takes the first, so the start is part of the coder's definition.
        corners = rbox_to_poly(target_boxes.float()).view(-1, 4, 2).roll(2, dims=1)
        xs, ys = corners[..., 0], corners[..., 1]
        x0, x1 = xs.min(1).values, xs.max(1).values
        y0, y1 = ys.min(1).values, ys.max(1).values
        gw, gh = x1 - x0, y1 - y0
        gx, gy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
        # Top vertex: smallest y, ties (axis-aligned boxes) broken towards the left. The right
        # vertex is the top vertex's neighbour with the larger x (corners are cyclic).
        top = torch.argmin(ys + 1e-4 * (xs - x0[:, None]), dim=1)
        idx = torch.arange(len(xs), device=xs.device)
        nxt, prv = (top + 1) % 4, (top + 3) % 4
        right = torch.where(xs[idx, nxt] >= xs[idx, prv], nxt, prv)
        alpha = xs[idx, top] - gx
        beta = ys[idx, right] - gy
        pw = anchors[:, 2] - anchors[:, 0]
        ph = anchors[:, 3] - anchors[:, 1]
        px = anchors[:, 0] + 0.5 * pw
        py = anchors[:, 1] + 0.5 * ph
        wx, wy, ww, wh, wa, wb = self.weights
        return torch.stack(
            [
                wx * (gx - px) / pw,
                wy * (gy - py) / ph,
                ww * torch.log(gw.clamp(min=1e-6) / pw),
                wh * torch.log(gh.clamp(min=1e-6) / ph),
                wa * alpha / gw.clamp(min=1e-6),
                wb * beta / gh.clamp(min=1e-6),
            ],
            dim=1,
        )

    def apply_deltas(self, deltas: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """``deltas``: ``[N, 6]``; ``anchors``: ``[N, 4]`` XYXY -> ``[N, 5]`` rotated boxes."""
        deltas = deltas.float()
        anchors = anchors.to(deltas.dtype)
        wx, wy, ww, wh, wa, wb = self.weights
        pw = anchors[:, 2] - anchors[:, 0]
        ph = anchors[:, 3] - anchors[:, 1]
        px = anchors[:, 0] + 0.5 * pw
        py = anchors[:, 1] + 0.5 * ph
        gx = px + deltas[:, 0] / wx * pw
        gy = py + deltas[:, 1] / wy * ph
        gw = pw * torch.exp((deltas[:, 2] / ww).clamp(max=self.scale_clamp))
        gh = ph * torch.exp((deltas[:, 3] / wh).clamp(max=self.scale_clamp))
        alpha = (deltas[:, 4] / wa).clamp(-0.5, 0.5) * gw
        beta = (deltas[:, 5] / wb).clamp(-0.5, 0.5) * gh
        # Half-diagonals to the top vertex (e1) and the right vertex (e2).
        e1 = torch.stack([alpha, -0.5 * gh], dim=1)
        e2 = torch.stack([0.5 * gw, beta], dim=1)
        n1 = e1.norm(dim=1, keepdim=True).clamp(min=1e-6)
        n2 = e2.norm(dim=1, keepdim=True).clamp(min=1e-6)
        length = torch.maximum(n1, n2)
        e1 = e1 * (length / n1)
        e2 = e2 * (length / n2)
        side_w = e2 - e1  # top vertex -> right vertex
        side_h = -e1 - e2  # right vertex -> bottom vertex
        w = side_w.norm(dim=1)
        h = side_h.norm(dim=1)
        angle = torch.rad2deg(torch.atan2(-side_w[:, 1], side_w[:, 0]))
        out = torch.stack([gx, gy, w, h, angle], dim=1)
        if self.angle_version is not None:
            out = normalize_rbox_angles(out, self.angle_version)
        return out

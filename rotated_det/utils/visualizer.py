"""Drawing rotated boxes with class names, scores and per-class colours.

:class:`Visualizer` draws model predictions (``Instances`` with ``pred_boxes``, ``scores``,
``pred_classes``) and dataset dicts (``annotations`` with ``bbox`` in XYWHA_ABS) on an RGB image.
It is built for dense aerial scenes (hundreds of small objects):

- every box is drawn as a thin anti-aliased polygon in its class colour, with a short heading line
  from the centre to the middle of the edge the box's w-axis points at, so orientation is visible;
- labels ("ship 97") are placed greedily, best score first, at the first of a few positions around
  the box where they overlap no other label and hardly any box; labels that find no free place are
  left out and counted (``VisImage.num_labels_hidden``, shown in the legend) instead of being
  piled on top of the objects;
- a legend lists each drawn class with its colour and number of boxes;
- ``scale`` > 1 renders on an upscaled canvas, which gives small objects room for their labels.

Boxes may be ``RotatedBoxes``, tensors or arrays of shape (N, 5) = (cx, cy, w, h, angle in
degrees, CCW); their corners come from ``rotated_det.structures``' ``rbox_to_poly`` (the one
definition of the box convention), in its order: (-w/2, -h/2), (+w/2, -h/2), (+w/2, +h/2),
(-w/2, +h/2) in the box frame. Apart from that pure-tensor helper the module needs no other
rotated_det package (dataset metadata is any object with ``thing_classes``).
"""

from __future__ import annotations

import colorsys
import os
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from rotated_det.structures.rotated_box_conversions import rbox_to_poly

__all__ = ["Visualizer", "VisImage", "class_color"]

# BoxMode values of the dataset-dict convention (rotated_det.structures.BoxMode); repeated here
# as integers (the visualizer takes plain ints from dataset dicts).
_XYXY_ABS, _XYWH_ABS, _XYWHA_ABS = 0, 1, 4
_FONT = cv2.FONT_HERSHEY_SIMPLEX
# A label may cover at most this fraction of its area with (other) boxes.
_MAX_BOX_COVER = 0.2


def class_color(class_id: int) -> tuple[int, int, int]:
    """A distinct, saturated RGB colour for a class id (golden-ratio hue steps, deterministic)."""
    hue = (0.07 + 0.618033988749895 * int(class_id)) % 1.0
    sat = 0.85 if int(class_id) % 2 == 0 else 0.65
    r, g, b = colorsys.hsv_to_rgb(hue, sat, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "tensor"):  # RotatedBoxes / Boxes
        x = x.tensor
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


class VisImage:
    """An RGB uint8 canvas plus what was drawn on it.

    Attributes:
        num_boxes: boxes drawn.
        num_labels_drawn / num_labels_hidden: labels placed / left out because every candidate
            position overlapped another label or left the image.
    """

    def __init__(self, img: np.ndarray, scale: float = 1.0):
        self.scale = float(scale)
        self.height, self.width = img.shape[:2]
        if self.scale != 1.0:
            img = cv2.resize(
                img,
                (round(self.width * self.scale), round(self.height * self.scale)),
                interpolation=cv2.INTER_LINEAR,
            )
        self.canvas = np.ascontiguousarray(img[:, :, :3]).astype(np.uint8, copy=True)
        self.num_boxes = 0
        self.num_labels_drawn = 0
        self.num_labels_hidden = 0

    def get_image(self) -> np.ndarray:
        """The drawing as an RGB uint8 array (H*scale, W*scale, 3)."""
        return self.canvas

    def save(self, filepath: str) -> None:
        """Write the drawing to an image file (format from the extension)."""
        os.makedirs(os.path.dirname(os.path.abspath(filepath)), exist_ok=True)
        if not cv2.imwrite(filepath, self.canvas[:, :, ::-1]):
            raise OSError(f"cv2.imwrite could not write {filepath}")


class Visualizer:
    """Draws rotated detections or annotations on an image.

    Args:
        img_rgb: (H, W, 3) uint8 image in RGB order (flip a cv2/BGR image with ``img[:, :, ::-1]``).
        metadata: an object with ``thing_classes`` (list[str]) and optionally ``thing_colors``
            (list of RGB tuples), e.g. ``MetadataCatalog.get(name)``; None draws class ids.
        scale: canvas upscaling factor; boxes are given in the input image's pixels.
        line_width: polygon line width in canvas pixels; None picks one from the image size.
        font_scale: OpenCV font scale of labels; None picks one from the image size.
        fill_alpha: opacity of the filled box interior (0 draws outlines only).
        show_legend: draw the per-class colour legend.
    """

    def __init__(
        self,
        img_rgb: np.ndarray,
        metadata: Any = None,
        scale: float = 1.0,
        line_width: int | None = None,
        font_scale: float | None = None,
        fill_alpha: float = 0.15,
        show_legend: bool = True,
    ):
        img_rgb = np.asarray(img_rgb)
        if img_rgb.ndim == 2:
            img_rgb = np.stack([img_rgb] * 3, axis=-1)
        if img_rgb.ndim != 3 or img_rgb.shape[2] < 3:
            raise ValueError(
                f"Visualizer expects an (H, W, 3) RGB image, got shape {img_rgb.shape}"
            )
        if img_rgb.dtype != np.uint8:
            img_rgb = np.clip(img_rgb, 0, 255).astype(np.uint8)
        self.output = VisImage(img_rgb, scale=scale)
        self.metadata = metadata
        side = float(np.sqrt(self.output.canvas.shape[0] * self.output.canvas.shape[1]))
        self.line_width = line_width or max(1, int(round(side / 900)))
        self.font_scale = font_scale or float(np.clip(side / 2600, 0.35, 1.2))
        self.fill_alpha = float(fill_alpha)
        self.show_legend = show_legend

    # ------------------------------------------------------------------ public drawing entry points
    def draw_instance_predictions(self, predictions: Any) -> VisImage:
        """Draw model ``Instances`` (``pred_boxes``, ``pred_classes``, optional ``scores``)."""
        boxes = _to_numpy(predictions.pred_boxes) if predictions.has("pred_boxes") else None
        if boxes is None:
            raise KeyError("draw_instance_predictions needs Instances with a 'pred_boxes' field")
        n = len(boxes)
        scores = _to_numpy(predictions.scores) if predictions.has("scores") else None
        classes = (
            _to_numpy(predictions.pred_classes).astype(np.int64)
            if predictions.has("pred_classes")
            else np.zeros(n, dtype=np.int64)
        )
        return self.overlay_rotated_instances(boxes, classes, scores=scores)

    def draw_dataset_dict(self, dic: dict) -> VisImage:
        """Draw the ``annotations`` of a dataset dict; difficult objects get dashed outlines."""
        annos = dic.get("annotations", [])
        boxes, classes, difficult = [], [], []
        for i, anno in enumerate(annos):
            boxes.append(self._anno_to_rbox(anno, i, dic.get("file_name", "?")))
            classes.append(int(anno.get("category_id", 0)))
            difficult.append(bool(anno.get("difficult", 0)))
        return self.overlay_rotated_instances(
            np.asarray(boxes, dtype=np.float64).reshape(-1, 5),
            np.asarray(classes, dtype=np.int64),
            dashed=np.asarray(difficult, dtype=bool),
        )

    def overlay_rotated_instances(
        self,
        boxes: Any,
        classes: Sequence[int] | np.ndarray,
        scores: Sequence[float] | np.ndarray | None = None,
        labels: Sequence[str] | None = None,
        dashed: Sequence[bool] | np.ndarray | None = None,
    ) -> VisImage:
        """Draw (N, 5) rotated boxes with their class colours and labels.

        Args:
            boxes: (N, 5) (cx, cy, w, h, angle_deg) in input-image pixels.
            classes: (N,) class ids (for colours and, unless ``labels`` is given, label text).
            scores: optional (N,) scores in [0, 1], appended to labels as percent.
            labels: optional label text per box (overrides class names and scores).
            dashed: optional (N,) bool, draw those outlines dashed (e.g. difficult objects).
        """
        boxes = _to_numpy(boxes).astype(np.float64).reshape(-1, 5)
        classes = np.asarray(classes, dtype=np.int64).reshape(-1)
        n = len(boxes)
        if len(classes) != n:
            raise ValueError(f"{n} boxes but {len(classes)} classes")
        scores = None if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
        dashed = np.zeros(n, dtype=bool) if dashed is None else np.asarray(dashed, dtype=bool)
        if labels is None:
            labels = [
                self._label(int(c), None if scores is None else s)
                for c, s in zip(classes, scores if scores is not None else [None] * n)
            ]
        # Bigger boxes first so that small boxes stay visible on top; labels best score first.
        order = np.argsort(-(boxes[:, 2] * boxes[:, 3]), kind="stable")
        corners = rbox_to_poly(boxes).reshape(-1, 4, 2) * self.output.scale
        self._draw_fills(corners[order], classes[order])
        for i in order:
            self._draw_box(corners[i], self._color(classes[i]), bool(dashed[i]))
        label_order = np.argsort(-scores, kind="stable") if scores is not None else np.arange(n)
        legend = self._legend_lines(classes) if self.show_legend and n > 0 else []
        reserved = self._legend_size(legend + [(-1, "labels hidden (overlap): 0000")])
        self._draw_labels(
            [corners[i] for i in label_order],
            [labels[i] for i in label_order],
            [self._color(classes[i]) for i in label_order],
            reserved,
        )
        self.output.num_boxes += n
        if legend:
            if self.output.num_labels_hidden:
                legend.append((-1, f"labels hidden (overlap): {self.output.num_labels_hidden}"))
            self._draw_legend(legend)
        return self.output

    def get_output(self) -> VisImage:
        return self.output

    # -------------------------------------------------------------------------------- helpers
    def _class_name(self, c: int) -> str:
        names = getattr(self.metadata, "thing_classes", None) if self.metadata is not None else None
        try:
            if names is not None and 0 <= c < len(names):
                return str(names[c])
        except AttributeError:
            pass
        return str(c)

    def _label(self, c: int, score: float | None) -> str:
        name = self._class_name(c)
        return name if score is None else f"{name} {int(round(100 * float(score)))}"

    def _color(self, c: int) -> tuple[int, int, int]:
        colors = None
        if self.metadata is not None:
            try:
                colors = self.metadata.thing_colors
            except AttributeError:
                colors = None
        if colors is not None and 0 <= c < len(colors):
            return tuple(int(v) for v in colors[c])  # type: ignore[return-value]
        return class_color(c)

    @staticmethod
    def _anno_to_rbox(anno: dict, index: int, file_name: str) -> list[float]:
        if "bbox" not in anno:
            raise KeyError(f"{file_name}: annotation {index} has no 'bbox'")
        b = [float(v) for v in anno["bbox"]]
        mode = int(anno.get("bbox_mode", _XYWHA_ABS))
        if mode == _XYWHA_ABS and len(b) == 5:
            return b
        if mode == _XYXY_ABS and len(b) == 4:
            return [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1], 0.0]
        if mode == _XYWH_ABS and len(b) == 4:
            return [b[0] + b[2] / 2, b[1] + b[3] / 2, b[2], b[3], 0.0]
        raise ValueError(
            f"{file_name}: annotation {index} has bbox {b} with bbox_mode {mode}; expected "
            "XYWHA_ABS (4) with 5 numbers or XYXY_ABS/XYWH_ABS (0/1) with 4"
        )

    def _draw_fills(self, corners: np.ndarray, classes: np.ndarray) -> None:
        if self.fill_alpha <= 0 or len(corners) == 0:
            return
        overlay = self.output.canvas.copy()
        for pts, c in zip(corners, classes):
            cv2.fillPoly(
                overlay, [np.round(pts).astype(np.int32)], self._color(int(c)), lineType=cv2.LINE_AA
            )
        cv2.addWeighted(
            overlay,
            self.fill_alpha,
            self.output.canvas,
            1 - self.fill_alpha,
            0,
            dst=self.output.canvas,
        )

    def _draw_box(self, pts: np.ndarray, color: tuple[int, int, int], dashed: bool) -> None:
        canvas, lw = self.output.canvas, self.line_width
        shift = 4  # sub-pixel precision for cv2 drawing
        ipts = np.round(pts * (1 << shift)).astype(np.int32)
        if dashed:
            for k in range(4):
                self._dashed_line(pts[k], pts[(k + 1) % 4], color)
        else:
            cv2.polylines(canvas, [ipts], True, color, lw, cv2.LINE_AA, shift)
        # Heading: centre -> middle of the edge the w-axis points at (corners 1-2).
        centre = pts.mean(axis=0)
        head = (pts[1] + pts[2]) / 2
        cv2.line(
            canvas,
            tuple(np.round(centre * (1 << shift)).astype(int)),
            tuple(np.round(head * (1 << shift)).astype(int)),
            color,
            lw,
            cv2.LINE_AA,
            shift,
        )

    def _dashed_line(self, p0: np.ndarray, p1: np.ndarray, color: tuple[int, int, int]) -> None:
        length = float(np.hypot(*(p1 - p0)))
        dash = max(3.0, 3.0 * self.line_width)
        steps = max(1, int(length // dash))
        for s in range(0, steps, 2):
            a = p0 + (p1 - p0) * (s / steps)
            b = p0 + (p1 - p0) * (min(s + 1, steps) / steps)
            cv2.line(
                self.output.canvas,
                tuple(int(round(v)) for v in a),
                tuple(int(round(v)) for v in b),
                color,
                self.line_width,
                cv2.LINE_AA,
            )

    def _draw_labels(
        self,
        corners: list[np.ndarray],
        texts: list[str],
        colors: list[tuple[int, int, int]],
        reserved: tuple[int, int],
    ) -> None:
        """Place labels greedily in the given order.

        A label goes to the first candidate position (above, below, right of, left of its box) that
        stays inside the canvas, overlaps no placed label and the legend area (``reserved`` (w, h)
        at the top-left), and covers at most ``_MAX_BOX_COVER`` of its area with other boxes, so
        that labels never hide the objects of a dense scene. Labels with no such place are counted
        in ``num_labels_hidden``.
        """
        canvas = self.output.canvas
        h, w = canvas.shape[:2]
        occupied = np.zeros((h, w), dtype=bool)
        occupied[: reserved[1], : reserved[0]] = True
        boxes_mask = np.zeros((h, w), dtype=np.uint8)
        cv2.fillPoly(boxes_mask, [np.round(p).astype(np.int32) for p in corners], 1)
        # Summed-area table: box pixels under any rectangle in O(1).
        integral = cv2.integral(boxes_mask)
        thickness = 1 if self.font_scale < 0.8 else 2
        for pts, text, color in zip(corners, texts, colors):
            (tw, th), base = cv2.getTextSize(text, _FONT, self.font_scale, thickness)
            bw, bh = tw + 2, th + base + 2
            x0, y0 = pts[:, 0].min(), pts[:, 1].min()
            x1, y1 = pts[:, 0].max(), pts[:, 1].max()
            candidates = [(x0, y0 - bh), (x0, y1), (x1, y0), (x0 - bw, y0)]
            placed = None
            for cx, cy in candidates:
                lx, ly = int(round(cx)), int(round(cy))
                if lx < 0 or ly < 0 or lx + bw > w or ly + bh > h:
                    continue
                if occupied[ly : ly + bh, lx : lx + bw].any():
                    continue
                covered = (
                    integral[ly + bh, lx + bw]
                    - integral[ly, lx + bw]
                    - integral[ly + bh, lx]
                    + integral[ly, lx]
                )
                if covered <= _MAX_BOX_COVER * bw * bh:
                    placed = (lx, ly)
                    break
            if placed is None:
                self.output.num_labels_hidden += 1
                continue
            lx, ly = placed
            occupied[ly : ly + bh, lx : lx + bw] = True
            # Dark translucent background keeps text legible on any terrain.
            region = canvas[ly : ly + bh, lx : lx + bw]
            region[:] = (region.astype(np.float32) * 0.35).astype(np.uint8)
            cv2.putText(
                canvas,
                text,
                (lx + 1, ly + th + 1),
                _FONT,
                self.font_scale,
                color,
                thickness,
                cv2.LINE_AA,
            )
            self.output.num_labels_drawn += 1

    def _legend_lines(self, classes: np.ndarray) -> list[tuple[int, str]]:
        ids, counts = np.unique(classes, return_counts=True)
        return [(int(c), f"{self._class_name(int(c))}: {int(k)}") for c, k in zip(ids, counts)]

    def _legend_metrics(self, lines: list[tuple[int, str]]) -> tuple[int, int, int, int]:
        thickness = 1 if self.font_scale < 0.8 else 2
        sizes = [cv2.getTextSize(t, _FONT, self.font_scale, thickness) for _, t in lines]
        line_h = max(s[0][1] + s[1] for s in sizes) + 4
        swatch = line_h - 4
        box_w = max(s[0][0] for s in sizes) + swatch + 12
        box_h = line_h * len(lines) + 6
        return box_w, box_h, line_h, swatch

    def _legend_size(self, lines: list[tuple[int, str]]) -> tuple[int, int]:
        if len(lines) <= 1:
            return 0, 0
        box_w, box_h, _, _ = self._legend_metrics(lines)
        return box_w, box_h

    def _draw_legend(self, lines: list[tuple[int, str]]) -> None:
        canvas = self.output.canvas
        thickness = 1 if self.font_scale < 0.8 else 2
        box_w, box_h, line_h, swatch = self._legend_metrics(lines)
        box_w, box_h = min(box_w, canvas.shape[1]), min(box_h, canvas.shape[0])
        region = canvas[0:box_h, 0:box_w]
        region[:] = (region.astype(np.float32) * 0.3).astype(np.uint8)
        for k, (c, text) in enumerate(lines):
            y = 3 + k * line_h
            if c >= 0:
                cv2.rectangle(canvas, (4, y + 2), (4 + swatch, y + 2 + swatch), self._color(c), -1)
            cv2.putText(
                canvas,
                text,
                (8 + swatch, y + line_h - 4),
                _FONT,
                self.font_scale,
                (255, 255, 255),
                thickness,
                cv2.LINE_AA,
            )

"""Sliding-window inference for images far larger than the model's input (aerial scenes).

The image is covered, at each scale, by square windows of ``patch_size`` pixels (in the scaled
image) that overlap by ``overlap`` pixels; the last window of a row or column is aligned to the
image's edge, so every window is full-size unless the scaled image is smaller than a patch.
Windows are cut and resized one batch at a time (a generator), run through the model in batches of
``batch_size``, mapped back to image pixels and merged by class-wise rotated NMS
(:class:`rotated_det.evaluation.patch_merger.PatchMerger`, which compacts its buffer by NMS when it
grows). Memory therefore stays bounded by one batch of patches plus the kept detections, whatever
the image size: an 8000 x 8000 scene never has its patches all in memory.

Objects cut by a window border. A detection that touches an *inner* border of its window (one
that is not the image's edge) is a truncated view of an object. When the neighbouring window
across that border contains the detection's far side, that window sees the object whole, and the
truncated copy is dropped before NMS (``drop_truncated``). NMS alone is not enough: the IoU
between a truncated box and the whole box is only the visible fraction, which can be under the
NMS threshold (DOTA merges at 0.1), and a truncated copy can even outscore the whole one.
Objects larger than the overlap are kept in every window (no neighbour sees them whole) and are
merged by NMS.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from rotated_det.data.dota_split import window_starts
from rotated_det.data.image_input import as_uint8_image
from rotated_det.structures import Instances, RotatedBoxes, rbox_to_hbox

__all__ = ["SlidingWindowInference", "Window", "window_starts", "generate_windows"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    """One window, in the image scaled by ``scale``.

    Attributes:
        scale: resize factor of the image for this window.
        x0, y0, x1, y1: window extent in scaled-image pixels (x1, y1 exclusive).
        inner_left, inner_top: end of the neighbouring window across the left / top border, in
            scaled pixels, or None if that border is the image's edge.
        inner_right, inner_bottom: start of the neighbouring window across the right / bottom
            border, or None if that border is the image's edge.
    """

    scale: float
    x0: int
    y0: int
    x1: int
    y1: int
    inner_left: int | None
    inner_top: int | None
    inner_right: int | None
    inner_bottom: int | None


def generate_windows(
    height: int, width: int, patch_size: int, overlap: int, scales: Sequence[float]
) -> list[Window]:
    """All windows over an image of ``height x width`` pixels, scale by scale, row by row."""
    if patch_size <= 0:
        raise ValueError(f"patch_size must be positive, got {patch_size}")
    if not 0 <= overlap < patch_size:
        raise ValueError(f"overlap must be in [0, patch_size={patch_size}), got {overlap}")
    stride = patch_size - overlap
    windows = []
    for scale in scales:
        if scale <= 0:
            raise ValueError(f"scales must be positive, got {scale}")
        sh, sw = max(1, round(height * scale)), max(1, round(width * scale))
        ys, xs = window_starts(sh, patch_size, stride), window_starts(sw, patch_size, stride)
        for iy, y0 in enumerate(ys):
            for ix, x0 in enumerate(xs):
                x1, y1 = min(x0 + patch_size, sw), min(y0 + patch_size, sh)
                windows.append(
                    Window(
                        scale=float(scale),
                        x0=x0,
                        y0=y0,
                        x1=x1,
                        y1=y1,
                        # The left neighbour ends at xs[ix-1] + patch_size; the right one starts
                        # at xs[ix+1].
                        inner_left=min(xs[ix - 1] + patch_size, sw) if ix > 0 else None,
                        inner_top=min(ys[iy - 1] + patch_size, sh) if iy > 0 else None,
                        inner_right=xs[ix + 1] if ix + 1 < len(xs) else None,
                        inner_bottom=ys[iy + 1] if iy + 1 < len(ys) else None,
                    )
                )
    return windows


class SlidingWindowInference:
    """Runs a detector over a huge image window by window and merges the detections.

    Example::

        model = instantiate(cfg.model).eval()
        DetectionCheckpointer(model).load(cfg.train.init_checkpoint)
        infer = SlidingWindowInference(model, patch_size=1024, overlap=200, scales=(1.0,))
        instances = infer(cv2.imread("scene.png"))  # Instances in the image's pixels

    Args:
        model: a detector following the model I/O convention (``list[dict(image=CHW, height,
            width)]`` -> ``list[{"instances": Instances}]``), in eval mode.
        patch_size: window side in pixels of the scaled image.
        overlap: pixels shared by neighbouring windows; objects up to about this size are seen
            whole by some window.
        scales: image resize factors, e.g. ``(0.5, 1.0)`` for DOTA multi-scale testing.
        batch_size: windows per model call.
        nms_threshold: class-wise rotated NMS IoU for merging windows (DOTA's devkit uses 0.1).
        score_threshold: detections scoring lower are dropped.
        max_dets_per_image: keep at most this many merged detections (None: all).
        drop_truncated: drop detections cut by an inner window border when a neighbouring window
            sees the object whole (see the module docstring).
        border_margin: a detection whose axis-aligned extent comes within this many (scaled)
            pixels of a window border touches it.
        input_format: channel order the caller passes images in ("BGR" or "RGB"); converted to
            ``model_input_format``.
        model_input_format: channel order the model expects; default the model's
            ``input_format`` attribute, else "BGR".
        compact_size: merge buffer compaction size (see ``PatchMerger``).
        show_progress: tqdm progress bar over windows.
    """

    def __init__(
        self,
        model: nn.Module,
        patch_size: int = 1024,
        overlap: int = 200,
        scales: Sequence[float] = (1.0,),
        batch_size: int = 4,
        nms_threshold: float = 0.1,
        score_threshold: float = 0.0,
        max_dets_per_image: int | None = None,
        drop_truncated: bool = True,
        border_margin: float = 2.0,
        input_format: str = "BGR",
        model_input_format: str | None = None,
        compact_size: int = 200_000,
        show_progress: bool = False,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.patch_size = int(patch_size)
        self.overlap = int(overlap)
        self.scales = tuple(float(s) for s in scales)
        self.batch_size = int(batch_size)
        self.nms_threshold = float(nms_threshold)
        self.score_threshold = float(score_threshold)
        self.max_dets_per_image = max_dets_per_image
        self.drop_truncated = drop_truncated
        self.border_margin = float(border_margin)
        self.input_format = input_format.upper()
        self.model_input_format = (
            model_input_format or getattr(model, "input_format", None) or "BGR"
        ).upper()
        for fmt in (self.input_format, self.model_input_format):
            if fmt not in ("BGR", "RGB"):
                raise ValueError(f"image formats must be 'BGR' or 'RGB', got {fmt!r}")
        self.compact_size = compact_size
        self.show_progress = show_progress
        # Filled by each call: number of windows, model calls, seconds, detections dropped as
        # truncated, largest batch held.
        self.stats: dict[str, float] = {}

    @property
    def device(self) -> torch.device:
        try:
            return next(self.model.parameters()).device
        except StopIteration:
            return torch.device("cpu")

    # ------------------------------------------------------------------------------------------
    def __call__(self, image: np.ndarray) -> Instances:
        """Detect on one image.

        Args:
            image: (H, W, 3) uint8 array in ``input_format`` channel order (a ``np.memmap`` works:
                windows are read from it one batch at a time). A uint16 image is converted to
                uint8 (``value >> 8``, a copy of the whole image); float images and other dtypes
                or shapes are refused (see :func:`rotated_det.data.image_input.as_uint8_image`).

        Returns:
            Instances of size (H, W) with ``pred_boxes`` (RotatedBoxes, image pixels), ``scores``
            and ``pred_classes``, sorted by decreasing score.
        """
        from rotated_det.evaluation.patch_merger import PatchMerger

        image = as_uint8_image(image, "SlidingWindowInference", self.input_format)
        height, width = image.shape[:2]
        windows = generate_windows(height, width, self.patch_size, self.overlap, self.scales)
        keys = {f"w{i}": w for i, w in enumerate(windows)}

        def parse(key: str):
            w = keys[key]
            return "image", w.scale, w.x0, w.y0

        merger = PatchMerger(
            self.nms_threshold,
            expected_patches={"image": len(windows)},
            compact_size=self.compact_size,
            score_threshold=self.score_threshold,
            max_dets_per_image=self.max_dets_per_image,
            parse_name=parse,
        )
        start = time.perf_counter()
        self.stats = {
            "windows": len(windows),
            "model_calls": 0,
            "dropped_truncated": 0,
            "max_batch": 0,
        }
        progress = None
        if self.show_progress:
            from tqdm import tqdm

            progress = tqdm(total=len(windows), desc="sliding window", unit="patch")
        with torch.no_grad():
            for batch in self._batches(image, list(keys.items())):
                self.stats["max_batch"] = max(self.stats["max_batch"], len(batch))
                inputs = [
                    {"image": t, "height": t.shape[1], "width": t.shape[2]} for _, _, t in batch
                ]
                outputs = self.model(inputs)
                self.stats["model_calls"] += 1
                for (key, window, _), out in zip(batch, outputs):
                    inst = out["instances"].to("cpu")
                    boxes = inst.pred_boxes.tensor.float()
                    scores, classes = inst.scores.float(), inst.pred_classes.long()
                    if self.drop_truncated and len(boxes):
                        keep = ~self._truncated(boxes, window)
                        self.stats["dropped_truncated"] += int((~keep).sum())
                        boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
                    merger.add(key, boxes, scores, classes)
                if progress is not None:
                    progress.update(len(batch))
        if progress is not None:
            progress.close()
        merged = merger.finish()["image"]
        self.stats["seconds"] = time.perf_counter() - start
        result = Instances((height, width))
        result.pred_boxes = RotatedBoxes(torch.from_numpy(merged.boxes))
        result.scores = torch.from_numpy(merged.scores)
        result.pred_classes = torch.from_numpy(merged.classes)
        return result

    # ------------------------------------------------------------------------------------------
    def _batches(
        self, image: np.ndarray, items: list[tuple[str, Window]]
    ) -> Iterator[list[tuple[str, Window, torch.Tensor]]]:
        """Cut, resize and convert windows lazily, ``batch_size`` at a time.

        Patches are written into one float32 buffer of ``batch_size`` patches that is reused for
        every batch (the model must not keep references to its inputs, which detectors don't):
        allocating fresh patch tensors per window makes glibc's heap grow with the number of
        windows (freed 10+ MB blocks are not reused), the opposite of a memory bound.
        """
        device = self.device
        channels = image.shape[2]
        size = max(
            max(w.y1 - w.y0 for _, w in items),
            max(w.x1 - w.x0 for _, w in items),
        )
        buffer = torch.empty((self.batch_size, channels, size, size), dtype=torch.float32)
        scratch = np.empty(size * size * channels, dtype=np.uint8)
        batch: list[tuple[Any, Window, torch.Tensor]] = []
        for key, window in items:
            h, w = window.y1 - window.y0, window.x1 - window.x0
            out = buffer[len(batch), :, :h, :w]
            self._cut(image, window, out, scratch)
            batch.append((key, window, out.to(device)))
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _cut(self, image: np.ndarray, w: Window, out: torch.Tensor, scratch: np.ndarray) -> None:
        """Write the window's pixels into ``out`` (float32 (C, h, w)) in the model's channel order.

        The window is cut from the original image (its extent divided by the scale, widened to
        whole pixels) and only that crop is resized, so no scaled copy of the image is made.
        """
        height, width = image.shape[:2]
        channels = image.shape[2]
        s = w.scale
        if s == 1.0:
            crop = image[w.y0 : w.y1, w.x0 : w.x1]
        else:
            # Source region about [x0/s, x1/s) in original pixels (one pixel wider on each side);
            # resize it to the window's size with an affine map so that window pixel centres land
            # exactly where the scaled image's would.
            sx0 = max(0, int(math.floor(w.x0 / s)) - 1)
            sy0 = max(0, int(math.floor(w.y0 / s)) - 1)
            sx1 = min(width, int(math.ceil(w.x1 / s)) + 1)
            sy1 = min(height, int(math.ceil(w.y1 / s)) + 1)
            src = image[sy0:sy1, sx0:sx1]
            # dst pixel (u, v) samples scaled-image pixel (u + x0, v + y0), i.e. original
            # coordinate ((u + x0 + 0.5) / s - 0.5) - sx0.
            m = np.array(
                [
                    [1 / s, 0, (w.x0 + 0.5) / s - 0.5 - sx0],
                    [0, 1 / s, (w.y0 + 0.5) / s - 0.5 - sy0],
                ],
                dtype=np.float64,
            )
            h, wd = w.y1 - w.y0, w.x1 - w.x0
            crop = scratch[: h * wd * channels].reshape(h, wd, channels)
            dst = crop if channels > 1 else crop[:, :, 0]
            cv2.warpAffine(
                src if channels > 1 else src[:, :, 0],
                m,
                (wd, h),
                dst=dst,
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_REPLICATE,
            )
        chw = torch.from_numpy(crop).permute(2, 0, 1)  # a view; strided HWC reads in one copy
        if self.input_format != self.model_input_format and channels == 3:
            chw = chw.flip(0)  # a small uint8 copy
        out.copy_(chw)

    def _truncated(self, boxes: torch.Tensor, w: Window) -> torch.Tensor:
        """(N,) bool: detections (window pixels) cut by an inner border whose object a neighbour
        window sees whole."""
        hb = rbox_to_hbox(boxes)  # x0, y0, x1, y1 in window pixels
        # To scaled-image pixels.
        x0, y0 = hb[:, 0] + w.x0, hb[:, 1] + w.y0
        x1, y1 = hb[:, 2] + w.x0, hb[:, 3] + w.y0
        m = self.border_margin
        out = torch.zeros(len(boxes), dtype=torch.bool)
        if w.inner_right is not None:
            out |= (x1 >= w.x1 - m) & (x0 >= w.inner_right + m)
        if w.inner_bottom is not None:
            out |= (y1 >= w.y1 - m) & (y0 >= w.inner_bottom + m)
        if w.inner_left is not None:
            out |= (x0 <= w.x0 + m) & (x1 <= w.inner_left - m)
        if w.inner_top is not None:
            out |= (y0 <= w.y0 + m) & (y1 <= w.inner_top - m)
        return out

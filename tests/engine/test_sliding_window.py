"""Sliding-window inference: window grid, objects cut by window borders, scales, bounded memory.

The detector is a small exact "blob" detector (connected components of bright pixels ->
minimum-area rectangles), so every expected box is known from the drawn image.
"""

import json
import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from rotated_det.data.image_input import ImageInputError
from rotated_det.engine.sliding_window import (
    SlidingWindowInference,
    generate_windows,
    window_starts,
)
from rotated_det.structures import Instances, RotatedBoxes, poly_to_rbox, rbox_to_poly

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class BlobDetector(nn.Module):
    """Detects connected components of pixels brighter than ``threshold`` in channel ``channel``.

    Boxes are the components' minimum-area rectangles (pixel extents, not centres); the score grows
    with the visible area (area / (area + 400)), so a truncated view scores lower than the whole
    object; the class is 1 for components wider than 40 px along their long side, else 0.
    Records the batch sizes and image shapes it was called with.
    """

    input_format = "BGR"

    def __init__(self, channel: int = 2, threshold: float = 128.0):
        super().__init__()
        self.channel = channel
        self.threshold = threshold
        self.dummy = nn.Parameter(torch.zeros(()))
        self.batch_sizes: list[int] = []
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, batched_inputs):
        self.batch_sizes.append(len(batched_inputs))
        outs = []
        for d in batched_inputs:
            img = d["image"]
            self.shapes.append(tuple(img.shape))
            mask = (img[self.channel] > self.threshold).cpu().numpy().astype(np.uint8)
            n, labels = cv2.connectedComponents(mask, connectivity=8)
            boxes, scores, classes = [], [], []
            for k in range(1, n):
                ys, xs = np.nonzero(labels == k)
                # Each pixel is a unit square: use its four corners so that the rectangle covers
                # the pixels' extent.
                pts = np.concatenate(
                    [np.stack([xs + dx, ys + dy], 1) for dx in (0, 1) for dy in (0, 1)]
                ).astype(np.float32)
                poly = cv2.boxPoints(cv2.minAreaRect(pts)).reshape(1, 8)
                rb = poly_to_rbox(torch.from_numpy(poly).double())[0]
                boxes.append(rb)
                scores.append(len(xs) / (len(xs) + 400.0))
                classes.append(1 if max(rb[2], rb[3]) > 40 else 0)
            h, w = img.shape[1:]
            inst = Instances((d.get("height", h), d.get("width", w)))
            b = torch.stack(boxes).float() if boxes else torch.zeros(0, 5)
            sx, sy = d.get("width", w) / w, d.get("height", h) / h
            b[:, 0] *= sx
            b[:, 2] *= sx
            b[:, 1] *= sy
            b[:, 3] *= sy
            inst.pred_boxes = RotatedBoxes(b)
            inst.scores = torch.tensor(scores, dtype=torch.float32)
            inst.pred_classes = torch.tensor(classes, dtype=torch.int64)
            outs.append({"instances": inst})
        return outs


def draw_rbox(img: np.ndarray, box, value=(0, 0, 255)) -> None:
    """Fill a rotated box; pixel (i, j) covers [i, i+1) x [j, j+1), so its centre is at +0.5."""
    poly = rbox_to_poly(torch.tensor([box], dtype=torch.float64))[0].numpy().reshape(4, 2)
    cv2.fillPoly(img, [np.round((poly - 0.5) * 16).astype(np.int32)], value, shift=4)


def rbox_close(a, b, tol_px=2.0, tol_deg=3.0) -> bool:
    """Same rotated rectangle up to the (w, h, angle) ambiguity: compare corner sets."""
    pa = rbox_to_poly(torch.tensor([a], dtype=torch.float64))[0].numpy().reshape(4, 2)
    pb = rbox_to_poly(torch.tensor([b], dtype=torch.float64))[0].numpy().reshape(4, 2)
    d = np.linalg.norm(pa[:, None] - pb[None], axis=-1).min(axis=1)
    return bool(d.max() <= tol_px)


def test_window_starts_cover_and_end_aligned():
    assert window_starts(100, 256, 200) == [0]
    assert window_starts(1000, 256, 200) == [0, 200, 400, 600, 744]
    assert window_starts(856, 256, 200) == [0, 200, 400, 600]
    for length in (257, 500, 999, 1024, 3000):
        starts = window_starts(length, 256, 160)
        covered = np.zeros(length, bool)
        for s in starts:
            covered[s : s + 256] = True
            assert s + 256 <= length
        assert covered.all()


def test_inference_windows_are_the_split_tools_patches():
    """Sliding-window inference over a full image sees the patches the split tool cuts for
    training (same size, overlap and positions), including the end-aligned last row/column."""
    from rotated_det.data.dota_split import get_sliding_windows

    for h, w, size, overlap in ((1182, 1111, 512, 128), (600, 2000, 1024, 200), (300, 280, 256, 0)):
        split = get_sliding_windows(w, h, [size], [overlap], img_rate_thr=0.0)
        infer = generate_windows(h, w, patch_size=size, overlap=overlap, scales=(1.0,))
        assert sorted((int(x0), int(y0)) for x0, y0, _, _ in split) == sorted(
            (win.x0, win.y0) for win in infer
        )


def test_generate_windows_neighbours_and_scales():
    wins = generate_windows(500, 900, patch_size=256, overlap=56, scales=(1.0, 0.5))
    full = [w for w in wins if w.scale == 1.0]
    half = [w for w in wins if w.scale == 0.5]
    assert len(full) == len(window_starts(500, 256, 200)) * len(window_starts(900, 256, 200))
    assert len(half) == len(window_starts(250, 256, 200)) * len(window_starts(450, 256, 200))
    first = full[0]
    assert (first.x0, first.y0, first.inner_left, first.inner_top) == (0, 0, None, None)
    assert first.inner_right == 200 and first.inner_bottom == 200
    last = full[-1]
    assert last.x1 == 900 and last.y1 == 500 and last.inner_right is None
    assert last.inner_left == full[-2].x0 + 256
    with pytest.raises(ValueError, match="overlap"):
        generate_windows(10, 10, 256, 256, (1.0,))


def test_object_straddling_a_window_border_is_detected_once():
    # Windows of 256 with overlap 96 start at x = 0, 160, 224 (image 480 wide). A ship-like
    # rotated object from about x=246 to x=306 crosses the first window's right border (256) with
    # only a small tip inside it; the second window [160, 416) sees it whole.
    img = np.zeros((256, 480, 3), np.uint8)
    obj = (276.0, 128.0, 60.0, 22.0, 15.0)
    draw_rbox(img, obj)
    other = (60.0, 60.0, 30.0, 14.0, -40.0)  # fully inside the first window only
    draw_rbox(img, other)
    model = BlobDetector().eval()
    infer = SlidingWindowInference(model, patch_size=256, overlap=96, batch_size=2)
    out = infer(img)
    assert infer.stats["windows"] == 3
    assert infer.stats["dropped_truncated"] >= 1
    assert len(out) == 2, out.pred_boxes.tensor
    boxes = out.pred_boxes.tensor.tolist()
    assert any(rbox_close(b, obj) for b in boxes), boxes
    assert any(rbox_close(b, other) for b in boxes), boxes
    assert out.image_size == (256, 480)
    # The tip's IoU with the whole object is below the merge NMS threshold (0.1), which is why
    # NMS alone reports the object twice.
    naive = SlidingWindowInference(model, patch_size=256, overlap=96, drop_truncated=False)(img)
    assert len(naive) == 3


def test_merged_result_equals_single_pass_on_a_small_image_and_sorted():
    # Objects well inside the overlap grid: the merged output must equal one model pass over the
    # whole image (same boxes, scores, classes), whatever the batching.
    rng = np.random.default_rng(0)
    img = np.zeros((600, 700, 3), np.uint8)
    gt = []
    for _ in range(12):
        b = (
            rng.uniform(40, 660),
            rng.uniform(40, 560),
            rng.uniform(14, 50),
            rng.uniform(8, 16),
            rng.uniform(-90, 90),
        )
        probe = np.zeros_like(img)
        draw_rbox(probe, b)
        if (probe[..., 2] & img[..., 2]).any():
            continue
        draw_rbox(img, b)
        gt.append(b)
    model = BlobDetector().eval()
    ref = model([{"image": torch.from_numpy(img.transpose(2, 0, 1).copy()).float()}])[0][
        "instances"
    ]
    for batch_size in (1, 3):
        out = SlidingWindowInference(model, patch_size=256, overlap=96, batch_size=batch_size)(img)
        assert len(out) == len(ref) == len(gt)
        assert torch.all(out.scores[:-1] >= out.scores[1:])
        for b, s, c in zip(ref.pred_boxes.tensor.tolist(), ref.scores, ref.pred_classes):
            match = [
                i for i, o in enumerate(out.pred_boxes.tensor.tolist()) if rbox_close(o, b, 0.5)
            ]
            assert len(match) == 1
            assert float(out.scores[match[0]]) == pytest.approx(float(s), rel=1e-6)
            assert int(out.pred_classes[match[0]]) == int(c)
    assert max(model.batch_sizes) == 3


def test_scales_map_boxes_back_to_image_pixels():
    img = np.zeros((400, 400, 3), np.uint8)
    obj = (200.0, 180.0, 80.0, 30.0, 30.0)
    draw_rbox(img, obj)
    model = BlobDetector().eval()
    infer = SlidingWindowInference(model, patch_size=256, overlap=128, scales=(0.5,))
    out = infer(img)
    # At scale 0.5 the 400 px image is 200 px: one window, of 200 x 200.
    assert model.shapes == [(3, 200, 200)]
    assert len(out) == 1
    assert rbox_close(out.pred_boxes.tensor[0].tolist(), obj, tol_px=3.0)
    # Channel order: an RGB caller's red object is the BGR model's channel 2.
    model.shapes.clear()
    rgb = img[:, :, ::-1].copy()
    out_rgb = SlidingWindowInference(model, patch_size=256, overlap=128, input_format="RGB")(rgb)
    assert len(out_rgb) == 1


def test_uint16_image_gives_the_uint8_detections_and_float_is_refused():
    img = np.zeros((400, 480, 3), np.uint8)
    draw_rbox(img, (276.0, 128.0, 60.0, 22.0, 15.0))
    draw_rbox(img, (60.0, 300.0, 30.0, 14.0, -40.0))
    model = BlobDetector().eval()
    infer = SlidingWindowInference(model, patch_size=256, overlap=96)
    ref = infer(img)
    assert len(ref) == 2
    low = np.random.default_rng(1).integers(0, 256, img.shape, dtype=np.uint16)
    out = infer((img.astype(np.uint16) << 8) | low)  # converted by value >> 8
    torch.testing.assert_close(out.pred_boxes.tensor, ref.pred_boxes.tensor, rtol=0, atol=0)
    torch.testing.assert_close(out.scores, ref.scores, rtol=0, atol=0)
    with pytest.raises(ImageInputError, match="SlidingWindowInference does not take float32"):
        infer(img.astype(np.float32) / 255)
    with pytest.raises(ImageInputError, match=r"\(H, W, 3\) image in BGR order, got shape"):
        infer(img[:, :, :2])


@pytest.mark.slow  # a fresh Python process
def test_huge_image_memory_is_bounded():
    """8000 x 8000: peak memory beyond the image stays far below holding all patches."""
    script = textwrap.dedent(
        f"""
        import json, resource, sys
        import numpy as np, torch
        sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
        from test_sliding_window import BlobDetector, draw_rbox
        from rotated_det.engine.sliding_window import SlidingWindowInference
        torch.set_num_threads(1)
        img = np.zeros((8000, 8000, 3), np.uint8)
        for i in range(40):
            draw_rbox(img, (200.0 * i + 100, 190.0 * i + 150, 60.0, 20.0, 7.0 * i))
        img[::7, ::5, 2]  # touch
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        model = BlobDetector().eval()
        infer = SlidingWindowInference(model, patch_size=1024, overlap=200, batch_size=2)
        out = infer(img)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(dict(base=base, peak=peak, n=len(out), windows=infer.stats["windows"],
                              max_batch=max(model.batch_sizes))))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["windows"] == 100 and r["max_batch"] == 2 and r["n"] == 40
    patch_mb = 1024 * 1024 * 3 * 4 / 2**20  # one float32 patch
    # Holding all 100 patches would need ~1200 MB more; the pipeline itself stays near 30 MB
    # (the blob detector allocates ~100 MB of scratch).
    assert r["peak"] - r["base"] < 20 * patch_mb, r

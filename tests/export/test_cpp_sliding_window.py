"""The C++ runner's sliding-window path (tools/deploy, --patch-size): the same windows as
rotated_det.engine.sliding_window.generate_windows, the same detections as SlidingWindowInference on
a full DOTA scene, and memory bounded by one batch of windows whatever the image size."""

import subprocess
import sys
import warnings

import cv2
import numpy as np
import pytest
import torch
from deploy_runner import build_runner, parse_detections, run_runner
from small_detectors import build_small_detector
from tiny_detector import TinyRotatedDetector

from rotated_det.engine.sliding_window import SlidingWindowInference, generate_windows
from rotated_det.export import export_torchscript_tracing
from rotated_det.export.detection_matching import match_detections
from sample_data import DOTA_SAMPLES, dota_samples_dir

pytestmark = pytest.mark.slow  # builds the C++ runner, runs detectors over a 1616 x 1565 scene

SCENE = DOTA_SAMPLES / "unlabeled" / "dota_scene_1616x1565.jpg"
PATCH, OVERLAP, BATCH = 512, 128, 2


@pytest.fixture(scope="module")
def runner():
    return build_runner()


def write_ppm(path, height, width, value=0):
    """A binary PPM of the given size (constant pixels), without holding an image in Python."""
    with open(path, "wb") as f:
        f.write(f"P6\n{width} {height}\n255\n".encode())
        row = bytes([value]) * (width * 3)
        for _ in range(height):
            f.write(row)


@pytest.mark.parametrize(
    "height, width, patch, overlap",
    [(1565, 1616, 512, 128), (300, 200, 512, 128), (1024, 1024, 512, 0), (1000, 513, 512, 100)],
)
def test_windows_are_those_of_generate_windows(runner, tmp_path, height, width, patch, overlap):
    image = tmp_path / "image.ppm"
    write_ppm(image, height, width)
    proc = run_runner(
        runner, "unused.ts", [image], "--patch-size", patch, "--overlap", overlap, "--print-windows"
    )
    lines = proc.stdout.splitlines()
    assert lines[0] == f"image {image}"
    got = [tuple(int(v) for v in ln.split()) for ln in lines[2:]]
    edge = -1
    want = [
        (
            w.x0,
            w.y0,
            w.x1,
            w.y1,
            edge if w.inner_left is None else w.inner_left,
            edge if w.inner_top is None else w.inner_top,
            edge if w.inner_right is None else w.inner_right,
            edge if w.inner_bottom is None else w.inner_bottom,
        )
        for w in generate_windows(height, width, patch, overlap, (1.0,))
    ]
    assert lines[1] == f"windows {len(want)}"
    assert got == want


def test_bad_sliding_window_options_are_refused(runner, tmp_path):
    image = tmp_path / "image.ppm"
    write_ppm(image, 64, 64)
    for options, message in [
        (["--patch-size", "512", "--overlap", "512"], "--overlap must be in [0, --patch-size=512)"),
        (["--patch-size", "512", "--batch-size", "0"], "--batch-size must be >= 1"),
        (["--patch-size", "512", "--min-size", "800"], "--min-size cannot be combined"),
    ]:
        proc = subprocess.run(
            [runner, "unused.ts", str(image), *options], capture_output=True, text=True
        )
        assert proc.returncode != 0 and message in proc.stderr, proc.stderr


def test_cpp_sliding_window_matches_python_on_dota_scene(runner, tmp_path):
    """A small Oriented R-CNN (ResNet-18, seeded random weights: about 100 detections per
    window, both compiled ops) traced at the window size; the runner's sliding window over the
    scene (PPM) gives SlidingWindowInference's detections on the eager model: the same number,
    one to one with the same class, corners within 1e-3 relative, scores within 1e-4."""
    dota_samples_dir()
    model = build_small_detector("oriented_rcnn")
    bgr = cv2.imread(str(SCENE), cv2.IMREAD_COLOR)
    assert bgr.shape[:2] == (1565, 1616)
    sample = torch.from_numpy(np.ascontiguousarray(bgr[:PATCH, :PATCH].transpose(2, 0, 1)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = export_torchscript_tracing(model, sample.float())
    traced.module.save(str(tmp_path / "model.ts"))

    infer = SlidingWindowInference(
        model, patch_size=PATCH, overlap=OVERLAP, batch_size=BATCH, nms_threshold=0.1
    )
    expected = infer(bgr)
    assert infer.stats["windows"] == 16 and infer.stats["dropped_truncated"] > 0
    assert len(expected) > 100

    ppm = tmp_path / "scene.ppm"
    cv2.imwrite(str(ppm), bgr)
    proc = run_runner(
        runner,
        tmp_path / "model.ts",
        [ppm],
        "--patch-size",
        PATCH,
        "--overlap",
        OVERLAP,
        "--batch-size",
        BATCH,
        "--threads",
        1,
    )
    ((boxes, scores, classes),) = parse_detections(proc.stdout, [ppm])
    assert "16 windows" in proc.stderr
    assert f"{infer.stats['dropped_truncated']} truncated detections dropped" in proc.stderr
    # By decreasing score, like SlidingWindowInference.
    assert torch.all(scores[1:] <= scores[:-1])
    diff = match_detections(
        (boxes.numpy(), scores.numpy(), classes.numpy()),
        (
            expected.pred_boxes.tensor.numpy(),
            expected.scores.numpy(),
            expected.pred_classes.numpy(),
        ),
    )
    assert diff is None, diff


def _peak_rss_mb(cmd) -> float:
    """Peak resident memory (MB) of ``cmd`` run alone in a fresh Python parent."""
    script = (
        "import resource, subprocess, sys; "
        "p = subprocess.run(sys.argv[1:], capture_output=True); "
        "sys.stderr.buffer.write(p.stderr); "
        "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, *map(str, cmd)], capture_output=True, text=True
    )
    code, mb = proc.stdout.split()
    assert code == "0", proc.stderr[-3000:]
    return float(mb)


def test_cpp_sliding_window_memory_does_not_grow_with_the_image(runner, tmp_path):
    """A 6000 x 6000 PPM (108 MB of pixels, 432 MB as float32) with a tiny detector: the
    runner's peak memory exceeds that on a 1024 x 1024 image by less than 40 MB (windows are
    read from the file one batch at a time)."""
    model = TinyRotatedDetector().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = export_torchscript_tracing(model, torch.rand(3, PATCH, PATCH) * 255)
    traced.module.save(str(tmp_path / "tiny.ts"))
    small, huge = tmp_path / "small.ppm", tmp_path / "huge.ppm"
    write_ppm(small, 1024, 1024, value=120)
    write_ppm(huge, 6000, 6000, value=120)
    options = ["--patch-size", PATCH, "--overlap", OVERLAP, "--batch-size", 4, "--threads", 1]
    peaks = {
        name: _peak_rss_mb([runner, tmp_path / "tiny.ts", path, *options])
        for name, path in [("small", small), ("huge", huge)]
    }
    assert peaks["huge"] - peaks["small"] < 40, peaks

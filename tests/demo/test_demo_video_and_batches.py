"""demo/demo.py on a video and on an image folder in batches: every frame comes back, in order,
drawn into a video of the input's size and frame rate; images of one size share a model call;
a throughput line is printed; nothing is written outside --output."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from script_loading import load_script

REPO = Path(__file__).resolve().parents[2]

# One detection per image whose score is the image's mean intensity / 255 (so each output can be
# traced to its input) and whose class is the number of images in the model call that ran it.
CONFIG = """
import torch
from torch import nn
from rotated_det.config import LazyCall as L
from rotated_det.structures import Instances, RotatedBoxes


class BatchMeanDetector(nn.Module):
    num_classes = 8

    def forward(self, batched_inputs):
        outs = []
        for d in batched_inputs:
            inst = Instances((d["height"], d["width"]))
            inst.pred_boxes = RotatedBoxes(torch.tensor([[32.0, 24.0, 30.0, 12.0, 30.0]]))
            inst.scores = (d["image"].float().mean() / 255).reshape(1)
            inst.pred_classes = torch.tensor([len(batched_inputs)])
            outs.append({"instances": inst})
        return outs


model = L(BatchMeanDetector)()
train = dict(init_checkpoint="", device="cpu")
"""

# The small Rotated RTMDet of the modeling tests, random weights (BatchNorms calibrated so that
# its scores are not all equal): the demo's path through a real detector, in bfloat16.
RTMDET_CONFIG = """
import sys
sys.path.insert(0, {tests!r})
from rotated_det.config import LazyCall as L
from modeling._helpers import build_small_model

model = L(build_small_model)(name="rotated_rtmdet")
model.num_classes = 3
train = dict(init_checkpoint="", device="cpu")
"""

FRAME_VALUES = [20, 50, 80, 110, 140, 170, 200]  # frame k is uniform grey FRAME_VALUES[k]


@pytest.fixture(scope="module")
def demo():
    return load_script(REPO / "demo" / "demo.py")


def _write_video(path: Path, values, size=(64, 48), fps=12.0) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    for v in values:
        writer.write(np.full((size[1], size[0], 3), v, np.uint8))
    writer.release()


def _read_video(path: Path) -> tuple[list[np.ndarray], float]:
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), path
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames, fps


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_video_gives_every_frame_in_order_and_prints_the_frame_rate(demo, tmp_path, capsys):
    config = tmp_path / "config.py"
    config.write_text(CONFIG)
    video = tmp_path / "clip.avi"
    _write_video(video, FRAME_VALUES)
    before = _files(tmp_path)
    out = tmp_path / "out"
    argv = ["--config-file", str(config), "--video-input", str(video), "--output", str(out)]
    summary = demo.main(argv + ["--batch-size", "3", "--confidence-threshold", "0"])

    # outputs only under --output: the drawn video and one line of detections per frame
    after = _files(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("out/")} == before
    assert sorted(p.name for p in out.iterdir()) == ["clip.jsonl", "clip.mp4"]

    frames, fps = _read_video(out / "clip.mp4")
    assert len(frames) == len(FRAME_VALUES)
    assert all(f.shape == (48, 64, 3) for f in frames)
    assert fps == pytest.approx(12.0)
    lines = [json.loads(x) for x in (out / "clip.jsonl").read_text().splitlines()]
    assert [x["frame"] for x in lines] == list(range(len(FRAME_VALUES)))
    for x, value, frame in zip(lines, FRAME_VALUES, frames):
        (det,) = x["instances"]
        # MJPG rounds a uniform frame by at most a level or two: the order is unambiguous
        assert det["score"] == pytest.approx(value / 255, abs=3 / 255)
        # 7 frames in batches of 3: calls of 3, 3 and 1 frames
        assert det["category_id"] == (3 if x["frame"] < 6 else 1)
        # the box is drawn: the frame differs from the grey input around it
        assert np.abs(frame.astype(int) - value).max() > 60
    assert [s["detections"] for s in summary] == [1] * len(FRAME_VALUES)

    printed = capsys.readouterr().out
    throughput = [line for line in printed.splitlines() if line.startswith("Throughput:")]
    assert len(throughput) == 1
    assert "Throughput: 7 frames in " in throughput[0]
    assert " frames/s end to end" in throughput[0] and "(batch size 3, float32)" in throughput[0]


def test_image_folder_runs_in_batches_of_one_size(demo, tmp_path, capsys):
    config = tmp_path / "config.py"
    config.write_text(CONFIG)
    shapes = {"a": (48, 64), "b": (48, 64), "c": (30, 40), "d": (48, 64), "e": (30, 40)}
    values = {"a": 30, "b": 90, "c": 150, "d": 210, "e": 240}
    (tmp_path / "in").mkdir()
    for name, (h, w) in shapes.items():
        assert cv2.imwrite(str(tmp_path / "in" / f"{name}.png"), np.full((h, w, 3), values[name]))
    out = tmp_path / "out"
    argv = ["--config-file", str(config), "--input", str(tmp_path / "in"), "--output", str(out)]
    summary = demo.main(argv + ["--batch-size", "4", "--confidence-threshold", "0"])
    assert [s["output"] for s in summary] == ["a", "b", "c", "d", "e"]
    calls = {}
    for name, (h, w) in shapes.items():
        rec = json.loads((out / f"{name}.json").read_text())
        assert (rec["height"], rec["width"]) == (h, w)
        (det,) = rec["instances"]
        assert det["score"] == pytest.approx(values[name] / 255, abs=1e-3)
        calls[name] = det["category_id"]
    # a-d are read as one batch of 4: a, b, d (48x64) share a call, c (30x40) runs alone; e last
    assert calls == {"a": 3, "b": 3, "c": 1, "d": 3, "e": 1}
    printed = capsys.readouterr().out
    assert "Throughput: 5 images in " in printed and " images/s end to end" in printed


@pytest.mark.parametrize("precision", [["--precision", "bfloat16"], ["--half"]])
def test_video_on_a_real_detector_in_bfloat16(demo, tmp_path, capsys, precision):
    """--half means bfloat16 on the CPU."""
    config = tmp_path / "rtmdet.py"
    config.write_text(RTMDET_CONFIG.format(tests=str(REPO / "tests")))
    video = tmp_path / "clip.avi"
    rng = np.random.default_rng(0)
    frames_in = [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(5)]
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (96, 64))
    for f in frames_in:
        writer.write(f)
    writer.release()
    out = tmp_path / "out"
    argv = ["--config-file", str(config), "--video-input", str(video), "--output", str(out)]
    argv += ["--batch-size", "2", *precision, "--confidence-threshold", "0.05"]
    summary = demo.main(argv)
    frames, fps = _read_video(out / "clip.mp4")
    assert len(frames) == len(summary) == 5 and fps == pytest.approx(5.0)
    assert all(f.shape == (64, 96, 3) for f in frames)
    lines = [json.loads(x) for x in (out / "clip.jsonl").read_text().splitlines()]
    assert sum(len(x["instances"]) for x in lines) >= 5  # 40 at seed 0
    for x in lines:
        for det in x["instances"]:
            assert det["score"] >= 0.05 and 0 <= det["category_id"] < 3
            assert all(np.isfinite(det["bbox"]))
    assert "(batch size 2, bfloat16)" in capsys.readouterr().out


def test_video_errors(demo, tmp_path):
    config = tmp_path / "config.py"
    config.write_text(CONFIG)
    base = ["--config-file", str(config), "--output", str(tmp_path / "out")]
    with pytest.raises(FileNotFoundError, match="--video-input: .*missing.mp4 does not exist"):
        demo.main(base + ["--video-input", str(tmp_path / "missing.mp4")])
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(ValueError, match="--video-input .*notes.mp4: OpenCV"):
        demo.main(base + ["--video-input", str(tmp_path / "notes.mp4")])
    with pytest.raises(SystemExit):  # argparse: one of --input / --video-input, not both
        demo.main(base + ["--video-input", "a.mp4", "--input", "b.png"])
    _write_video(tmp_path / "clip.avi", [10, 20])
    # the folder of the input video is refused as output (the drawn video could replace it)
    with pytest.raises(ValueError, match=r"--output .* holds the input video .*clip\.avi"):
        demo.main(
            ["--config-file", str(config), "--video-input", str(tmp_path / "clip.avi")]
            + ["--output", str(tmp_path)]
        )
    assert not (tmp_path / "out").exists()

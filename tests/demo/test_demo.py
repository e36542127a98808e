"""demo/demo.py never overwrites inputs or its own outputs, and reports what it skips."""

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from script_loading import load_script

REPO = Path(__file__).resolve().parents[2]

# A detector whose one detection's score is the image's mean intensity / 255, so that each
# output can be traced back to its input.
CONFIG = """
import torch
from torch import nn
from rotated_det.config import LazyCall as L
from rotated_det.structures import Instances, RotatedBoxes


class MeanDetector(nn.Module):
    num_classes = 2

    def forward(self, batched_inputs):
        outs = []
        for d in batched_inputs:
            inst = Instances((d["height"], d["width"]))
            inst.pred_boxes = RotatedBoxes(torch.tensor([[20.0, 20.0, 16.0, 8.0, 30.0]]))
            inst.scores = (d["image"].float().mean() / 255).reshape(1)
            inst.pred_classes = torch.tensor([1])
            outs.append({"instances": inst})
        return outs


model = L(MeanDetector)()
train = dict(init_checkpoint="", device="cpu")
"""


@pytest.fixture(scope="module")
def demo():
    return load_script(REPO / "demo" / "demo.py")


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "mean_config.py"
    path.write_text(CONFIG)
    return str(path)


def _image(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((48, 64, 3), value, np.uint8))


def _run(demo, config, inputs, output):
    argv = ["--config-file", config, "--input", *map(str, inputs), "--output", str(output)]
    return demo.main(argv + ["--confidence-threshold", "0"])


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("output", ["in", ".", "in_link"])
def test_an_output_folder_holding_the_inputs_is_refused(demo, config, tmp_path, output):
    """The input folder itself, a folder above it, or a link to it: refused, nothing written."""
    _image(tmp_path / "in" / "a.png", 100)
    _image(tmp_path / "in" / "b.jpg", 150)
    (tmp_path / "in_link").symlink_to(tmp_path / "in")
    before = _snapshot(tmp_path)
    with pytest.raises(ValueError, match=r"--output .* holds the input image .*in/a\.png"):
        _run(demo, config, [tmp_path / "in"], tmp_path / output)
    assert _snapshot(tmp_path) == before
    # a subfolder of the input folder is fine, and a rerun does not take the outputs as inputs
    for _ in range(2):
        summary = _run(demo, config, [tmp_path / "in"], tmp_path / "in" / "vis")
        assert [s["output"] for s in summary] == ["a", "b"]
    assert (tmp_path / "in" / "a.png").read_bytes() == before["in/a.png"]
    assert sorted(os.listdir(tmp_path / "in" / "vis")) == [
        "a.json",
        "a.png",
        "b.json",
        "b.png",
        "dota",
        "task1",
    ]


def test_an_output_folder_holding_a_linked_inputs_target_is_refused(demo, config, tmp_path):
    _image(tmp_path / "in" / "a.png", 100)
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "a.png").symlink_to(tmp_path / "in" / "a.png")
    with pytest.raises(ValueError, match=r"holds the input image .*links/a\.png"):
        _run(demo, config, [tmp_path / "links" / "a.png"], tmp_path / "in")
    assert sorted(os.listdir(tmp_path / "in")) == ["a.png"]


def test_inputs_sharing_a_name_get_distinct_outputs(demo, config, tmp_path):
    values = {"x/a.png": 40, "x/a.jpg": 90, "y/a.png": 140, "y/A.bmp": 190, "y/a_png.png": 230}
    for rel, v in values.items():
        _image(tmp_path / rel, v)
    out = tmp_path / "out"
    summary = _run(demo, config, [tmp_path / "x", tmp_path / "y"], out)
    assert len(list(out.glob("*.json"))) == len(list(out.glob("*.png"))) == len(values)
    by_name = {s["output"]: s["file"] for s in summary}
    # a_png is a real input's name, so the second and third a.png become a_png_2 and a_png_3
    assert {n: os.path.relpath(f, tmp_path) for n, f in by_name.items()} == {
        "a_jpg": "x/a.jpg",
        "a_png_2": "x/a.png",
        "A_bmp": "y/A.bmp",
        "a_png_3": "y/a.png",
        "a_png": "y/a_png.png",
    }
    for name, file in by_name.items():
        rec = json.loads((out / f"{name}.json").read_text())
        assert rec["file_name"] == os.path.abspath(file)
        value = values[os.path.relpath(file, tmp_path)]
        assert rec["instances"][0]["score"] == pytest.approx(value / 255, abs=0.02)
        assert len((out / "dota" / f"{name}.txt").read_text().splitlines()) == 1
        assert (out / f"{name}.png").is_file()
    task1 = (out / "task1" / "Task1_class1.txt").read_text().split("\n")[:-1]
    assert sorted(line.split()[0] for line in task1) == sorted(by_name)


def test_skipped_files_and_subfolders_are_counted_in_the_log(demo, config, tmp_path, capture_logs):
    _image(tmp_path / "in" / "a.png", 100)
    _image(tmp_path / "in" / "sub" / "deep.png", 100)
    (tmp_path / "in" / "notes.txt").write_text("x")
    (tmp_path / "in" / "meta.json").write_text("{}")
    with capture_logs("rotated_det.demo") as logs:
        summary = _run(
            demo,
            config,
            [tmp_path / "in", tmp_path / "in" / "*", tmp_path / "in" / "a.png"],
            tmp_path / "out",
        )
    assert [s["output"] for s in summary] == ["a"]  # one image, run once
    warnings = [r for r in logs.records if r.startswith("--input")]
    assert len(warnings) == 3, logs.text
    for w in warnings[:2]:
        assert "1 subfolder(s)" in w and "2 file(s) that are not images" in w
        assert ".json, .txt" in w
    assert "1 image(s) already given" in warnings[1] and "1 image(s) already given" in warnings[2]

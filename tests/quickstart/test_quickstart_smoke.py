"""dev/quickstart.py end to end in a shortened mode: a tiny synthetic dataset (3 training and 1
validation scenes) generated and split through the tools, 4 training iterations, evaluation,
drawings and the summary; then a re-run with --skip-train that reuses the dataset and the
checkpoint and must reproduce the same mAP50 (inference is deterministic)."""

import json
import math
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = pytest.mark.slow  # trains in a subprocess (about 2 minutes)


def _quickstart(tmp_path, *extra):
    cmd = [
        sys.executable,
        os.path.join(REPO, "dev", "quickstart.py"),
        "--output-dir", str(tmp_path / "out"),
        "--datasets-root", str(tmp_path / "datasets"),
        "--num-train", "3", "--num-val", "1", "--image-size", "400",
        "--max-iter", "4", "--num-draw", "1",
        *extra,
        # every detection counts, so that 4 iterations from scratch still give some
        "model.roi_heads.box_predictor.test_score_thresh=0.0",
        "train.tensorboard=False",
        "dataloader.train.num_workers=0",
        "dataloader.test.num_workers=0",
    ]  # fmt: skip
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    with open(tmp_path / "out" / "summary.json") as f:
        return json.load(f), proc.stdout


def test_quickstart_short_run_and_rerun(tmp_path):
    summary, stdout = _quickstart(tmp_path)
    syn = tmp_path / "datasets" / "synthetic"
    # the dataset: generated (scenes + labels), then split by tools/split_dota.py
    assert len(os.listdir(syn / "train" / "images")) == 3
    assert len(os.listdir(syn / "val" / "images")) == 1
    assert (syn / "split_512" / "DONE").is_file()
    patches = os.listdir(syn / "split_512" / "train" / "images")
    assert patches and all("__1.0__" in p for p in patches)
    assert "tools/split_dota.py" in stdout and "tools/generate_synthetic.py" in stdout

    assert summary["iterations"] == 4
    assert math.isfinite(summary["mAP50"]) and 0.0 <= summary["mAP50"] <= 100.0
    assert set(summary["AP50_per_class"]) == {
        "plane", "ship", "vehicle", "storage-tank", "court", "container"
    }  # fmt: skip
    assert summary["sec_per_iter"] is not None and summary["sec_per_iter"] > 0
    paths = summary["paths"]
    for key in ("checkpoint", "metrics", "train_log", "predictions"):
        assert os.path.isfile(paths[key]), (key, paths[key])
    assert len(summary["drawings"]) == 1 and os.path.isfile(summary["drawings"][0])
    assert "mAP50 on the merged validation scenes" in stdout

    # re-run: reuses the dataset and evaluates the same checkpoint -> the same figure
    again, stdout2 = _quickstart(tmp_path, "--skip-train")
    assert "already there: reused" in stdout2 and "already split: reused" in stdout2
    assert "lazyconfig_train_net.py" in stdout2 and "--eval-only" in stdout2
    assert again["mAP50"] == summary["mAP50"]
    assert again["iterations"] == 4
